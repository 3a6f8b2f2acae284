"""Recordings are user files: `summary` and `replay` must survive any bytes, and any
JSON, in them.

read_recording either returns the records up to the damage or raises RecordingError
(one line for the user); summarize, format_summary and replay's frames never raise on
what it returns.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from nettop_ui.summary import (
    TREE_FIELDS,
    RecordingError,
    format_summary,
    read_recording,
    summarize,
)
from nettop_ui.tui.replay import ReplaySource

SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
JSONISH = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=6)
    ),
    max_leaves=20,
)
SAMPLE = st.fixed_dictionaries(
    {
        "type": st.just("sample"),
        "ts": SCALARS | JSONISH,
        "tree": st.dictionaries(st.sampled_from(TREE_FIELDS), SCALARS | JSONISH),
    }
)
RECORD = SAMPLE | st.fixed_dictionaries(
    {"type": st.sampled_from(["meta", "end", "sample", "x"])},
    optional={
        "ended": SCALARS,
        "exit_code": SCALARS,
        "pid": SCALARS,
        "cmdline": JSONISH,
        "ts": SCALARS,
    },
)


PROCESS_KEYS = ("pid", "ppid", "start_time", "name", "cmdline", "user", "sent_bytes",
                "recv_bytes", "sent_bps", "cpu_percent", "rss_bytes", "threads", "exited",
                "connections", "gpu_memory_bytes", "connection_count")  # fmt: skip
REPLAYED = st.fixed_dictionaries(
    {
        "type": st.just("sample"),
        "ts": SCALARS | st.floats(0, 2.5e11),
        "tree": st.just({}),
        "interval_s": SCALARS,
        "processes": st.lists(
            st.dictionaries(st.sampled_from(PROCESS_KEYS), SCALARS | JSONISH), max_size=3
        ),
        "unattributed": SCALARS | JSONISH,
    }
)


def read_file(data: bytes) -> tuple[list[dict[str, object]], str | None] | None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rec.jsonl"
        path.write_bytes(data)
        try:
            return read_recording(str(path))
        except RecordingError as exc:
            assert "\n" not in str(exc)
            return None


def summarise_file(data: bytes) -> None:
    if (read := read_file(data)) is not None:
        format_summary(summarize(read[0]))


@settings(max_examples=200)
@given(st.binary(max_size=2000))
def test_any_bytes(data: bytes) -> None:
    summarise_file(data)


@settings(max_examples=300)
@given(st.lists(RECORD, min_size=1, max_size=6))
def test_any_json_records(records: list[dict[str, object]]) -> None:
    summarise_file("\n".join(json.dumps(r) for r in records).encode())


@settings(max_examples=300)
@given(st.lists(REPLAYED, min_size=1, max_size=4))
def test_replay_draws_any_samples_it_reads(samples: list[dict[str, object]]) -> None:
    meta = {"type": "meta", "schema": 1}
    read = read_file("\n".join(json.dumps(r) for r in [meta, *samples]).encode())
    if read is None:
        return
    records, problem = read
    source = ReplaySource(records, "rec.jsonl", problem)
    for i in range(len(source)):
        source.index = i
        source.frame_at(i)
        source.position()
