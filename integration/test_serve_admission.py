"""Admission control over real HTTP against a real `lazycelery serve` on Redis: with
`--max-inflight 2` and two requests held in flight (result long-polls on the real result
backend), a flood of GETs is answered 503 JSON with Retry-After at once (never a traceback,
never a wait for the held ones), counted in /metrics; /healthcheck still answers; once the
held requests are done, GETs are answered again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import pytest
from test_serve_helpers import Server, servers  # noqa: F401

from conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
pytest.importorskip("starlette", reason="the serve extra")

#: seconds each held request waits for a result that never comes: the window in which the
#: flood must be sent and answered, so it leaves room for a loaded machine
HOLD = 15.0


def _shed(url: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith("lazycelery_http_shed_total{"):
            reason = line.split('reason="', 1)[1].split('"', 1)[0]
            out[reason] = float(line.split()[-1])
    return out


def _inflight(url: str) -> float:
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith("lazycelery_http_inflight "):
            return float(line.split()[-1])
    raise AssertionError("no lazycelery_http_inflight")


async def _flood(url: str, held: int, count: int) -> tuple[list[httpx.Response], float]:
    async with httpx.AsyncClient(timeout=30) as client:
        holds = [asyncio.create_task(client.get(f"{url}/api/task/result/held-{n}",
                                                params={"timeout": HOLD}))
                 for n in range(held)]
        # the held ones are in flight (in serve's threads): observed, not slept for
        deadline = time.monotonic() + HOLD / 2
        while await asyncio.to_thread(_inflight, url) < held:
            assert time.monotonic() < deadline, "the held requests never got in flight"
            await asyncio.sleep(0.05)
        t0 = time.monotonic()
        flood = await asyncio.gather(*(client.get(f"{url}/api/v1/tasks", params={"limit": 100})
                                       for _ in range(count)))
        took = time.monotonic() - t0
        assert not any(hold.done() for hold in holds)  # all answered while those were held
        for got in await asyncio.gather(*holds):
            assert got.status_code == 200, got.text
        return list(flood), took


def test_flood_is_shed_with_json_503_and_counted(redis_url: str,
                                                 servers: Callable[..., Server],  # noqa: F811
                                                 ) -> None:
    serve = servers("serve", redis_url, "lc-admission", backend=redis_url,
                    args=["--max-inflight", "2"])
    url = serve.url
    assert _shed(url) == {"busy": 0, "ingest_behind": 0}
    flood, took = asyncio.run(_flood(url, held=2, count=40))
    assert took < HOLD  # shed at once: none waited for the held requests
    statuses = {got.status_code for got in flood}
    assert statuses == {503}, statuses
    for got in flood:
        assert got.headers["retry-after"] == "1"
        assert got.headers["content-type"] == "application/json"
        assert got.json()["reason"] == "busy" and "Traceback" not in got.text
    assert httpx.get(f"{url}/healthcheck", timeout=10).status_code == 200
    assert _shed(url)["busy"] == 40
    # the held requests are done: answered again
    wait_for(lambda: httpx.get(f"{url}/api/v1/tasks", timeout=10).status_code == 200,
             timeout=60, what="serve to answer again")
    assert "Traceback" not in serve.output()
