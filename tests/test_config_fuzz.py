"""The config loader under random and malformed input: whatever the file, the flags or the
variables hold, resolving settings either works or raises ConfigError (one line), never anything
else, and `config show` can print what was resolved."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lazycelery.commands.config_cmd import render_settings
from lazycelery.config import MAX_DEPTH, Settings, load_file, resolve
from lazycelery.errors import ConfigError

FLAG_NAMES = (
    "broker", "app", "result_backend", "env", "config", "read_only", "max_tasks", "ingest",
    "no_color",
)

VALID = """\
default_environment = "local"
read_only = false
max_tasks = 5000
ingest = "kombu"

[environments.local]
broker = "redis://:p@ss@localhost:6379/5"
result_backend = "redis://localhost:6379/6"
queues = ["celery", "billing"]
transport_options = { global_keyprefix = "env:", priority_steps = [0, 3, 6, 9] }
management_url = "http://rabbit:15672/api/"

[environments.staging]
broker = "amqp://guest@staging//"
read_only = true

[keys]
quit = "q"
"""

# LAZYCELERY_FUZZ_EXAMPLES=5000 for a longer run (150: a few seconds in the unit suite)
FUZZ = settings(max_examples=int(os.environ.get("LAZYCELERY_FUZZ_EXAMPLES", "150")), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


def flags(**values: Any) -> argparse.Namespace:
    return argparse.Namespace(**{name: values.pop(name, None) for name in FLAG_NAMES}, **values)


def resolves_or_config_error(text: str | bytes, **flag_values: Any) -> Settings | None:
    """Write ``text`` as the config file and resolve; only ConfigError may come out."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "config.toml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
        try:
            resolved = resolve(flags(config=str(path), **flag_values), {})
        except ConfigError as exc:
            assert "\n" not in str(exc)
            return None
        render_settings(resolved)  # `config show` prints whatever was accepted
        return resolved


# --- random bytes and text -------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes(data: bytes) -> None:
    resolves_or_config_error(data)


TOML_PIECES = st.sampled_from([
    "[", "]", "[[", "]]", "{", "}", "=", '"', "'", '"""', ",", ".", "\n", "#", "\\", " ", "\t",
    "environments", "local", "broker", "keys", "quit", "transport_options", "queues",
    "default_environment", "max_tasks", "ingest", "read_only", "management_url", "1", "-1",
    "1e400", "nan", "inf", "true", "1979-05-27T07:32:00Z", "0x10", "\x00", "\x1b[2J", "é",
    "redis://:a/b@h", "redis://[::1", "amqp://", ";",
])


@FUZZ
@given(st.lists(TOML_PIECES, max_size=40))
def test_token_soup(pieces: list[str]) -> None:
    resolves_or_config_error("".join(pieces))


@FUZZ
@given(st.data())
def test_mutations_of_a_valid_file(data: st.DataObject) -> None:
    text = VALID
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(text)))
        cut = data.draw(st.integers(0, 6))
        text = text[:at] + data.draw(TOML_PIECES | st.text(max_size=3)) + text[at + cut:]
    resolves_or_config_error(text)


# --- well-formed TOML holding values of the wrong type ---------------------------------------


def toml_value(value: Any) -> str:
    """``value`` as an inline TOML value (JSON strings are valid TOML basic strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, (int, dt.date, dt.time)):
        return value.isoformat() if not isinstance(value, int) else str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


SCALARS = (
    st.none().map(lambda _: "")  # an empty string
    | st.text(max_size=20)
    | st.sampled_from(["redis://:p/w@h", "redis://[::1", "amqp://a:b@c//", "local", "staging",
                       "q", "", " ", "none", "http://[::1", "db+x://u:p@h/d"])
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats()
    | st.booleans()
    | st.datetimes(timezones=st.none()).map(lambda d: d.replace(microsecond=0))
    | st.dates()
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(["broker", "app", "queues", "quit", "x", "", "a.b"]),
                      inner, max_size=3),
    max_leaves=8,
)
PLACES = st.sampled_from([
    ("default_environment",), ("read_only",), ("max_tasks",), ("ingest",), ("environments",),
    ("environments", "local"), ("environments", "local", "broker"),
    ("environments", "local", "result_backend"), ("environments", "local", "app"),
    ("environments", "local", "read_only"), ("environments", "local", "queues"),
    ("environments", "local", "transport_options"),
    ("environments", "local", "management_url"), ("keys",), ("keys", "quit"), ("unknown",),
])


def document(places: list[tuple[tuple[str, ...], Any]]) -> str:
    tree: dict[str, Any] = {"default_environment": "local",
                            "environments": {"local": {"broker": "redis://h:6379/0"}}}
    for path, value in places:
        node = tree
        for key in path[:-1]:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        node[path[-1]] = value
    return "\n".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in tree.items()) + "\n"


@FUZZ
@given(st.lists(st.tuples(PLACES, VALUES), min_size=1, max_size=4),
       st.sampled_from([None, "local", "staging", ""]))
def test_values_of_the_wrong_type(places: list[tuple[tuple[str, ...], Any]],
                                  env: str | None) -> None:
    resolves_or_config_error(document(places), env=env)


# --- flags and variables ---------------------------------------------------------------------


@FUZZ
@given(st.text(max_size=60), st.sampled_from(["broker", "result_backend", "app", "env"]))
def test_any_flag_value(value: str, name: str) -> None:
    try:
        resolve(flags(**{name: value}), {"LAZYCELERY_CONFIG": "/dev/null"})
    except ConfigError as exc:
        assert "\n" not in str(exc) and "\x1b" not in str(exc).replace("\\x1b", "")


@FUZZ
@given(st.text(max_size=60), st.sampled_from(["LAZYCELERY_BROKER_URL", "CELERY_BROKER_URL",
                                              "LAZYCELERY_RESULT_BACKEND",
                                              "LAZYCELERY_MANAGEMENT_URL"]))
def test_any_variable_value(value: str, variable: str) -> None:
    try:
        resolve(flags(), {"LAZYCELERY_CONFIG": "/dev/null", variable: value})
    except ConfigError as exc:
        assert "\n" not in str(exc)


# --- deep nesting ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "a = " + "[" * 100_000 + "]" * 100_000,
        "a = " + "{b = " * 2_000 + "1" + "}" * 2_000,
        "[" + ".".join(["t"] * 5_000) + "]\nx = 1\n",
        "[environments.local]\ntransport_options = " + "[" * (MAX_DEPTH + 5)
        + "]" * (MAX_DEPTH + 5),
    ],
    ids=["arrays", "inline-tables", "dotted-keys", "transport-options"],
)
def test_deep_nesting_is_one_config_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "deep.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_file(path)
    assert str(caught.value) == (
        f"config {path}: tables or arrays nested more than {MAX_DEPTH} levels deep"
    )


def test_reasonable_nesting_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "ok.toml"
    path.write_text('[environments.local]\ntransport_options = { a = { b = { c = [[1]] } } }\n',
                    encoding="utf-8")
    assert load_file(path).environments["local"].transport_options == {"a": {"b": {"c": [[1]]}}}
