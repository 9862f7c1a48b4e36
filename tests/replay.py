"""Helpers to load the recorded real event streams (tests/data/recorded) for replay tests."""

from __future__ import annotations

import gzip
import json
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
