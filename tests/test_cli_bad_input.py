"""Bad input given to the real `lazycelery` command (a subprocess, no broker needed): one line on
stderr, exit code 2, never a traceback, never a piece of a password, never a raw escape."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
HUGE_HOST = "a" * 100_000
AMBIGUOUS = "redis://:Zq9/Xy7#Wv@127.0.0.1:1/0"  # a raw "/" and "#" in the password


def run(*args: str, env: dict[str, str] | None = None,
        cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith(("LAZYCELERY_", "CELERY_")) and k != "NO_COLOR"}
    environ.update(LAZYCELERY_CONFIG=os.devnull, LAZYCELERY_AUDIT_LOG=os.devnull)
    environ.update(env or {})
    return subprocess.run([sys.executable, "-m", "lazycelery", *args], capture_output=True,
                          text=True, timeout=60, env=environ, cwd=cwd,
                          stdin=subprocess.DEVNULL)


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a run that failed with exit code 2."""
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.endswith("\n") and result.stderr.count("\n") == 1, result.stderr
    assert "\x1b" not in result.stderr
    assert result.stderr.startswith("lazycelery: ")
    assert len(result.stderr) < 1_000  # a 100 KB URL is not echoed whole
    return result.stderr.rstrip("\n")


# (argv before the command, extra environment, the start of the expected line after "lazycelery: ")
BAD_URLS = [
    pytest.param(["--broker", "redis://[::1"], {},
                 "--broker: bad URL redis://[::1: an unclosed '['", id="unclosed-ipv6"),
    pytest.param([], {"CELERY_BROKER_URL": "redis://[::1"},
                 "CELERY_BROKER_URL: bad URL redis://[::1: an unclosed '['",
                 id="unclosed-ipv6-variable"),
    pytest.param(["--broker", f"redis://{HUGE_HOST}:6379/0"], {},
                 "--broker: bad URL redis://aaaa", id="100kb-host"),
    pytest.param([], {"LAZYCELERY_BROKER_URL": f"amqp://{HUGE_HOST}//"},
                 "LAZYCELERY_BROKER_URL: bad URL amqp://aaaa", id="100kb-host-variable"),
    pytest.param(["--broker", "redis://a..b:6379/0"], {},
                 "--broker: bad URL redis://a..b:6379/0: the host name is not valid",
                 id="empty-label"),
    pytest.param(["--broker", "redis://h:99999/0"], {},
                 "--broker: bad URL redis://h:99999/0: the port is not a number", id="port"),
    pytest.param(["--broker", "redis://h\x1b[2J:6379/0"], {},
                 "--broker: bad URL redis://h\\x1b[2J:6379/0: a control character (\\x1b)",
                 id="escape"),
    pytest.param(["--broker", AMBIGUOUS], {},
                 "--broker: bad URL redis://********@127.0.0.1:1/0: where the password ends "
                 "is ambiguous", id="ambiguous-password"),
    pytest.param(["--broker", ""], {}, "--broker is empty", id="empty-broker"),
    pytest.param(["--broker", "  "], {}, "--broker is empty", id="blank-broker"),
    pytest.param(["--result-backend", ""], {}, "--result-backend is empty", id="empty-backend"),
    pytest.param(["-A", ""], {}, "-A/--app is empty", id="empty-app"),
    pytest.param(["--env", ""], {}, "--env is empty", id="empty-env"),
    pytest.param(["--config", ""], {}, "--config is empty", id="empty-config"),
]


@pytest.mark.parametrize(("before", "env", "expected"), BAD_URLS)
@pytest.mark.parametrize("command", [["queues"], ["tail", "--timeout", "5"], []],
                         ids=["queues", "tail", "dashboard"])
def test_bad_connection_input_is_one_line(before: list[str], env: dict[str, str],
                                          expected: str, command: list[str]) -> None:
    line = one_line(run(*before, *command, env=env))
    assert line.startswith(f"lazycelery: {expected}"), line
    assert "Zq9" not in line and "Xy7" not in line


def test_the_ambiguous_password_line_says_how_to_encode_it() -> None:
    line = one_line(run("--broker", AMBIGUOUS, "queues"))
    assert "percent-encode the password ('/' as %2F, '?' as %3F, '#' as %23, '@' as %40" in line
    assert "urllib.parse.quote(sys.argv[1], safe=\"\")" in line


def test_missing_config_files_are_errors_whichever_way_they_are_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    by_flag = one_line(run("--config", str(missing), "queues"))
    assert by_flag == f"lazycelery: config {missing}: file not found"
    by_variable = one_line(run("queues", env={"LAZYCELERY_CONFIG": str(missing)}))
    assert by_variable == (f"lazycelery: config {missing}: file not found (LAZYCELERY_CONFIG "
                           "names it; `lazycelery config init` writes it)")
    # `config path` and `config init` still work with it: init is how the file gets made
    assert run("config", "path", env={"LAZYCELERY_CONFIG": str(missing)}).stdout == (
        f"{missing}\n")
    made = run("config", "init", env={"LAZYCELERY_CONFIG": str(missing)})
    assert made.returncode == 0 and missing.exists()


@pytest.mark.parametrize(
    "text",
    [
        "a = " + "[" * 50_000 + "]" * 50_000,
        "x = " + "{y = " * 1_000 + "1" + "}" * 1_000,
        "[" + ".".join(["t"] * 3_000) + "]\n",
    ],
    ids=["arrays", "inline-tables", "dotted-keys"],
)
@pytest.mark.parametrize("command", [["config", "show"], ["queues"], []],
                         ids=["config-show", "queues", "dashboard"])
def test_deeply_nested_config_is_one_line(tmp_path: Path, text: str,
                                          command: list[str]) -> None:
    path = tmp_path / "deep.toml"
    path.write_text(text, encoding="utf-8")
    line = one_line(run("--config", str(path), *command))
    assert line == f"lazycelery: config {path}: tables or arrays nested more than 32 levels deep"


def test_empty_variables_count_as_unset_and_are_noted() -> None:
    result = run("config", "show", env={"CELERY_BROKER_URL": "", "LAZYCELERY_BROKER_URL": ""})
    assert result.returncode == 0, result.stderr
    fields = [line.split(None, 1) for line in result.stdout.splitlines()]
    assert ["broker_source", "default"] in fields
    assert ["note", "LAZYCELERY_BROKER_URL is set but empty: ignored, as if unset"] in fields
    assert ["note", "CELERY_BROKER_URL is set but empty: ignored, as if unset"] in fields


def test_an_escape_in_a_config_value_is_shown_not_sent(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[environments.local]\nbroker = "redis://h\\u001b]0;x\\u0007/0"\n',
                    encoding="utf-8")
    line = one_line(run("--config", str(path), "config", "show"))
    assert "\\x1b]0;x\\x07" in line


@pytest.mark.parametrize(
    ("broker", "expected"),
    [
        ("", "--broker is empty (leave it out for the embedded broker)"),
        ("redis://[::1", "--broker: bad URL redis://[::1: an unclosed '['"),
        (AMBIGUOUS, "--broker: bad URL redis://********@127.0.0.1:1/0: where the password "
                    "ends is ambiguous"),
    ],
    ids=["empty", "unclosed-ipv6", "ambiguous-password"],
)
def test_demo_checks_its_broker_url_the_same_way(broker: str, expected: str) -> None:
    line = one_line(run("demo", "--no-dashboard", "--broker", broker))
    assert line.startswith(f"lazycelery: {expected}"), line
    assert "Zq9" not in line


@pytest.mark.parametrize("argv", [
    ["serve", "--queue-interval", "1e12"],
    ["queues", "--interval", "1e300"],
    ["tail", "--since", "99999d"],
    ["errors", "--new", "99999d"],
    ["errors", "--since", "99999d"],
    ["stats", "heatmap", "--bucket", "99999d"],
], ids=lambda argv: " ".join(argv[:2]))
def test_absurd_durations_are_one_line(argv: list[str], tmp_path: Path) -> None:
    """A duration past 10 years (or a number of seconds past it): one error line, exit 2
    (an option's type error comes after argparse's usage lines, as every option's does)."""
    store = f"sqlite:///{tmp_path / 'h.sqlite3'}"
    result = run("--broker", "redis://127.0.0.1:1/0", *argv, env={"LAZYCELERY_STORE": store})
    assert result.returncode == 2 and "Traceback" not in result.stderr, result
    errors = [line for line in result.stderr.splitlines() if "too long" in line]
    assert len(errors) == 1 and errors[0] == result.stderr.splitlines()[-1], result.stderr
    assert errors[0].startswith(("lazycelery: ", "lazycelery serve: error: argument",
                                 "lazycelery queues: error: argument")), errors[0]
