"""Services and containers: the name each cgroup path gives, and real processes moved into
real cgroup v2 directories named as systemd, docker, podman and kubelet name them.

The paths in `SHAPES` are copied from public test suites that captured them on real
machines: NeuVector's share/system/cgroup_test.go (docker on CentOS, Ubuntu and RancherOS,
kubelet with docker and containerd, BottleRocket), Kepler's internal/resource/
container_test.go (CRI-O, podman rootful, rootless and quadlet, kind, containerd's
`slice:prefix:id` form), and systemd's own layout (systemd-cgls, systemd.io
CGROUP_DELEGATION). The rest moves real processes into real cgroups and reads what the
CLI, the collector, the exporter and the TUI make of them.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from textual.pilot import Pilot

from backends.ebpf import EbpfBackend
from backends.psutil_backend import PsutilBackend
from nettop_ui import services
from nettop_ui.collector import CGROUP_EVERY, Collector, ProcessState
from nettop_ui.core import TrafficSample
from nettop_ui.services import parse_cgroup, service_of
from nettop_ui.tui import MonitorSource, NettopApp
from nettop_ui.tui.columns import MIXED
from nettop_ui.tui.detail_screen import DetailScreen
from nettop_ui.tui.frame import Frame, ProcessView
from nettop_ui.tui.model import UNKNOWN_SERVICE, ViewOptions, build_rows
from tests.cgroups import CRI_ID, DOCKER_ID, POD_UID, PODMAN_ID, CgroupTree, cgroup_tree
from tests.netenv import Client, Network, require_root, within
from tests.tui_fixtures import Child, screen_lines, spawn_named, table_order, wait_for

CENTOS = "9ec39b91f3d70e1beff50a308f77067065ea6be0d91a3378375056cd4422cf3d"
UBUNTU = "31cb02944da7a12196a193cf0e0f6c226d7c453a1db62e65ba98287593a2ee30"
DIND_OUTER = "a9a5ad238e59234193ee7ec3fcff5e735b3708ea1068826952255b69e3cfa413"
DIND_INNER = "ec08435e04266c5ba381fccbb829f626d11d8ddf5f8f547263c7a2d79ab4787a"
KUBE_DOCKER = "b5b6f2da8008be266864f896f93789762b2ce50792114a5c5f2cc3315af0bc70"
KUBE_CGROUPFS = "cb1eadb7abe3a6545e9856411207073277838e1bdc003337c2f8685faeedc32c"
KUBE_PROXY = "c04e0a88a1de067f25bece337d4dbb897396e0b623c2a65330850fc9823f1903"
BOTTLEROCKET = "f45298cd514d1930c4fe3afc4412e59547f7e3148fddd22ca33cefce046eb830"
CRIO = "a09343ca97901516c25036e2b954421254f8c68b384b536064e8999f0c4ed18d"
ROOTLESS = "3f05ee050f82c0145f1d88c94269c39dff0f07dbf8bba20aafd54b3a75dcaecc"
ROOTFUL = "06dc5f321aad8726aa26559f16ec203bc099245bc44894b14a89fc02b022d1d5"
QUADLET = "8e363eb2287da4ccc9f52ffc5de11252ac5fe707e3ddb917a3c0bdf9bb64165b"
CONMON = "24fce7291bc6d7f8a5965a5920740b0df25dda9bb4e84ffb889d8ea2927acec5"
KIND_NODE = "fd9d0ea06257a9780827cbc7fd92e3812a54fca26d63e191b73610d5d48b9cbd"
KIND_POD = "99f3a16ea25b7724cb56a4f0c0df1113ad9474fbf5545bead97fd5c7f61c13f4"
SPLIT = "01fd96f7ad292b02a8317cde4ecb8c7ef3cc06ffdd113f13410e0837eb2b2a20"
HOSTILE_UNIT = "ntu-[red]x\x1b]0;pwned\x07\u202e\x85.service"  # \x85: a line break to Python
ESCAPED_UNIT = "ntu-[red]x\\e]0;pwned\\x07\\u202e\\x85.service"  # as the TUI shows it

SHAPES = [
    # systemd
    ("/", None),
    ("/init.scope", "init.scope"),
    ("/system.slice/ssh.service", "ssh.service"),
    ("/user.slice/user-1000.slice/session-3.scope", "session-3.scope"),
    ("/user.slice/user-1000.slice/user@1000.service/init.scope", "user@1000.service"),
    (
        "/user.slice/user-1000.slice/user@1000.service/session.slice/org.gnome.Shell@x11.service",
        "org.gnome.Shell@x11.service",
    ),
    ("/user.slice", "user.slice"),
    ("/user/1000.user/c2.session", "c2.session"),  # before systemd's slices: the cgroup's name
    # docker: systemd driver (CentOS), cgroupfs driver (Ubuntu), docker in docker (RancherOS)
    (f"/system.slice/docker-{CENTOS}.scope", "docker:9ec39b91f3d7"),
    (f"/docker/{UBUNTU}", "docker:31cb02944da7"),
    (f"/docker/{DIND_OUTER}/docker/{DIND_INNER}", "docker:ec08435e0426"),
    # podman: rootful (crun's `container` leaf), rootless, conmon, quadlet's split cgroups
    (f"/machine.slice/libpod-{ROOTFUL}.scope/container", "podman:06dc5f321aad"),
    (
        f"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ROOTLESS}.scope/container",
        "podman:3f05ee050f82",
    ),
    (f"/machine.slice/libpod-conmon-{CONMON}.scope", "podman:24fce7291bc6"),
    (f"/system.slice/kepler.service/libpod-payload-{QUADLET}", "podman:8e363eb2287d"),
    # kubelet, systemd driver: docker, containerd (BottleRocket), CRI-O; a kind node
    (
        "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod045b1e35_7f13_11e7_"
        f"ac42_0050568ffca0.slice/docker-{KUBE_DOCKER}.scope",
        "pod:045b1e35/b5b6f2da8008",
    ),
    (
        "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-poddd1bf9d1_241d_47f5_"
        f"8e25_12de83135812.slice/cri-containerd-{BOTTLEROCKET}.scope",
        "pod:dd1bf9d1/f45298cd514d",
    ),
    (
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod2c9f8a79_5391_454b_88cb_"
        f"86190881cb96.slice/crio-{CRIO}.scope",
        "pod:2c9f8a79/a09343ca9790",
    ),
    (
        f"/system.slice/docker-{KIND_NODE}.scope/kubelet.slice/kubelet-kubepods.slice/"
        "kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-podeab5a334_93fe_48a8_"
        f"b139_9e8079c1f163.slice/cri-containerd-{KIND_POD}.scope",
        "pod:eab5a334/99f3a16ea25b",  # the innermost container
    ),
    (
        "/system.slice/containerd.service/kubepods-besteffort-pod0043435f_1854_4327_b76b_"
        f"730f681a781d.slice:cri-containerd:{SPLIT}",
        "pod:0043435f/01fd96f7ad29",
    ),
    # kubelet, cgroupfs driver; a container's own sub-cgroup (kube-proxy)
    (
        f"/kubepods/besteffort/pod74ba62da-1a3d-11e7-bb11-080027cb0e22/{KUBE_CGROUPFS}",
        "pod:74ba62da/cb1eadb7abe3",
    ),
    (
        f"/kubepods/besteffort/podf8a694f2-7c08-11e9-98da-000c29077430/{KUBE_PROXY}/kube-proxy",
        "pod:f8a694f2/c04e0a88a1de",
    ),
    (
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod2c9f8a79_5391_454b_88cb_"
        "86190881cb96.slice",
        "pod:2c9f8a79",  # the pod's own cgroup
    ),
]


@pytest.mark.parametrize(("path", "service"), SHAPES)
def test_service_of_real_world_cgroup_paths(path: str, service: str | None) -> None:
    assert service_of(path) == service


def test_the_v2_line_wins_on_a_hybrid_system() -> None:
    hybrid = "12:memory:/process_api/d51c8ebf\n1:name=systemd:/\n0::/system.slice/ssh.service\n"
    assert parse_cgroup(hybrid) == "/system.slice/ssh.service"
    # Only a newline ends the line: a name may hold what Python calls a line break.
    assert parse_cgroup("0::/system.slice/a\x85\x1e\u2028b.service\n") == (
        "/system.slice/a\x85\x1e\u2028b.service"
    )
    assert parse_cgroup("4:memory:/system.slice/x.service\n") == "/system.slice/x.service"  # v1
    assert parse_cgroup("0::/\n") == "/" and parse_cgroup("") is None


@given(st.text(max_size=600))
def test_any_text_never_raises(text: str) -> None:
    service_of(text)
    parse_cgroup(text)


def test_service_groups_sum_their_members_and_name_the_unknown() -> None:
    """The service view: one row per service with its members' sums; a user column that
    says when members differ; no service and an unreadable cgroup are groups of their own."""

    def view(pid: int, user: str, cgroup: str | None, up: float) -> ProcessView:
        return ProcessView(
            pid, float(pid), f"p{pid}", user=user, cgroup=cgroup, service=service_of(cgroup),
            sent_bps=up, recv_bps=0.0, sent_bytes=int(up), recv_bytes=0,
        )  # fmt: skip

    frame = Frame(0.0, 1.0, (
        view(1, "root", "/system.slice/nginx.service", 100.0),
        view(2, "www", "/system.slice/nginx.service", 50.0),
        view(3, "root", "/", 7.0),
        view(4, "root", None, 3.0),
        view(5, "www", f"/docker/{DOCKER_ID}", 1.0),
    ))  # fmt: skip
    rows = {r.key: r for r in build_rows(frame, ViewOptions(mode="service"))}
    assert set(rows) == {
        "service:nginx.service", f"service:docker:{DOCKER_ID[:12]}",
        f"no-service:{services.NO_SERVICE}", f"no-service:{UNKNOWN_SERVICE}",
    }  # fmt: skip
    nginx = rows["service:nginx.service"]
    assert nginx.value("up") == 150.0 and nginx.children == 2
    assert nginx.value("user") == MIXED and nginx.value("service") == "nginx.service"
    assert rows[f"no-service:{services.NO_SERVICE}"].value("program").name == "(no service)"
    assert rows[f"no-service:{UNKNOWN_SERVICE}"].value("up") == 3.0
    flat = {r.value("pid"): r.value("service") for r in build_rows(frame, ViewOptions())}
    assert flat[3] == "" and flat[4] is None  # no service: blank; unreadable: unknown (-)
    opened = build_rows(frame, ViewOptions(mode="service", expanded_groups=frozenset(
        {"service:nginx.service"})))  # fmt: skip
    keys = [r.key for r in opened]
    at = keys.index("service:nginx.service")
    assert keys[at + 1 : at + 3] == [frame.processes[0].key, frame.processes[1].key]


# -- container names from the runtimes' own files ----------------------------------------------


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty machine root for the runtimes' files; the name cache starts empty."""
    monkeypatch.setattr(services, "ROOT", str(tmp_path))
    services.clear_cache()
    yield tmp_path
    services.clear_cache()


def plant_docker(root: Path, cid: str, body: str | bytes) -> Path:
    path = root / "var/lib/docker/containers" / cid / "config.v2.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body.encode() if isinstance(body, str) else body)
    return path


def plant_podman(storage: Path, records: list[object] | str) -> Path:
    path = storage / "overlay-containers/containers.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(records if isinstance(records, str) else json.dumps(records))
    return path


def docker_config(name: str) -> str:
    """The shape of docker's config.v2.json: the name after a large Config."""
    return json.dumps({"ID": DOCKER_ID, "Config": {"Env": ["X=" + "y" * 5000]}, "Name": name})


def test_names_from_docker_and_podman_files(root: Path) -> None:
    plant_docker(root, DOCKER_ID, docker_config("/web-1"))
    plant_podman(
        root / "var/lib/containers/storage",
        [{"id": "0" * 64, "names": ["other"]}, {"id": PODMAN_ID, "names": ["db-1", "alias"]}],
    )
    assert service_of(f"/system.slice/docker-{DOCKER_ID}.scope") == "docker:web-1"
    assert service_of(f"/docker/{DOCKER_ID}") == "docker:web-1"
    assert service_of(f"/machine.slice/libpod-{PODMAN_ID}.scope/container") == "podman:db-1"
    assert service_of(f"/machine.slice/libpod-conmon-{PODMAN_ID}.scope") == "podman:db-1"
    # A pod's container is named as the pod's, whatever the runtime's files say.
    pod = f"/kubepods/besteffort/pod{POD_UID}/{DOCKER_ID}"
    assert service_of(pod) == f"pod:{POD_UID[:8]}/{DOCKER_ID[:12]}"


def test_rootless_podman_names_come_from_that_users_store(root: Path) -> None:
    """A container under user@UID.service is named from that user's own store, in their
    home, and only from a file that user owns."""
    require_root()
    user = pwd.getpwnam("nobody")
    store = root / user.pw_dir.lstrip("/") / ".local/share/containers/storage"
    path = plant_podman(store, [{"id": CRI_ID, "names": ["mine"]}])
    cgroup = f"/user.slice/user-{user.pw_uid}.slice/user@{user.pw_uid}.service/user.slice"
    assert service_of(f"{cgroup}/libpod-{CRI_ID}.scope") == f"podman:{CRI_ID[:12]}"  # root's
    services.clear_cache()
    os.chown(path, user.pw_uid, user.pw_gid)
    assert service_of(f"{cgroup}/libpod-{CRI_ID}.scope/container") == "podman:mine"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{not json",
        b"\xff\xfe garbage",
        b"[" * 100_000,  # nesting deep enough to overflow a recursive parser
        json.dumps({"Name": 42}).encode(),
        json.dumps(["/web-1"]).encode(),
        json.dumps({"Name": "/web\x1b]0;pwned\x07"}).encode(),  # not a name docker allows
        json.dumps({"Name": "/" + "a" * 300}).encode(),
        b" " * (services.MAX_CONFIG + 1),  # over the cap: not read at all
    ],
)
def test_damaged_docker_files_give_the_short_id(root: Path, body: bytes) -> None:
    plant_docker(root, DOCKER_ID, body)
    assert service_of(f"/docker/{DOCKER_ID}") == f"docker:{DOCKER_ID[:12]}"


def test_only_the_runtimes_own_regular_files_are_read(root: Path) -> None:
    """A link, a FIFO (which would block a plain open) or a file someone else owns gives
    the short id; a podman store with damaged records keeps the good ones."""
    real = plant_docker(root, "1" * 64, docker_config("/web-1"))
    link = root / "var/lib/docker/containers" / DOCKER_ID / "config.v2.json"
    link.parent.mkdir(parents=True)
    link.symlink_to(real)
    assert service_of(f"/docker/{DOCKER_ID}") == f"docker:{DOCKER_ID[:12]}"
    fifo = root / "var/lib/docker/containers" / CRI_ID / "config.v2.json"
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)
    assert service_of(f"/docker/{CRI_ID}") == f"docker:{CRI_ID[:12]}"
    if os.geteuid() == 0:
        stranger = plant_docker(root, PODMAN_ID, docker_config("/web-2"))
        os.chown(stranger, 65534, 65534)
        assert service_of(f"/docker/{PODMAN_ID}") == f"docker:{PODMAN_ID[:12]}"
    storage = root / "var/lib/containers/storage"
    damaged: list[object] = [7, {"id": 1}, {"id": "x", "names": []}, {"names": ["no id"]}]
    plant_podman(storage, [*damaged, {"id": ROOTFUL, "names": ["ok"]}])
    assert service_of(f"/machine.slice/libpod-{ROOTFUL}.scope") == "podman:ok"


def test_names_are_remembered_per_id_within_a_bound(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = plant_docker(root, DOCKER_ID, docker_config("/web-1"))
    assert service_of(f"/docker/{DOCKER_ID}") == "docker:web-1"
    config.unlink()  # remembered: no second read
    assert service_of(f"/docker/{DOCKER_ID}") == "docker:web-1"
    monkeypatch.setattr(services, "CACHE_SIZE", 8)
    for i in range(20):
        service_of(f"/docker/{i:064x}")
    assert len(services._names) == 8
    assert service_of(f"/docker/{DOCKER_ID}") == f"docker:{DOCKER_ID[:12]}"  # forgotten, gone


# -- real processes in real cgroups --------------------------------------------------------------

# (cgroup below the test's parent, the service it names) for each runtime's layout.
PLACES = {
    "systemd": ("system.slice/ntu-web.service", "ntu-web.service"),
    "user-app": (
        "user.slice/user-1000.slice/user@1000.service/app.slice/ntu-app.service",
        "ntu-app.service",
    ),
    "docker-systemd": (f"system.slice/docker-{DOCKER_ID}.scope", f"docker:{DOCKER_ID[:12]}"),
    "docker-cgroupfs": (f"docker/{CENTOS}", f"docker:{CENTOS[:12]}"),
    "podman": (f"machine.slice/libpod-{PODMAN_ID}.scope/container", f"podman:{PODMAN_ID[:12]}"),
    "kubelet-systemd": (
        f"kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
        f"{POD_UID.replace('-', '_')}.slice/cri-containerd-{CRI_ID}.scope",
        f"pod:{POD_UID[:8]}/{CRI_ID[:12]}",
    ),
    "kubelet-cgroupfs": (
        f"kubepods/besteffort/pod{POD_UID}/{CRIO}",
        f"pod:{POD_UID[:8]}/{CRIO[:12]}",
    ),
    # Anyone with a delegated subtree names cgroups: markup, an escape sequence, a bell, a
    # bidi override, NEL (the kernel refuses only "/" and newlines).
    "hostile": (f"system.slice/{HOSTILE_UNIT}", HOSTILE_UNIT),
}


@pytest.fixture
def placed() -> Iterator[tuple[CgroupTree, dict[str, tuple[Child, str, str]]]]:
    """One sleeping child in each layout: {layout: (child, full cgroup path, service)}."""
    children: list[Child] = []
    try:
        with cgroup_tree() as tree:
            out = {}
            for layout, (path, service) in PLACES.items():
                child = spawn_named(f"ntu-{layout}"[:15])
                children.append(child)
                out[layout] = (child, tree.place(child.pid, path), service)
            yield tree, out
    finally:
        for child in children:
            child.stop()


def test_json_all_reports_each_layouts_cgroup_and_service(
    placed: tuple[CgroupTree, dict[str, tuple[Child, str, str]]],
) -> None:
    """The real CLI: `--json --all` carries each process's cgroup and service."""
    _tree, layouts = placed
    args = ["--json", "--all", "--backend", "psutil", "--interval", "0.2", "--count", "1"]
    res = subprocess.run(
        [sys.executable, "-m", "nettop_ui", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.isascii()  # the hostile name's bytes escaped in the JSON
    sample = json.loads(res.stdout.splitlines()[-1])
    by_pid = {p["pid"]: p for p in sample["processes"]}
    for layout, (child, cgroup, service) in layouts.items():
        record = by_pid[child.pid]
        assert (record["cgroup"], record["service"]) == (cgroup, service), layout
    me = by_pid[os.getpid()]
    assert me["cgroup"] == services.read_cgroup(os.getpid())


async def press(pilot: Pilot[int], *keys: str) -> None:
    await pilot.press(*keys)
    await pilot.pause()


def ingest(collector: Collector) -> dict[int, ProcessState]:
    snap = collector.ingest(TrafficSample(0.0, 0.2, []))
    return {p.pid: p for p in snap.processes if not p.exited}


def test_collector_names_containers_and_sees_a_move_within_a_full_scan_round(
    placed: tuple[CgroupTree, dict[str, tuple[Child, str, str]]], root: Path
) -> None:
    """Names from planted runtime files; a process moved after it was first seen shows its
    new cgroup within CGROUP_EVERY scans (read then, not every tick)."""
    tree, layouts = placed
    plant_docker(root, DOCKER_ID, docker_config("/web-1"))
    plant_podman(root / "var/lib/containers/storage", [{"id": PODMAN_ID, "names": ["db-1"]}])
    collector = Collector(system=False, gpu=False, count_connections=False)
    try:
        procs = ingest(collector)
        assert procs[layouts["docker-systemd"][0].pid].service == "docker:web-1"
        assert procs[layouts["podman"][0].pid].service == "podman:db-1"
        assert procs[layouts["systemd"][0].pid].service == "ntu-web.service"
        mover = layouts["systemd"][0]
        moved = tree.place(mover.pid, "system.slice/ntu-moved.service")
        scans = 0
        while procs[mover.pid].cgroup != moved:
            scans += 1
            assert scans <= CGROUP_EVERY, "the move was not seen within a round"
            procs = ingest(collector)
        assert procs[mover.pid].service == "ntu-moved.service"
    finally:
        collector.close()


def test_collector_reads_cgroups_in_turns_not_every_tick(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cost: after the first scan, CGROUP_EVERY scans read each live process's cgroup
    about once between them, not once a scan each."""
    reads: list[int] = []
    real = services.read_cgroup

    def counting(pid: int, files: object = None) -> str | None:
        reads.append(pid)
        return real(pid, files)  # type: ignore[arg-type]

    monkeypatch.setattr(services, "read_cgroup", counting)
    collector = Collector(system=False, gpu=False, count_connections=False)
    try:
        first = ingest(collector)
        assert set(reads) >= set(first)  # everyone, when first seen
        reads.clear()
        for _ in range(CGROUP_EVERY):
            live = ingest(collector)
        stable = set(first) & set(live)  # alive throughout (other tests come and go)
        counts = Counter(reads)
        assert all(counts[pid] >= 1 for pid in stable)  # each read in its turn...
        assert sum(counts[pid] for pid in stable) <= 1.1 * len(stable)  # ... and about once
    finally:
        collector.close()


# -- the TUI and the exporter, with real traffic ---------------------------------------------

TRAFFIC = {  # client name: (layout, upload bytes, download bytes); two clients share ntu-web
    "ntu-svc-web-a": ("systemd", 3_000_000, 200_000),
    "ntu-svc-web-b": ("systemd", 1_000_000, 600_000),
    "ntu-svc-app": ("user-app", 800_000, 100_000),
    "ntu-svc-docker": ("docker-systemd", 2_000_000, 100_000),
    "ntu-svc-dockfs": ("docker-cgroupfs", 700_000, 50_000),
    "ntu-svc-podman": ("podman", 900_000, 150_000),
    "ntu-svc-pod": ("kubelet-systemd", 1_500_000, 300_000),
    "ntu-svc-podfs": ("kubelet-cgroupfs", 600_000, 250_000),
}
NAMED = {"ntu-svc-docker": "docker:web-1", "ntu-svc-dockfs": "docker:cache-1"}
NAMED["ntu-svc-podman"] = "podman:db-1"
PACE = 1_000_000  # bytes/s: each client runs a few seconds, long enough to be moved


async def test_group_by_service_totals_are_the_sums_of_their_processes(
    net: Network, root: Path
) -> None:
    """Real clients moving known bytes (ebpf), one in each layout's real cgroup (two in
    one systemd unit): `S` groups them by service, each group's totals are the sum of its
    processes' (and of the generators' counts, within 1%); names come from the runtimes'
    files; the drill-down shows service and cgroup."""
    require_root()
    plant_docker(root, DOCKER_ID, docker_config("/web-1"))
    plant_docker(root, CENTOS, docker_config("/cache-1"))
    plant_podman(root / "var/lib/containers/storage", [{"id": PODMAN_ID, "names": ["db-1"]}])
    services_of = {name: PLACES[layout][1] for name, (layout, _, _) in TRAFFIC.items()}
    services_of |= NAMED
    clients: list[Client] = []
    app = NettopApp(MonitorSource(EbpfBackend(), 0.5), host="test")
    with cgroup_tree() as tree:
        try:
            async with app.run_test(size=(160, 48)) as pilot:
                await wait_for(pilot, lambda: app.frames_received >= 2, "ebpf frames", 120)
                for name, (layout, up, down) in TRAFFIC.items():
                    client = net.client(name, "tcp", "lo", up=up, down=down, rate=PACE)
                    tree.place(client.proc.pid, PLACES[layout][0])
                    clients.append(client)
                for client in clients:
                    client.wait_done()

                def counted() -> bool:
                    views = {p.pid: p for p in app.shown.processes} if app.shown else {}
                    return all(
                        (v := views.get(c.pid)) is not None
                        and v.service == services_of[c.name]
                        and within(v.sent_bytes or 0, c.sent, 0.01)
                        and within(v.recv_bytes or 0, c.recv, 0.01)
                        for c in clients
                    )

                await wait_for(pilot, counted, "every client's bytes under its service", 30)
                await press(pilot, "space", "m", "S")  # hold the frame; totals; by service
                assert app.opts.mode == "service" and app.opts.totals
                frame = app.shown
                assert frame is not None
                groups = {r.key: r for r in app.main.rows if r.kind == "group"}
                for service in set(services_of.values()):
                    members = [p for p in frame.processes if p.service == service]
                    row = groups[f"service:{service}"]
                    assert row.value("up") == sum(p.sent_bytes or 0 for p in members)
                    assert row.value("down") == sum(p.recv_bytes or 0 for p in members)
                    assert row.children == len(members)
                    mine = [c for c in clients if services_of[c.name] == service]
                    assert within(row.value("up"), sum(c.sent for c in mine), 0.01), service
                    assert within(row.value("down"), sum(c.recv for c in mine), 0.01), service
                web = groups["service:ntu-web.service"]
                assert web.children == 2 and web.value("user") == "root"
                screen = "\n".join(screen_lines(app))
                assert all(name in screen for name in NAMED.values())
                assert f"pod:{POD_UID[:8]}/{CRI_ID[:12]}" in screen
                assert f"pod:{POD_UID[:8]}/{CRIO[:12]}" in screen
                # The drill-down of the docker client: its service and cgroup.
                await press(pilot, "S")
                docker = next(c for c in clients if c.name == "ntu-svc-docker")
                assert app.main.table.select_key(
                    next(p.key for p in frame.processes if p.pid == docker.pid)
                )
                await press(pilot, "enter")
                await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), "detail")
                cgroup = f"{tree.base}/system.slice/docker-{DOCKER_ID}.scope"
                line = next(x for x in screen_lines(app) if "service docker:web-1" in x)
                assert f"cgroup {cgroup}" in line
        finally:
            for client in clients:
                client.proc.kill()
                client.proc.wait(10)


async def test_service_column_and_names_render_literally(
    placed: tuple[CgroupTree, dict[str, tuple[Child, str, str]]],
) -> None:
    """At 160 columns the SERVICE column is there; a hostile cgroup name shows as escapes
    in it, in a service group and in the drill-down, never as markup or control bytes."""
    _tree, layouts = placed
    hostile = layouts["hostile"][0]
    app = NettopApp(MonitorSource(PsutilBackend(), 0.2), host="test")
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(
            pilot,
            lambda: any(  # sampled: the first look has no services yet
                p.pid == hostile.pid and p.service is not None
                for p in (app.shown.processes if app.shown else ())
            ),
            "the hostile child, its service read",
        )
        assert "service" in app.main.table.column_keys
        await press(pilot, "slash", *"ntu-hostile", "enter")
        row = next(line for line in screen_lines(app) if f" {hostile.pid} " in line)
        assert "ntu-[red]x\\e]0;p" in row  # cut to the column, escapes visible
        await press(pilot, "S")
        lines = screen_lines(app)
        assert "by service" in lines[0]
        group = next(line for line in lines if "ntu-[red]" in line)
        assert ESCAPED_UNIT in group
        # `+` opens the group (its process listed under it), `-` folds it again.
        assert app.shown is not None
        member = next(p.key for p in app.shown.processes if p.pid == hostile.pid)
        assert app.main.table.select_key(f"service:{HOSTILE_UNIT}")
        await press(pilot, "plus")
        assert member in table_order(app)
        await press(pilot, "minus")
        assert member not in table_order(app)
        await press(pilot, "S")  # back to the table, then the drill-down
        assert app.main.table.select_key(member)
        await press(pilot, "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), "the drill-down")
        lines = screen_lines(app)
        line = next(x for x in lines if x.lstrip().startswith("service "))
        assert f"service {ESCAPED_UNIT}  cgroup " in line
        assert not {"\x1b", "\x07", "\u202e", "\x85"} & set("".join(lines))
        text = "\n".join(screen_lines(app))
        assert not {"\x1b", "\x07", "\u202e", "\x85"} & set(text)
    # 80 columns: no SERVICE column; the layout is the one it always was.
    app = NettopApp(MonitorSource(PsutilBackend(), 0.2), host="test")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.frames_received >= 1, "a frame")
        assert "service" not in app.main.table.column_keys
