"""Recordings are user files: `summary` must survive any bytes, and any JSON, in them.

read_recording either returns the records up to the damage or raises RecordingError
(one line for the user); summarize and format_summary never raise on what it returns.
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


def summarise_file(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rec.jsonl"
        path.write_bytes(data)
        try:
            records, _problem = read_recording(str(path))
        except RecordingError as exc:
            assert "\n" not in str(exc)
            return
        format_summary(summarize(records))


@settings(max_examples=200)
@given(st.binary(max_size=2000))
def test_any_bytes(data: bytes) -> None:
    summarise_file(data)


@settings(max_examples=300)
@given(st.lists(RECORD, min_size=1, max_size=6))
def test_any_json_records(records: list[dict[str, object]]) -> None:
    summarise_file("\n".join(json.dumps(r) for r in records).encode())
