"""Webhook and Slack channels against a real HTTP receiver on 127.0.0.1: the signed body,
retries after 500s, a hanging receiver timed out then dead-lettered, the dead letters
delivered on the next start, the Slack message shape, and `lazycelery notify test`."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import time
from pathlib import Path

from notify_receiver import receiver

from conftest import wait_for
from lazycelery.config_notify import ChannelTable
from lazycelery.notify.channels import HttpChannel
from lazycelery.notify.deadletter import DeadLetter, DeadLetterFile
from lazycelery.notify.dispatcher import Dispatcher
from lazycelery.notify.message import Notification

SECRET = "shared-secret"


def _notification(key: str = "failures:billing") -> Notification:
    return Notification(kind="alert.firing", key=key, title="billing.charge failing",
                        text="12 failures in 5 min", created=time.time(), severity="critical",
                        environment="prod", labels={"rule": "billing-failures"},
                        links={"filter": "name:billing.charge state:FAILURE",
                               "tasks": "a1,b2"},
                        payload={"count": 12})


def _webhook(url: str, **settings: float) -> HttpChannel:
    table = ChannelTable(type="webhook", url=url, retries=int(settings.get("retries", 3)),
                         backoff=settings.get("backoff", 0.01), timeout=settings.get("timeout", 5))
    return HttpChannel(name="ops", settings=table, url=url, secret=SECRET)


def _dispatcher(tmp_path: Path, *channels: HttpChannel, queue_size: int = 100) -> Dispatcher:
    return Dispatcher({c.name: c for c in channels}, DeadLetterFile(tmp_path / "dead.ndjson"),
                      queue_size=queue_size, retry_dead_letters=0)


def test_the_body_is_versioned_and_signed(tmp_path: Path) -> None:
    with receiver() as hook:
        dispatcher = _dispatcher(tmp_path, _webhook(hook.url))
        dispatcher.start()
        try:
            assert dispatcher.submit(_notification(), ["ops"])
            wait_for(lambda: dispatcher.snapshot().sent == 1, what="delivery")
        finally:
            dispatcher.stop()
        (request,) = hook.requests
    # what a receiver does (docs/notifications.md): recompute, compare, check freshness
    expected = "sha256=" + hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["X-Lazycelery-Signature"], expected)
    body = json.loads(request.body)
    assert body["version"] == 1
    # the time is inside the signed body too: a receiver refusing old ones refuses replays
    assert abs(body["sent"] - int(request.headers["X-Lazycelery-Timestamp"])) < 1
    assert body["id"] == request.headers["X-Lazycelery-Delivery"]
    assert body["links"] == {"filter": "name:billing.charge state:FAILURE", "tasks": "a1,b2"}
    assert (body["kind"], body["severity"], body["environment"]) == (
        "alert.firing", "critical", "prod")
    # a body changed in transit no longer matches
    forged = request.body.replace(b"critical", b"info")
    assert hmac.new(SECRET.encode(), forged, hashlib.sha256).hexdigest() not in \
        request.headers["X-Lazycelery-Signature"]


def test_500s_are_retried_with_the_same_delivery_id(tmp_path: Path) -> None:
    with receiver([500, 503, 200]) as hook:
        dispatcher = _dispatcher(tmp_path, _webhook(hook.url))
        dispatcher.start()
        try:
            dispatcher.submit(_notification(), ["ops"])
            wait_for(lambda: dispatcher.snapshot().sent == 1, what="delivery after retries")
        finally:
            dispatcher.stop()
        stats = dispatcher.snapshot()
        assert (stats.retried, stats.failed, stats.dead_lettered) == (2, 0, 0)
        ids = {r.headers["X-Lazycelery-Delivery"] for r in hook.requests}
        assert len(hook.requests) == 3 and len(ids) == 1
    assert not (tmp_path / "dead.ndjson").exists()


def test_a_hanging_receiver_times_out_then_the_letter_waits_for_the_next_start(
        tmp_path: Path) -> None:
    with receiver(["hang"]) as hook:
        dispatcher = _dispatcher(tmp_path, _webhook(hook.url, retries=1, timeout=0.3))
        dispatcher.start()
        try:
            dispatcher.submit(_notification(), ["ops"])
            wait_for(lambda: dispatcher.snapshot().dead_lettered == 1, what="dead letter")
        finally:
            dispatcher.stop()
        assert len(hook.requests) == 2
    letters, bad = DeadLetterFile(tmp_path / "dead.ndjson").read()
    assert bad == 0
    (letter,) = letters
    assert (letter.channel, letter.attempts, letter.error) == ("ops", 2, "no answer within 0.3 s")
    assert (letter.notification.key, letter.notification.links) == (
        "failures:billing", _notification().links)

    # the receiver is back: the next dispatcher delivers the letter first thing, same id
    with receiver([200]) as hook:
        dispatcher = _dispatcher(tmp_path, _webhook(hook.url))
        dispatcher.start()
        try:
            wait_for(lambda: dispatcher.snapshot().redelivered == 1, what="redelivery")
        finally:
            dispatcher.stop()
        (request,) = hook.requests
        assert request.headers["X-Lazycelery-Delivery"] == letter.id
    assert DeadLetterFile(tmp_path / "dead.ndjson").read() == ([], 0)


def test_a_4xx_is_not_retried(tmp_path: Path) -> None:
    with receiver([404]) as hook:
        dispatcher = _dispatcher(tmp_path, _webhook(hook.url))
        outcome = dispatcher.deliver(_notification(), "ops")
        assert len(hook.requests) == 1
    assert not outcome.delivered
    assert outcome.error == "HTTP 404: receiver is down"


def test_a_full_queue_refuses_without_blocking_and_counts_the_loss(tmp_path: Path) -> None:
    with receiver() as hook:
        dispatcher = _dispatcher(tmp_path, _webhook(hook.url), queue_size=2)
        # not started: nothing drains the queue
        assert dispatcher.submit(_notification("a"), ["ops"])
        assert dispatcher.submit(_notification("b"), ["ops"])
        assert not dispatcher.submit(_notification("c"), ["ops"])
        assert dispatcher.snapshot().lost == 1
        dispatcher.start()
        wait_for(lambda: dispatcher.snapshot().sent == 2, what="the two queued")
        dispatcher.stop()
        assert [json.loads(r.body)["key"] for r in hook.requests] == ["a", "b"]


def test_an_unknown_channel_is_dead_lettered_not_dropped(tmp_path: Path) -> None:
    with receiver() as hook:
        dispatcher = _dispatcher(tmp_path, _webhook(hook.url))
        dispatcher.start()
        try:
            dispatcher.submit(_notification(), ["ops", "nowhere"])
            wait_for(lambda: dispatcher.snapshot().dead_lettered == 1, what="dead letter")
        finally:
            dispatcher.stop()
    (letter,), _ = DeadLetterFile(tmp_path / "dead.ndjson").read()
    assert letter.channel == "nowhere"
    assert letter.error == "unknown channel 'nowhere' (known: ops)"


def test_slack_gets_an_incoming_webhook_message(tmp_path: Path) -> None:
    with receiver() as hook:
        table = ChannelTable(type="slack", url=hook.url)
        slack = HttpChannel(name="chat", settings=table, url=hook.url, secret=None, slack=True)
        outcome = _dispatcher(tmp_path, slack).deliver(_notification(), "chat")
        (request,) = hook.requests
    assert outcome.delivered
    message = json.loads(request.body)
    assert "X-Lazycelery-Signature" not in request.headers
    assert message["text"].endswith("billing.charge failing: 12 failures in 5 min")
    kinds = [block["type"] for block in message["blocks"]]
    assert kinds == ["header", "section", "section", "context"]
    assert message["blocks"][0]["text"]["type"] == "plain_text"
    assert "`name:billing.charge state:FAILURE`" in message["blocks"][2]["text"]["text"]
    assert "rule=billing-failures" in message["blocks"][3]["elements"][0]["text"]


def _cli(config: Path, *args: str, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([sys.executable, "-m", "lazycelery", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def test_notify_test_and_dead_letters_commands(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    with receiver([500]) as down, receiver([200]) as up:
        config.write_text(f"""
[notify]
dead_letter = "{tmp_path / 'dead.ndjson'}"
[notify.channels.ops]
type = "webhook"
url = "{up.url}"
secret_env = "HOOK_SECRET"
[notify.channels.down]
type = "webhook"
url = "{down.url}"
retries = 1
backoff = 0.01
""")
        ok = _cli(config, "notify", "test", "ops", env={"HOOK_SECRET": "hunter2"})
        assert ok.returncode == 0, ok.stderr
        assert ok.stdout.startswith(f"ops: delivered to {up.url} (1 attempt, ")
        assert "hunter2" not in ok.stdout + ok.stderr
        body = json.loads(up.requests[0].body)
        assert body["kind"] == "test"

        failed = _cli(config, "notify", "test", "down")
        assert failed.returncode == 1
        assert failed.stdout.strip() == (
            f"down: NOT delivered to {down.url} after 2 attempts: HTTP 500: receiver is down "
            "(a test is not kept in the dead letters)")

        missing = _cli(config, "notify", "test", "ops")  # HOOK_SECRET unset
        assert missing.returncode == 2
        assert missing.stderr.strip() == ("lazycelery: notify channel ops: secret_env: "
                                          "environment variable HOOK_SECRET is not set")

        DeadLetterFile(tmp_path / "dead.ndjson").append([_letter("x1", "ops")])
        listed = _cli(config, "notify", "dead-letters")
        assert "ops  alert.firing  billing.charge failing  (3 attempts: HTTP 500)" in listed.stdout
        retried = _cli(config, "notify", "dead-letters", "--retry",
                       env={"HOOK_SECRET": "hunter2"})
        assert retried.returncode == 0, retried.stderr
        assert retried.stdout.startswith("dead letters: 1 delivered, 0 kept in ")
        assert up.requests[-1].headers["X-Lazycelery-Delivery"] == "x1"
    assert _cli(config, "notify", "dead-letters").stdout.startswith("no dead letters")


def _letter(delivery_id: str, channel: str) -> DeadLetter:
    return DeadLetter(id=delivery_id, channel=channel, notification=_notification(),
                      failed=time.time(), attempts=3, error="HTTP 500")


def test_a_channel_still_down_costs_one_try_per_round_not_one_per_letter(tmp_path: Path) -> None:
    dead = DeadLetterFile(tmp_path / "dead.ndjson")
    dead.append([_letter(f"d{i}", "ops") for i in range(3)])
    with receiver([500]) as hook:
        dispatcher = _dispatcher(tmp_path, _webhook(hook.url, retries=0))
        assert dispatcher.retry_dead_letters() == (0, 3)
        assert len(hook.requests) == 1
    letters, _ = dead.read()
    assert [(x.id, x.attempts) for x in letters] == [("d0", 4), ("d1", 3), ("d2", 3)]
    with receiver([200]) as hook:
        assert _dispatcher(tmp_path, _webhook(hook.url)).retry_dead_letters() == (3, 0)
        assert [r.headers["X-Lazycelery-Delivery"] for r in hook.requests] == ["d0", "d1", "d2"]
    assert dead.read() == ([], 0)
