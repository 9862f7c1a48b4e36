"""Helpers to load the recorded real event streams (tests/data/recorded) for replay tests."""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

RECORDED = Path(__file__).resolve().parent / "data" / "recorded"
BROKERS = ("redis", "amqp")


def load_events(broker: str) -> list[dict[str, Any]]:
    with gzip.open(RECORDED / broker / "events.jsonl.gz", "rt") as fh:
        return [json.loads(line) for line in fh]


def load_expected(broker: str) -> dict[str, Any]:
    with (RECORDED / broker / "expected.json").open() as fh:
        data: dict[str, Any] = json.load(fh)
    return data


def without(mapping: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    """A copy of an event (or any mapping) without ``keys``."""
    return {k: v for k, v in mapping.items() if k not in keys}


def record_dict(rec: Any, *ignore: str) -> dict[str, Any]:
    """A record's fields as a dict, without ``ignore`` (e.g. ``last_seen``), for comparisons."""
    import msgspec

    return without(msgspec.structs.asdict(rec), *ignore)
