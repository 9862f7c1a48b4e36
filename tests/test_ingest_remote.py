"""The remote event source's pure parts: Server-Sent Events framing (split reads, CRLF,
comments, multi-line data), a snapshot worker as the event the index takes, the target
checks. The source against a real serve is in integration/test_serve_v1.py."""

from __future__ import annotations

import pytest

from lazycelery.core.index import TaskIndex
from lazycelery.core.ingest_remote import SseFrame, _worker_event, parse_frames, remote_target
from lazycelery.errors import UsageError


def test_frames_across_reads() -> None:
    stream = (b"retry: 2000\nid: e-1\nevent: hello\ndata: {}\n\n: keepalive\n\n"
              b"id: e-2\r\nevent: task\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\nid: e-3\nevent: w")
    frames, rest = [], b""
    for n in range(0, len(stream), 7):  # arbitrary network reads
        got, rest = parse_frames(rest + stream[n:n + 7])
        frames.extend(got)
    assert frames == [SseFrame("hello", "{}", "e-1"), SseFrame("task", '{"a":\n1}', "e-2")]
    assert rest.endswith(b"event: w")


def test_snapshot_worker_becomes_an_event() -> None:
    index = TaskIndex()
    worker = {"hostname": "w@h", "pid": 7, "active": 2, "processed": 9, "offline": False,
              "last_heartbeat": 123.0, "loadavg": [0.1, 0.2, 0.3], "freq": 2.0}
    assert index.merge_workers([_worker_event(worker)]) == 1
    rec = index.workers["w@h"]
    assert (rec.active, rec.processed, rec.last_heartbeat) == (2, 9, 123.0)


def test_remote_target(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAZYCELERY_TOKEN", "from-env")
    assert remote_target(None, None) == (None, None)
    assert remote_target("http://h:5555", None) == ("http://h:5555", "from-env")
    assert remote_target("https://h", "flag") == ("https://h", "flag")
    with pytest.raises(UsageError, match="http"):
        remote_target("h:5555", None)
