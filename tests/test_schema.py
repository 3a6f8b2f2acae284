"""The process field table (nettop_ui.schema) and the classes and records it describes agree."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from nettop_ui.collector import ProcessState
from nettop_ui.jsonl import recorded_fields
from nettop_ui.schema import FIELD, FIELDS, Field
from nettop_ui.tui.frame import ProcessView
from nettop_ui.tui.replay import process_state

DOCS = Path(__file__).parent.parent / "docs" / "json-schema.md"
# ProcessState's own bookkeeping, never in a record or a view.
COLLECTOR_ONLY = {"exited_at", "first_seen", "cpu_ticks", "reaped_ticks", "mem_probe", "sched"}
COLLECTOR_ONLY |= {"details_pending"}  # Collector.first_look: facts still to read
COLLECTOR_ONLY |= {"conns_stamp", "rested", "history_tick"}  # the scan and the lazy history
COLLECTOR_ONLY |= {"connections", "history", "ebpf"}  # records and views copy these themselves
VIEW_ONLY = {"spark", "connections", "ebpf", "key"}  # made by view_of and the view itself
TYPE_NAMES = {int: "int", float: "float", str: "str", bool: "bool"}


def annotation(f: Field, sequence: str) -> str:
    """The annotation a class gives field `f`; `sequence`: its type for a list of str."""
    base = sequence if f.type is list else TYPE_NAMES[f.type]
    return f"{base} | None" if f.nullable else base


def test_process_state_holds_every_field_with_its_type() -> None:
    declared = {f.name: f.type for f in dataclasses.fields(ProcessState)}
    assert {n: declared[n] for n in FIELD} == {f.name: annotation(f, "list[str]") for f in FIELDS}
    assert declared.keys() - FIELD.keys() == COLLECTOR_ONLY, "a new field goes in schema.FIELDS"


def test_a_process_view_field_is_a_schema_field_of_the_same_type() -> None:
    declared = {f.name: f.type for f in dataclasses.fields(ProcessView)}
    assert declared.keys() - FIELD.keys() == VIEW_ONLY
    assert declared.keys() - VIEW_ONLY <= FIELD.keys()
    for name in declared.keys() - VIEW_ONLY:
        assert declared[name] == annotation(FIELD[name], "tuple[str, ...]"), name


def _distinct_state() -> ProcessState:
    """A process whose every field has its own value, none of them a default."""
    values: dict[str, Any] = {}
    for i, f in enumerate(FIELDS, start=1):
        examples: dict[type, Any] = {int: 1000 + i, float: i + 0.5, bool: True}
        examples |= {str: f"text {i}", list: [f"arg{i}", "x"]}
        values[f.name] = examples[f.type]
    return ProcessState(**values)


def test_a_recorded_process_replays_field_for_field() -> None:
    """replay reads back every field a recording holds (through the table: `note` too)."""
    state = _distinct_state()
    record = json.loads(json.dumps(recorded_fields(state)))
    replayed = process_state(record)
    assert replayed is not None
    assert {f.name: getattr(replayed, f.name) for f in FIELDS} == {
        f.name: getattr(state, f.name) for f in FIELDS
    }


def test_an_unreadable_record_replays_as_unknown() -> None:
    """Missing or mistyped values are unknown: None, never zero; a record without a pid
    is no process."""
    damaged = {f.key: "garbage" if f.type is not str else 7 for f in FIELDS} | {"pid": 5}
    replayed = process_state(damaged)
    assert replayed is not None and replayed.pid == 5
    for f in FIELDS:
        if f.nullable:
            assert getattr(replayed, f.name) is None, f.name
    assert (replayed.name, replayed.cmdline, replayed.exited) == ("?", [], False)
    assert process_state({"name": "no pid"}) is None


def test_every_recorded_key_is_documented() -> None:
    docs = DOCS.read_text(encoding="utf-8")
    missing = [f.key for f in FIELDS if f"`{f.key}`" not in docs]
    assert not missing, f"document these in {DOCS.name}: {missing}"
