"""What goes over the wire, without the wire: the webhook body and its signature, the Slack
message's limits and escaping, the email message; the dead-letter file's bookkeeping."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from pathlib import Path

from lazycelery.notify.body import email_message, sign, slack_payload, webhook_body
from lazycelery.notify.deadletter import DeadLetter, DeadLetterFile
from lazycelery.notify.message import Notification


def _n(**changes: object) -> Notification:
    fields: dict[str, object] = {
        "kind": "alert.firing", "key": "k", "title": "queue <default> backed up",
        "text": "depth 5,000 > 1,000 & rising", "created": 1.0, "labels": {"queue": "default"},
        "links": {"filter": "queue:default"}}
    fields.update(changes)
    return Notification(**fields)  # type: ignore[arg-type]


def test_the_body_carries_every_field_after_the_version() -> None:
    body = json.loads(webhook_body(_n(), delivery_id="d1", sent=2.5))
    assert list(body)[:3] == ["version", "id", "sent"]
    assert body == {"version": 1, "id": "d1", "sent": 2.5, "kind": "alert.firing", "key": "k",
                    "title": "queue <default> backed up", "text": "depth 5,000 > 1,000 & rising",
                    "created": 1.0, "severity": "warning", "environment": None,
                    "labels": {"queue": "default"}, "links": {"filter": "queue:default"},
                    "payload": {}}


def test_the_signature_is_the_hmac_of_the_body_bytes() -> None:
    body = webhook_body(_n(), delivery_id="d1", sent=2.5)
    expected = hmac.new(b"secret", body, hashlib.sha256).hexdigest()
    assert sign(body, "secret") == f"sha256={expected}"
    assert sign(body, "other") != sign(body, "secret")
    assert sign(body + b" ", "secret") != sign(body, "secret")


def test_slack_text_is_escaped_and_cut_to_slack_limits() -> None:
    message = slack_payload(_n(title="t" * 400, text="x" * 5000, severity="critical"))
    header, section = message["blocks"][0], message["blocks"][1]
    assert len(header["text"]["text"]) == 150 and header["text"]["text"].endswith("…")
    assert len(section["text"]["text"]) == 3000
    escaped = slack_payload(_n())["blocks"][1]["text"]["text"]
    assert escaped == "depth 5,000 &gt; 1,000 &amp; rising"


def test_email_subject_is_one_line_and_the_body_has_the_links() -> None:
    message = email_message(_n(title="two\nlines", severity="critical", environment="prod"),
                            sender="a@example.com", recipients=("b@example.com", "c@example.com"),
                            delivery_id="d1")
    assert message["Subject"] == "[lazycelery] critical: two lines"
    assert message["To"] == "b@example.com, c@example.com"
    assert message["X-Lazycelery-Delivery"] == "d1"
    text = message.get_content()
    assert "filter: queue:default" in text
    assert "environment=prod, queue=default" in text
    assert not message.is_multipart()


def _letter(delivery_id: str, channel: str = "ops", attempts: int = 1) -> DeadLetter:
    return DeadLetter(id=delivery_id, channel=channel, notification=_n(), failed=1.0,
                      attempts=attempts, error="HTTP 500")


def test_settle_keeps_what_was_appended_meanwhile_and_unreadable_lines(tmp_path: Path) -> None:
    file = DeadLetterFile(tmp_path / "sub" / "dead.ndjson")
    file.append([_letter("a"), _letter("b"), _letter("a", channel="mail")])
    with file.path.open("ab") as out:
        out.write(b"{not json\n")
    letters, bad = file.read()
    assert [(x.id, x.channel) for x in letters] == [("a", "ops"), ("b", "ops"), ("a", "mail")]
    assert bad == 1
    file.append([_letter("c")])  # appended after the read: must survive the settle
    file.settle({("a", "ops")}, [_letter("b", attempts=5)])
    letters, bad = file.read()
    assert [(x.id, x.channel, x.attempts) for x in letters] == [
        ("b", "ops", 5), ("a", "mail", 1), ("c", "ops", 1)]
    assert bad == 1
    assert b"{not json" in file.path.read_bytes()


def test_concurrent_appends_lose_nothing(tmp_path: Path) -> None:
    file = DeadLetterFile(tmp_path / "dead.ndjson")

    def write(prefix: str) -> None:
        for i in range(200):
            file.append([_letter(f"{prefix}{i}")])

    threads = [threading.Thread(target=write, args=(p,)) for p in "xyz"]
    for thread in threads:
        thread.start()
    for _ in range(20):
        letters, _ = file.read()
        file.settle({(x.id, x.channel) for x in letters if x.id.endswith("7")})
    for thread in threads:
        thread.join()
    letters, bad = file.read()
    assert bad == 0
    ids = {x.id for x in letters}
    assert {f"{p}{i}" for p in "xyz" for i in range(200) if not str(i).endswith("7")} <= ids


def test_the_documented_verification_accepts_a_real_body_and_refuses_a_forged_one() -> None:
    """docs/notifications.md's receiver code, run on what the webhook channel sends."""
    import re
    import time

    doc = (Path(__file__).resolve().parent.parent / "docs" / "notifications.md").read_text()
    (code,) = re.findall(r"```python\n(import hashlib.*?)```", doc, re.S)
    assert len(code.strip().splitlines()) <= 6
    space: dict[str, object] = {}
    exec(code, space)
    verify = space["verify"]
    assert callable(verify)
    body = webhook_body(_n(), delivery_id="d1", sent=time.time())
    signature = sign(body, "shared")
    assert verify(body, signature, b"shared")
    assert not verify(body.replace(b"rising", b"falling"), signature, b"shared")
    assert not verify(body, signature, b"other")
    old = webhook_body(_n(), delivery_id="d1", sent=time.time() - 3600)
    assert not verify(old, sign(old, "shared"), b"shared")  # a replay an hour later
