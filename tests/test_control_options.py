"""The checked options of a pool restart (modules, reload) and an add-consumer (exchange, its
type, routing key): what is refused, with the parameter named, and what the audit records."""

from __future__ import annotations

import pytest

from lazycelery.core.control_options import (
    MAX_MODULES,
    BadOption,
    consumer_options,
    describe,
    pool_options,
)


def test_pool_options_take_dotted_python_names_only() -> None:
    assert pool_options(None, False) == {}
    assert pool_options(["proj.tasks", "proj.tasks", "_x.y2"], True) == {
        "modules": ["proj.tasks", "_x.y2"], "reload": True}
    assert pool_options([], True) == {"reload": True}
    for bad in ("os; rm -rf", "a..b", ".a", "a.", "1abc", "a-b", "é.x", "", "a/b", "x" * 256):
        with pytest.raises(BadOption) as refused:
            pool_options([bad], False)
        assert refused.value.parameter == "modules"
        assert str(refused.value).startswith("pool-restart: bad module name ")
        assert "\n" not in str(refused.value)
    with pytest.raises(BadOption, match=f"at most {MAX_MODULES} modules"):
        pool_options([f"m{i}" for i in range(MAX_MODULES + 1)], False)


def test_consumer_options_name_the_bad_one() -> None:
    assert consumer_options(None, "direct", None) == {}
    assert consumer_options(None, None, None) == {}
    assert consumer_options("jobs", "topic", "reports.#") == {
        "exchange": "jobs", "exchange_type": "topic", "routing_key": "reports.#"}
    assert consumer_options("jobs", "direct", None) == {"exchange": "jobs",
                                                       "exchange_type": "direct"}
    assert consumer_options(None, "x-delayed-message", "") == {
        "exchange_type": "x-delayed-message", "routing_key": ""}
    for args, parameter in ((("bad name", None, None), "exchange"),
                            (("", None, None), "exchange"),
                            (("e" * 256, None, None), "exchange"),
                            (("jobs", "bogus", None), "exchange_type"),
                            (("jobs", "X-Up", None), "exchange_type"),
                            (("jobs", "topic", "a\nb"), "routing_key"),
                            (("jobs", "topic", "k" * 256), "routing_key")):
        with pytest.raises(BadOption) as refused:
            consumer_options(*args)
        assert refused.value.parameter == parameter
        assert "\n" not in str(refused.value)


def test_describe_says_the_options_in_one_line() -> None:
    assert describe({}) == ""
    assert describe(consumer_options("jobs", "topic", "r.#")) == \
        "exchange jobs (topic), routing key r.#"
    assert describe(consumer_options(None, None, "rk")) == "routing key rk"
    assert describe(pool_options(["a.b"], True)) == "reload a.b"
    assert describe(pool_options(None, True)) == "reload every task module"
    assert describe(pool_options(["a.b", "c"], False)) == "import a.b, c"
