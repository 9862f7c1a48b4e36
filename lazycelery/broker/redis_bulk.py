"""Bulk move / delete / requeue of waiting messages on kombu's Redis transport.

Each message is moved by one Lua script step: ``LREM`` of its exact payload from its priority
sub-list and, only if that removed it, ``LPUSH`` of the copy into the target's sub-list of the
same priority. A message a worker took meanwhile is not found by ``LREM`` and is counted as
gone; none is ever lost or duplicated. Messages are never unpickled: only the JSON envelope
is read (for the task id) and rewritten (``delivery_info`` names the new queue, so a restore
after the visibility timeout returns it there, not to the old queue).
"""

from __future__ import annotations

from typing import Any

import msgspec
import redis

from lazycelery.broker.bulk import BulkOutcome, Selection
from lazycelery.broker.envelope import decode_tail
from lazycelery.broker.keys import RedisLayout

__all__ = ["GUARANTEE", "transfer"]

GUARANTEE = ("redis: each message moved atomically (LREM of its exact payload, then LPUSH, "
             "in one Lua script); moved messages join the back of the target queue")
DELETE_GUARANTEE = ("redis: each message removed by LREM of its exact payload (a message a "
                    "worker took first is counted as no longer there)")
#: messages per EVAL: short scripts keep Redis responsive for other clients
BATCH = 200

_SCRIPT = """
local out = {}
for i = 1, #KEYS / 2 do
  local n = redis.call('LREM', KEYS[2 * i - 1], 1, ARGV[2 * i - 1])
  if n > 0 and ARGV[2 * i] ~= '' then
    redis.call('LPUSH', KEYS[2 * i], ARGV[2 * i])
  end
  out[i] = n
end
return out
"""

_json = msgspec.json.Decoder()
_encode = msgspec.json.Encoder()


def readdressed(raw: bytes, target: str) -> bytes:
    """The envelope with ``delivery_info`` naming ``target`` (default exchange, as a direct
    publish to that queue would); the body and headers are untouched bytes-for-value."""
    envelope: Any = _json.decode(raw)
    props = envelope.setdefault("properties", {})
    props["delivery_info"] = {"exchange": "", "routing_key": target}
    return _encode.encode(envelope)


class _Found(msgspec.Struct):
    key: str
    step: int
    raw: bytes
    id: str | None


def _scan(client: redis.Redis, layout: RedisLayout, queue: str,
          selection: Selection) -> tuple[list[_Found], int]:
    """The selected messages among the first ``limit`` in consumption order, and how many
    were examined."""
    keys = layout.queue_keys(queue)
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.lrange(key, -selection.limit, -1)
    found: list[_Found] = []
    scanned = 0
    for step, key, items in zip(layout.steps, keys, pipe.execute(), strict=True):
        for raw in reversed(items):  # the next message is the last element
            if scanned == selection.limit:
                return found, scanned
            scanned += 1
            info = decode_tail(raw)
            task_id = info.id if info is not None else None
            if selection.wants(task_id):
                found.append(_Found(key=key, step=step, raw=raw, id=task_id))
    return found, scanned


def transfer(client: redis.Redis, layout: RedisLayout, action: str, source: str,
             selection: Selection, target: str | None) -> BulkOutcome:
    """Move the selected messages of ``source`` to ``target``, or delete them when ``target``
    is None."""
    found, scanned = _scan(client, layout, source, selection)
    outcome = BulkOutcome(action=action, source=source, scanned=scanned,
                          guarantee=GUARANTEE if target else DELETE_GUARANTEE)
    script = client.register_script(_SCRIPT)
    for start in range(0, len(found), BATCH):
        batch = found[start:start + BATCH]
        keys: list[str] = []
        argv: list[bytes] = []
        for message in batch:
            keys += [message.key, layout.queue_key(target, message.step) if target
                     else message.key]
            argv += [message.raw, readdressed(message.raw, target) if target else b""]
            if target:
                outcome.targets[message.id or "?"] = target
        removed = script(keys=keys, args=argv)
        for message, count in zip(batch, removed, strict=True):
            (outcome.done if count else outcome.gone).append(message.id or "?")
    for message in found:
        if message.id in outcome.gone:
            outcome.targets.pop(message.id, None)
    return outcome.finish(selection, [m.id for m in found if m.id])
