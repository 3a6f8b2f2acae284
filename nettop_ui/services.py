"""Which service a process belongs to, from its cgroup: a systemd unit, a container, a pod.

`read_cgroup(pid)` reads the process's cgroup path (the v2 line of /proc/PID/cgroup);
`service_of(path)` turns such a path into a short readable name (docs/services.md):

- a Kubernetes container: `pod:<pod uid, first 8 hex digits>/<container short id>`
  (`pod:<uid8>` for the pod's own cgroup), from the kubepods path of either kubelet
  cgroup driver; the full UID stays in the cgroup path;
- a container: `<runtime>:<name>` where the runtime's own files on this machine name it
  (docker's config.v2.json, podman's containers.json), else `<runtime>:<short id>` (12
  hex digits, as `docker ps` shows); runtime is docker, podman, crio or containerd;
- a systemd unit: the innermost `.service` or `.scope` (`nginx.service`,
  `session-3.scope`; `user@1000.service` for the user manager itself), else the
  innermost slice;
- any other cgroup: its own (last) name; the root cgroup `/` names no service (None).

The innermost container wins (a pod inside a kind node, docker inside docker). Names are
read from files, never by asking a daemon, and only from regular files owned by the
runtime's user, read up to a size cap; a missing, damaged or huge file gives the short id.

Paths and names come from other users (anyone with a delegated cgroup subtree can name
one): callers render them as untrusted text.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import stat
from collections import OrderedDict
from typing import Any

from nettop_ui.procfs import ProcFiles

NO_SERVICE = "(no service)"  # the group of processes whose cgroup names none (TUI, Prometheus)
ROOT = "/"  # where the runtimes' files are read from (tests plant their own)
SHORT_ID = 12  # hex digits, as `docker ps` shows an id
SHORT_UID = 8  # a pod UID's first group: unique enough among one node's pods
MAX_CONFIG = 1 << 20  # bytes: docker's config.v2.json of one container
MAX_CONTAINERS = 16 << 20  # bytes: podman's containers.json, every container's record
CACHE_SIZE = 4096  # container ids whose name (or its absence) is remembered
CGROUP_READ = 1 << 14  # bytes of /proc/PID/cgroup: its v2 line comes last on a hybrid system

_ID = r"[0-9a-f]{64}"
# A systemd-driver container scope (runc, crun, conmon): <prefix>-<id>.scope.
_SCOPE = re.compile(
    rf"(docker|libpod-conmon|libpod|crio-conmon|crio|cri-containerd|nerdctl)-({_ID})\.scope"
)
_PODMAN_SPLIT = re.compile(rf"libpod-payload-({_ID})")  # podman --cgroups=split (quadlet)
_BARE_ID = re.compile(_ID)  # a cgroupfs-driver container's directory: its bare id
# The cgroupsPath `slice:prefix:id` of a runtime told systemd's form but driving cgroupfs.
_COLON = re.compile(rf".*:(docker|cri-containerd|crio):({_ID})")
_RUNTIME = {
    "docker": "docker",
    "libpod": "podman",
    "libpod-conmon": "podman",
    "crio": "crio",
    "crio-conmon": "crio",
    "cri-containerd": "containerd",
    "nerdctl": "containerd",
}
_UID = r"[0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}"
# kubelet's pod cgroup: `pod<uid>` (cgroupfs) or `kubepods[-qos]-pod<uid_with_underscores>.slice`
_POD = re.compile(rf"(?:.*kubepods.*-)?pod({_UID})(?:\.slice)?")
_USER = re.compile(r"user@(\d+)\.service")
# What docker and podman accept as a container name; anything else is not shown.
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}")


def parse_cgroup(raw: str) -> str | None:
    """The cgroup path in /proc/PID/cgroup's text: the v2 line's, else the first v1
    hierarchy's; None when there is none."""
    lines = raw.split("\n")  # not splitlines(): a cgroup's name may hold \x1e, \x85, \u2028
    for line in lines:
        if line.startswith("0::"):
            return line[3:] or "/"
    return lines[0].split(":", 2)[-1] if ":" in lines[0] else None


def read_cgroup(pid: int, files: ProcFiles | None = None) -> str | None:
    """The process's cgroup path (the v2 line, else the first v1 hierarchy's); None when
    it cannot be read. Through `files` (held open between scans) when given."""
    if files is not None:
        raw = files.read(pid, "cgroup", CGROUP_READ)
    else:
        try:
            with open(f"/proc/{pid}/cgroup", "rb") as f:
                raw = f.read(CGROUP_READ)
        except OSError:
            return None
    return parse_cgroup(decode(raw)) if raw else None


def decode(raw: bytes) -> str:
    """/proc text as str: a byte that is not UTF-8 stays visible as an escape."""
    return raw.decode("utf-8", errors="backslashreplace")


def service_of(cgroup: str | None) -> str | None:
    """A readable name for the service a cgroup path belongs to; see the module doc."""
    if not cgroup:
        return None
    parts = [p for p in cgroup.split("/") if p]
    if not parts:
        return None
    container = _container(parts)
    if container is not None:
        return container
    return _unit(parts) or parts[-1]


def _container(parts: list[str]) -> str | None:
    """The innermost container or pod in the path, named; None when there is none."""
    for i in range(len(parts) - 1, -1, -1):
        part, above = parts[i], parts[:i]
        if found := _SCOPE.fullmatch(part):
            runtime, cid = _RUNTIME[found[1]], found[2]
        elif found := _COLON.fullmatch(part):
            runtime, cid = _RUNTIME[found[1]], found[2]
            above = [*above, part.split(":", 1)[0]]  # the pod slice is in the same name
        elif found := _PODMAN_SPLIT.fullmatch(part):
            runtime, cid = "podman", found[1]
        elif above and _BARE_ID.fullmatch(part) and (above[-1] == "docker" or _pod(above[-1])):
            runtime, cid = "docker", part  # `/docker/<id>`; below a pod, named as the pod's
        elif pod := _pod(part):
            return f"pod:{pod}"
        else:
            continue
        pod = next((p for p in map(_pod, reversed(above)) if p), None)
        if pod is not None:
            return f"pod:{pod}/{cid[:SHORT_ID]}"
        return f"{runtime}:{container_name(runtime, cid, _owner(above)) or cid[:SHORT_ID]}"
    return None


def _pod(part: str) -> str | None:
    found = _POD.fullmatch(part)
    return found[1][:SHORT_UID] if found else None


def _unit(parts: list[str]) -> str | None:
    """The innermost systemd unit holding processes (service or scope), else slice."""
    for i in range(len(parts) - 1, -1, -1):
        part = parts[i]
        if part == "init.scope" and i > 0 and _USER.fullmatch(parts[i - 1]):
            return parts[i - 1]  # the user manager itself
        if part.endswith((".service", ".scope")):
            return part
    return next((p for p in reversed(parts) if p.endswith(".slice")), None)


def _owner(above: list[str]) -> int:
    """Whose runtime made a container: the user of the `user@UID.service` it is under
    (rootless podman), else root."""
    for part in above:
        if found := _USER.fullmatch(part):
            return int(found[1])
    return 0


# -- container names ----------------------------------------------------------------------

_names: OrderedDict[tuple[str, str, str, int], str | None] = OrderedDict()
_podman_files: dict[str, tuple[tuple[int, int], dict[str, str]]] = {}


def container_name(runtime: str, cid: str, owner: int = 0) -> str | None:
    """The container's name from its runtime's files under ROOT, or None. Remembered per
    id (at most CACHE_SIZE ids), the absence of one too."""
    key = (ROOT, runtime, cid, owner)
    if key in _names:
        _names.move_to_end(key)
        return _names[key]
    name = None
    if runtime == "docker" and owner == 0:
        name = _docker_name(cid)
    elif runtime == "podman":
        name = _podman_name(cid, owner)
    _names[key] = name
    if len(_names) > CACHE_SIZE:
        _names.popitem(last=False)
    return name


def _docker_name(cid: str) -> str | None:
    raw = _read_owned(os.path.join(ROOT, "var/lib/docker/containers", cid, "config.v2.json"), 0)
    config = _json(raw)
    name = config.get("Name") if isinstance(config, dict) else None
    return _valid(name.removeprefix("/")) if isinstance(name, str) else None


def _podman_name(cid: str, owner: int) -> str | None:
    if owner == 0:
        storage = os.path.join(ROOT, "var/lib/containers/storage")
    else:
        try:
            home = pwd.getpwuid(owner).pw_dir
        except KeyError:
            return None
        storage = os.path.join(ROOT, home.lstrip("/"), ".local/share/containers/storage")
    for driver in ("overlay", "vfs", "btrfs", "zfs"):
        path = os.path.join(storage, f"{driver}-containers", "containers.json")
        name = _podman_names(path, owner).get(cid)
        if name is not None:
            return name
    return None


def _podman_names(path: str, owner: int) -> dict[str, str]:
    """id -> name from one containers.json, parsed again only when the file changed."""
    try:
        st = os.stat(path)
    except OSError:
        return {}
    version = (st.st_mtime_ns, st.st_size)
    cached = _podman_files.get(path)
    if cached is not None and cached[0] == version:
        return cached[1]
    records = _json(_read_owned(path, owner, MAX_CONTAINERS))
    names: dict[str, str] = {}
    for record in records if isinstance(records, list) else ():
        if not isinstance(record, dict):
            continue
        rid, given = record.get("id"), record.get("names")
        if isinstance(rid, str) and isinstance(given, list) and given:
            name = _valid(given[0]) if isinstance(given[0], str) else None
            if name is not None:
                names[rid] = name
    _podman_files[path] = (version, names)
    return names


def _read_owned(path: str, owner: int, limit: int = MAX_CONFIG) -> bytes | None:
    """The file's bytes if it is a regular file owned by `owner` and at most `limit`
    bytes long; None otherwise (missing, a link, a FIFO, someone else's, too big)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != owner or st.st_size > limit:
            return None
        chunks, size = [], 0
        while chunk := os.read(fd, min(1 << 20, limit + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:  # grew since fstat
                return None
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def _json(raw: bytes | None) -> Any:
    if raw is None:
        return None
    with contextlib.suppress(ValueError, RecursionError):
        return json.loads(raw)
    return None


def _valid(name: str) -> str | None:
    return name if _NAME.fullmatch(name) else None


def clear_cache() -> None:
    """Forget every container name read so far (tests, after planting files)."""
    _names.clear()
    _podman_files.clear()
