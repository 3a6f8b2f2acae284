"""Process churn for the fault tests and the soak bench: many short-lived talkers.

    python -m tests.churn --rate 300 --seconds 60 --bytes 4096 [--name churn-kid]

Compiles tests/churn.c with the system's C compiler (install.sh --dev installs gcc)
and runs it. Its parent process runs a loopback TCP server and forks `--rate` children
per second; each child names itself (`--name`, its kernel comm), connects to the
server, sends `--bytes` of payload and exits at once. When done the parent prints one JSON line:
{"pid", "children", "failed", "child_sent", "server_recv"}, counted from send/recv
return values (a child that failed to send everything exits non-zero and is not
counted). Only loopback is used.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

SOURCE = Path(__file__).with_name("churn.c")


def build(directory: Path) -> Path:
    """Compile churn.c into `directory`; the binary's path."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise SystemExit("tests.churn: no C compiler (apt install gcc)")
    binary = directory / "churn"
    subprocess.run(
        [compiler, "-O2", "-Wall", "-Werror", "-pthread", "-o", str(binary), str(SOURCE)],
        check=True,
    )
    return binary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=300.0, help="children per second")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--bytes", type=int, default=4096)
    parser.add_argument("--name", default="churn-kid")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ntu-churn-") as directory:
        binary = build(Path(directory))
        argv = [str(binary), str(args.rate), str(args.seconds), str(args.bytes), args.name]
        raise SystemExit(subprocess.run(argv, check=False).returncode)


if __name__ == "__main__":
    main()
