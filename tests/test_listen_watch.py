"""The ``--listen`` commands' connection watch: connected once the ingest says so, and one line
with the last error when it never did."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from lazycelery.commands.listen import ListenWatch
from lazycelery.errors import LazyCeleryError


def test_never_connected_is_one_line_with_the_last_error() -> None:
    watch = ListenWatch()
    watch.on_status(SimpleNamespace(state="connecting", last_error=None))
    watch.on_status(SimpleNamespace(state="reconnecting", last_error="Connection refused"))
    watch.on_status(SimpleNamespace(state="reconnecting", last_error=None))  # kept
    with pytest.raises(LazyCeleryError) as caught:
        watch.check("redis://h:6379/0")
    assert str(caught.value) == "could not read events from redis://h:6379/0: Connection refused"


def test_never_connected_without_an_error() -> None:
    with pytest.raises(LazyCeleryError) as caught:
        ListenWatch().check("amqp://guest:**@h//")
    assert str(caught.value) == "could not read events from amqp://guest:**@h//"


def test_connected() -> None:
    watch = ListenWatch()
    watch.on_status(SimpleNamespace(state="connected", last_error=None))
    assert watch.connected.is_set()
    watch.check("redis://h")  # no error
