"""Redis key layout: priority mapping (checked against kombu's own), names with a prefix, bindings."""

from __future__ import annotations

import pytest

from lazycelery.broker.keys import (
    DEFAULT_SEP,
    Binding,
    RedisLayout,
    is_internal,
    pidbox_hostname,
)
from lazycelery.errors import ConfigError


def _kombu_channel_priority(steps: list[int], n: int) -> int:
    from kombu.transport.redis import Channel

    # Channel.priority only reads priority_steps: call it unbound on a stand-in.
    class Stub:
        priority_steps = steps

    return int(Channel.priority(Stub(), n))  # type: ignore[arg-type]


@pytest.mark.parametrize("steps", [[0, 3, 6, 9], list(range(10)), [0, 5]])
def test_priority_steps_match_kombu(steps: list[int]) -> None:
    layout = RedisLayout(steps=tuple(steps))
    for priority in range(10):
        assert layout.step_for(priority) == _kombu_channel_priority(steps, priority)


def test_default_mapping_and_clamping() -> None:
    layout = RedisLayout()
    assert [layout.step_for(p) for p in (None, 0, 1, 2, 3, 5, 6, 8, 9)] == [0, 0, 0, 0, 3, 3, 6,
                                                                          6, 9]
    assert layout.step_for(-4) == 0
    assert layout.step_for(255) == 9


def test_queue_keys_in_consumption_order_with_prefix() -> None:
    layout = RedisLayout.from_transport_options({"global_keyprefix": "tenant:"})
    assert layout.queue_keys("q") == ["tenant:q", f"tenant:q{DEFAULT_SEP}3",
                                      f"tenant:q{DEFAULT_SEP}6", f"tenant:q{DEFAULT_SEP}9"]
    assert layout.unacked == "tenant:unacked"
    assert layout.binding_match == "tenant:_kombu.binding.*"
    assert layout.parse_bindings(b"tenant:_kombu.binding.celery",
                                 [b"celery\x06\x16\x06\x16celery"]) == [
        Binding("celery", "celery", "", "celery")]


def test_custom_sep_steps_and_unacked_key() -> None:
    layout = RedisLayout.from_transport_options(
        {"sep": ":", "priority_steps": [9, 0, 5, 5], "unacked_key": "acks"})
    assert layout.steps == (0, 5, 9)
    assert layout.queue_keys("q") == ["q", "q:5", "q:9"]
    assert layout.unacked == "acks"
    assert layout.parse_member("ex", "rk:pat:q") == Binding("ex", "rk", "pat", "q")


def test_prefix_glob_characters_are_escaped() -> None:
    layout = RedisLayout(prefix="app[1]*:")
    assert layout.binding_match == r"app\[1\]\*:_kombu.binding.*"


@pytest.mark.parametrize("options", [{"priority_steps": ["a"]}, {"priority_steps": []},
                                     {"sep": 3}])
def test_bad_transport_options_are_config_errors(options: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        RedisLayout.from_transport_options(options)


def test_binding_members() -> None:
    layout = RedisLayout()
    members = [b"celery\x06\x16\x06\x16celery", b"garbage", b"\x06\x16\x06\x16",
               "rk\x06\x16\x06\x16caf\u00e9".encode()]
    assert layout.parse_bindings(b"_kombu.binding.celery", members) == [
        Binding("celery", "celery", "", "celery"), Binding("celery", "rk", "", "caf\u00e9")]


@pytest.mark.parametrize(("binding", "internal"), [
    (Binding("celery", "celery", "", "celery"), False),
    (Binding("celeryev", "#", "", "celeryev.6f1c"), True),
    (Binding("celery.pidbox", "", "", "w1@host.celery.pidbox"), True),
    (Binding("reply.celery.pidbox", "x", "", "abc.reply.celery.pidbox"), True),
    (Binding("hipri", "hipri", "", "hipri"), False),
])
def test_internal_bindings(binding: Binding, internal: bool) -> None:
    assert is_internal(binding) is internal


def test_pidbox_hostnames() -> None:
    assert pidbox_hostname(Binding("celery.pidbox", "", "", "w1@host.celery.pidbox")) == "w1@host"
    assert pidbox_hostname(Binding("reply.celery.pidbox", "", "", "a.reply.celery.pidbox")) is None
    assert pidbox_hostname(Binding("celery", "celery", "", "celery")) is None
