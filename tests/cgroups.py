"""Real cgroup v2 directories for the tests, named as systemd, docker, podman and kubelet
name them, under a test-only parent in the unified hierarchy.

`cgroup_tree()` yields a `CgroupTree`; `place(pid, path)` creates `path` below the
parent (`/ntu-test-<pid>-<n>/system.slice/docker-<id>.scope`, say) and moves the process
there by writing its pid to `cgroup.procs`. On the way out, even after a failure, every
process still alive is moved back to the cgroup it came from and the directories are
removed, deepest first. No controller is enabled, so any directory may hold processes.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterator
from pathlib import Path

from nettop_ui.services import read_cgroup
from tests.netenv import require, require_root

_count = itertools.count()

# Container ids and pod UIDs shaped as the runtimes make them (64 hex digits; a UUID).
DOCKER_ID = "3f2a9c1b7d0e" + "5a" * 26
PODMAN_ID = "06dc5f321aad8726aa26559f16ec203bc099245bc44894b14a89fc02b022d1d5"
CRI_ID = "f45298cd514d1930c4fe3afc4412e59547f7e3148fddd22ca33cefce046eb830"
POD_UID = "dd1bf9d1-241d-47f5-8e25-12de83135812"


def v2_mount() -> Path | None:
    """Where the unified (v2) hierarchy is mounted, or None."""
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 2 and fields[2] == "cgroup2":
                return Path(fields[1])
    return None


class CgroupTree:
    """Directories made under one test-only parent, and the processes moved into them."""

    def __init__(self, mount: Path) -> None:
        self.mount = mount
        self.base = f"/ntu-test-{os.getpid()}-{next(_count)}"  # as /proc/PID/cgroup shows it
        self._dirs: list[Path] = []
        self._moved: list[tuple[int, str]] = []  # (pid, where it was)

    def dir(self, cgroup: str) -> Path:
        return self.mount / cgroup.lstrip("/")

    def place(self, pid: int, path: str) -> str:
        """Move `pid` into `path` (made below the parent); return its full cgroup path."""
        full = f"{self.base}/{path.strip('/')}"
        parts = full.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            d = self.mount.joinpath(*parts[:i])
            if not d.exists():
                d.mkdir()
                self._dirs.append(d)
        before = read_cgroup(pid)
        assert before is not None, f"cannot read the cgroup of {pid}"
        self._moved.append((pid, before))
        (self.dir(full) / "cgroup.procs").write_text(str(pid))
        return full

    def close(self) -> None:
        for pid, before in reversed(self._moved):
            with contextlib.suppress(ProcessLookupError, FileNotFoundError):
                (self.dir(before) / "cgroup.procs").write_text(str(pid))
        for d in sorted(self._dirs, key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(FileNotFoundError):
                d.rmdir()


@contextlib.contextmanager
def cgroup_tree() -> Iterator[CgroupTree]:
    require_root()
    mount = v2_mount()
    require(mount is not None and os.access(mount, os.W_OK), "needs a writable cgroup v2 hierarchy")
    assert mount is not None
    tree = CgroupTree(mount)
    try:
        yield tree
    finally:
        tree.close()
