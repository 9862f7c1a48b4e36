"""Hostile values and the records built from them: recorded real events with one field replaced,
applied to an index the way ingest applies them, and records whose fields are set without
validation (a msgspec Struct holds any type when assigned directly)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Final

from lazycelery.core.index import TaskIndex
from lazycelery.core.model import TaskRecord, WorkerRecord
from tests.replay import load_events

__all__ = [
    "HOSTILE",
    "RAW",
    "TASK_FIELDS",
    "TEXT_HOSTILE",
    "WORKER_FIELDS",
    "Variant",
    "build_index",
    "records",
    "stories",
    "task_variants",
    "worker_variants",
]

#: characters that must never reach a terminal raw: C0, DEL, C1, bidi overrides and isolates
RAW: Final = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")

#: name -> value; each replaces one field at a time
HOSTILE: Final[Mapping[str, object]] = {
    "nan": float("nan"),
    "inf": float("inf"),
    "-inf": float("-inf"),
    "1e20": 1e20,
    "1e308": 1e308,
    "negative": -7.5,
    "int 10**400": 10**400,
    "int 10**5000": 10**5000,  # beyond Python's int -> str limit
    "list": [1, "two", [3]],
    "dict": {"a": [1, {"b": None}]},
    "none": None,
    "true": True,
    "false": False,
    "str": "not a number",
    "empty": "",
    "long": "x" * 20_000 + "END",
    "osc title": "\x1b]0;owned\x07",
    "clear screen": "\x1b[2J\x1b[H",
    "dcs": "\x1bP1$rq\x1b\\",
    "bel": "ring\x07",
    "nul": "a\x00b",
    "c1 csi": "csi\x9b31m",
    "bidi": "abc\u202eevil",
    "newlines": "line1\nline2\r\n\tline3",
    "list with escape": ["\x1b[31mred", "\u202e"],
}
#: the hostile values that are strings (the only kind an index key, a task id, can be)
TEXT_HOSTILE: Final = {k: v for k, v in HOSTILE.items() if isinstance(v, str) and v}

#: every field of the records (including bookkeeping), set directly without validation; not
#: ``last_seen``, the index's own clock reading that orders it (no event or broker sets it)
TASK_FIELDS: Final = tuple(f for f in TaskRecord.__struct_fields__
                           if f not in ("uuid", "last_seen"))
WORKER_FIELDS: Final = tuple(f for f in WorkerRecord.__struct_fields__ if f != "hostname")


@cache
def _events() -> tuple[dict[str, Any], ...]:
    return tuple(load_events("redis"))


@cache
def stories() -> dict[str, tuple[dict[str, Any], ...]]:
    """Real event sequences: one task per ending (succeeded, failed, retried, revoked) and one
    worker's online / heartbeat / offline events."""
    events = _events()
    by_uuid: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        if isinstance(e.get("uuid"), str):
            by_uuid.setdefault(e["uuid"], []).append(e)
    out: dict[str, tuple[dict[str, Any], ...]] = {}
    for ending in ("task-succeeded", "task-failed", "task-retried", "task-revoked"):
        for evs in by_uuid.values():
            types = {e["type"] for e in evs}
            if ending in types and "task-sent" in types and (
                    ending != "task-revoked" or "task-received" in types):
                out[ending] = tuple(evs)
                break
    host = next(e["hostname"] for e in events if e["type"] == "worker-online")
    worker = [e for e in events if e.get("hostname") == host and e["type"].startswith("worker-")]
    beat = next(e for e in worker if e["type"] == "worker-heartbeat" and e.get("active"))
    out["worker"] = (next(e for e in worker if e["type"] == "worker-online"), beat,
                     next(e for e in worker if e["type"] == "worker-offline"))
    return out


@dataclass(frozen=True)
class Variant:
    """Events of one story with ``key`` of the ``kind`` events set to the hostile value."""

    story: str
    kind: str
    key: str
    events: tuple[dict[str, Any], ...]


def _rename(event: dict[str, Any], story: str, kind: str, key: str) -> dict[str, Any]:
    out = dict(event)
    if "uuid" in out:
        out["uuid"] = f"{story}.{kind}.{key}"
    if out["type"].startswith("worker-"):
        out["hostname"] = f"{kind}.{key}@hostile"
    return out


def task_variants(value: object) -> Iterator[Variant]:
    for story, events in stories().items():
        if story == "worker":
            continue
        for kind in dict.fromkeys(e["type"] for e in events):
            keys = dict.fromkeys(k for e in events if e["type"] == kind for k in e)
            for key in keys:
                if key == "type":
                    continue
                yield Variant(story, kind, key, tuple(
                    {**_rename(e, story, kind, key), key: value} if e["type"] == kind
                    else _rename(e, story, kind, key) for e in events))


def worker_variants(value: object) -> Iterator[Variant]:
    events = stories()["worker"]
    for kind in dict.fromkeys(e["type"] for e in events):
        for key in events[[e["type"] for e in events].index(kind)]:
            if key == "type":
                continue
            renamed = [_rename(e, "worker", kind, key) for e in events]
            # the worker stays online (its offline event comes only in its own variant)
            renamed = [e for e in renamed if e["type"] != "worker-offline" or kind == e["type"]]
            yield Variant("worker", kind, key, tuple(
                {**e, key: value} if e["type"] == kind else e for e in renamed))


def _apply(index: TaskIndex, events: Sequence[Mapping[str, Any]]) -> None:
    # Ingest applies events one batch at a time; an event it cannot apply (a wrong type the
    # ingest side does not coerce yet) costs that event only: skip it, as the ingest thread will.
    for event in events:
        try:
            index.apply_batch((event,))
        except Exception:
            continue


def build_index(value: object, *, clock: Callable[[], float] | None = None) -> TaskIndex:
    """An index holding, for ``value``: every task and worker variant applied the way ingest
    applies events, plus one record per field with that field set directly to ``value``."""
    index = TaskIndex(clock=clock) if clock is not None else TaskIndex()
    for variant in task_variants(value):
        _apply(index, variant.events)
    for variant in worker_variants(value):
        _apply(index, variant.events)
    base_task = stories()["task-failed"]
    base_worker = stories()["worker"][:2]
    for name in TASK_FIELDS:
        uuid = f"direct.{name}"
        _apply(index, [{**e, "uuid": uuid} for e in base_task])
        rec = index.get(uuid)
        assert rec is not None
        setattr(rec, name, value)  # no validation: the Struct now holds an odd type
    if isinstance(value, str) and value:
        uuid = f"direct.uuid.{value}"
        _apply(index, [{**e, "uuid": uuid} for e in base_task])
    for name in WORKER_FIELDS:
        host = f"direct.{name}@hostile"
        _apply(index, [{**e, "hostname": host} for e in base_worker])
        worker = index.workers[host]
        setattr(worker, name, value)
    if isinstance(value, str) and value:
        _apply(index, [{**e, "hostname": f"direct.{value}@hostile"} for e in base_worker])
    return index


def records(index: TaskIndex) -> list[TaskRecord]:
    with index.lock:
        return list(index.iter_newest())
