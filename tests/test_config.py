"""Settings resolution: the precedence ladder, the TOML file, every error message, masking."""

from __future__ import annotations

import argparse
import dataclasses
import re
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import platformdirs
import pytest

from lazycelery import cli
from lazycelery.config import (
    DEFAULT_BROKER,
    DEFAULT_MAX_TASKS,
    ConfigFile,
    Settings,
    default_config_path,
    load_file,
    mask_url,
    resolve,
)
from lazycelery.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent

CLEARED_VARIABLES = (
    "LAZYCELERY_BROKER_URL",
    "CELERY_BROKER_URL",
    "CELERY_BROKER_READ_URL",
    "CELERY_BROKER_WRITE_URL",
    "LAZYCELERY_RESULT_BACKEND",
    "CELERY_RESULT_BACKEND",
    "LAZYCELERY_CONFIG",
    "LAZYCELERY_STORE",
    "NO_COLOR",
)

# (url, the passwords in it); the ids keep the passwords out of tmp_path names.
PASSWORD_URLS = [
    pytest.param("redis://:secret@h:6379/0", ("secret",), id="redis"),
    pytest.param("amqp://u:secret@h1;amqp://u:secret2@h2", ("secret", "secret2"), id="failover"),
    pytest.param(
        "sentinel://:pw@h:26379;sentinel://:pw2@h2:26379", (":pw@", ":pw2@"), id="sentinel"
    ),
]

FLAG_NAMES = (
    "broker", "app", "result_backend", "env", "config", "read_only", "max_tasks", "ingest",
    "no_color",
)


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No real user config, no inherited broker variables, and sys.path restored after -A."""
    for name in CLEARED_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    # the default location, in a directory that does not exist (LAZYCELERY_CONFIG naming a
    # missing file is an error, like --config)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "absent"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))


def flags(**values: Any) -> argparse.Namespace:
    """A Namespace shaped like the one cli.main parses, every option unset unless given."""
    return argparse.Namespace(**{name: values.pop(name, None) for name in FLAG_NAMES}, **values)


def environ(tmp_path: Path, **variables: str) -> dict[str, str]:
    return dict(variables)  # LAZYCELERY_CONFIG unset: the default location, absent


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def config_error(args: argparse.Namespace, env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as caught:
        resolve(args, env)
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Write a tiny app module into the cwd; return its (unique) module name."""
    names: list[str] = []

    def make(body: str, *, package: bool = False) -> str:
        name = f"proj_{uuid.uuid4().hex[:10]}"
        names.append(name)
        source = textwrap.dedent(body)
        if package:
            (tmp_path / name).mkdir()
            (tmp_path / name / "__init__.py").write_text("", encoding="utf-8")
            (tmp_path / name / "celery.py").write_text(source, encoding="utf-8")
        else:
            (tmp_path / f"{name}.py").write_text(source, encoding="utf-8")
        return name

    yield make
    for module in list(sys.modules):
        if module.split(".")[0] in names:
            del sys.modules[module]


APP_MODULE = """\
    from celery import Celery
    from kombu import Queue

    app = Celery(
        "proj",
        broker="redis://:appsecret@apphost:6379/3",
        backend="redis://apphost:6379/4",
        set_as_current=False,
    )
    app.conf.broker_transport_options = {"global_keyprefix": "app:"}
    app.conf.task_default_queue = "default"
    app.conf.task_queues = [Queue("billing"), Queue("default")]
"""

BARE_APP_MODULE = """\
    from celery import Celery

    app = Celery("bare", set_as_current=False)
"""

FULL_CONFIG = """\
    default_environment = "local"
    read_only = false
    max_tasks = 5000
    ingest = "kombu"

    [environments.local]
    broker = "redis://localhost:6379/5"
    result_backend = "redis://localhost:6379/6"
    read_only = false
    queues = ["celery", "billing"]
    transport_options = { global_keyprefix = "env:", priority_steps = [0, 3, 6, 9] }

    [environments.staging]
    broker = "amqp://guest@staging//"
    read_only = true

    [keys]
    quit = "q"
    help = "?"
"""


@pytest.fixture
def run_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, str, str]]:
    # Only this sub-command: the others have their own tests and must not break these.
    monkeypatch.setattr(cli, "COMMANDS", ("lazycelery.commands.config_cmd",))

    def run(*argv: str) -> tuple[int, str, str]:
        code = cli.main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


# --- the broker ladder -----------------------------------------------------------------------

BROKER_RUNGS = [
    ("--broker", "redis://flag:6379/0"),
    ("-A", "redis://:appsecret@apphost:6379/3"),
    ("LAZYCELERY_BROKER_URL", "redis://lazyvar:6379/0"),
    ("CELERY_BROKER_URL", "redis://celeryvar:6379/0"),
    ("config environment 'local'", "redis://localhost:6379/5"),
    ("default", DEFAULT_BROKER),
]


@pytest.mark.parametrize("top", range(len(BROKER_RUNGS)), ids=[r[0] for r in BROKER_RUNGS])
def test_broker_ladder_each_rung_beats_the_ones_below(
    top: int, tmp_path: Path, make_app: Callable[..., str]
) -> None:
    enabled = {name for name, _ in BROKER_RUNGS[top:]}
    path = write_config(tmp_path, FULL_CONFIG) if "config environment 'local'" in enabled else None
    module = make_app(APP_MODULE) if "-A" in enabled else None
    variables = {
        name: url for name, url in BROKER_RUNGS if name in enabled and name.isupper()
    }
    settings = resolve(
        flags(
            broker="redis://flag:6379/0" if "--broker" in enabled else None,
            app=module,
            config=str(path) if path else None,
        ),
        environ(tmp_path, **variables),
    )
    expected_source, expected_url = BROKER_RUNGS[top]
    if expected_source == "-A":
        expected_source = f"-A {module}"
    assert (settings.broker_source, settings.broker_url) == (expected_source, expected_url)


def test_empty_variables_count_as_unset(tmp_path: Path) -> None:
    settings = resolve(flags(), environ(tmp_path, LAZYCELERY_BROKER_URL="", CELERY_BROKER_URL=""))
    assert (settings.broker_url, settings.broker_source) == (DEFAULT_BROKER, "default")


def test_defaults_without_any_config(tmp_path: Path) -> None:
    settings = resolve(flags(), environ(tmp_path))
    assert settings.broker_url == DEFAULT_BROKER
    assert settings.broker_source == "default"
    assert settings.result_backend is None
    assert settings.env_name is None
    assert settings.app_spec is None
    assert settings.read_only is False
    assert settings.max_tasks == DEFAULT_MAX_TASKS
    assert settings.ingest == "auto"
    assert settings.no_color is False
    assert settings.config_path == tmp_path / "absent" / "lazycelery" / "config.toml"
    assert dict(settings.keys) == {}
    assert dict(settings.transport_options) == {}
    assert settings.queues == ()
    assert settings.notes == ()


def test_default_environment_supplies_every_environment_key(tmp_path: Path) -> None:
    path = write_config(tmp_path, FULL_CONFIG)
    settings = resolve(flags(config=str(path)), environ(tmp_path))
    assert settings.env_name == "local"
    assert settings.broker_source == "config environment 'local'"
    assert settings.result_backend == "redis://localhost:6379/6"
    assert settings.queues == ("celery", "billing")
    assert dict(settings.transport_options) == {
        "global_keyprefix": "env:",
        "priority_steps": [0, 3, 6, 9],
    }
    assert dict(settings.keys) == {"quit": "q", "help": "?"}
    assert settings.max_tasks == 5000
    assert settings.ingest == "kombu"
    assert settings.config_path == path


def test_env_flag_picks_another_environment(tmp_path: Path) -> None:
    path = write_config(tmp_path, FULL_CONFIG)
    settings = resolve(flags(config=str(path), env="staging"), environ(tmp_path))
    assert settings.env_name == "staging"
    assert settings.broker_url == "amqp://guest@staging//"
    assert settings.broker_source == "config environment 'staging'"
    assert settings.read_only is True
    assert settings.queues == ()


def test_config_file_found_through_lazycelery_config(tmp_path: Path) -> None:
    path = write_config(tmp_path, FULL_CONFIG)
    settings = resolve(flags(), {"LAZYCELERY_CONFIG": str(path)})
    assert settings.config_path == path
    assert settings.env_name == "local"


def test_default_config_path_is_the_platform_user_config_dir(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LAZYCELERY_CONFIG", raising=False)
    expected = platformdirs.user_config_path("lazycelery", appauthor=False) / "config.toml"
    assert default_config_path() == expected
    monkeypatch.setenv("LAZYCELERY_CONFIG", "/elsewhere/lc.toml")
    assert default_config_path() == Path("/elsewhere/lc.toml")


def test_variable_overriding_an_explicit_env_leaves_a_note(tmp_path: Path) -> None:
    path = write_config(tmp_path, FULL_CONFIG)
    variables = environ(tmp_path, CELERY_BROKER_URL="redis://shell:6379/0")
    settings = resolve(flags(config=str(path), env="staging"), variables)
    assert settings.broker_source == "CELERY_BROKER_URL"
    assert settings.read_only is True
    assert len(settings.notes) == 1
    assert "CELERY_BROKER_URL overrides" in settings.notes[0]
    assert resolve(flags(config=str(path)), variables).notes == ()


# --- the other settings ----------------------------------------------------------------------

BACKEND_RUNGS = [
    ("--result-backend", "redis://flag:6379/1"),
    ("-A", "redis://apphost:6379/4"),
    ("LAZYCELERY_RESULT_BACKEND", "redis://lazyvar:6379/1"),
    ("CELERY_RESULT_BACKEND", "rpc://"),
    ("environment", "redis://localhost:6379/6"),
    ("none", None),
]


@pytest.mark.parametrize("top", range(len(BACKEND_RUNGS)), ids=[r[0] for r in BACKEND_RUNGS])
def test_result_backend_ladder(top: int, tmp_path: Path, make_app: Callable[..., str]) -> None:
    enabled = {name for name, _ in BACKEND_RUNGS[top:]}
    path = write_config(tmp_path, FULL_CONFIG) if "environment" in enabled else None
    variables = {name: url for name, url in BACKEND_RUNGS if name in enabled and name.isupper()}
    settings = resolve(
        flags(
            result_backend="redis://flag:6379/1" if "--result-backend" in enabled else None,
            app=make_app(APP_MODULE) if "-A" in enabled else None,
            config=str(path) if path else None,
        ),
        environ(tmp_path, **{k: v for k, v in variables.items() if v}),
    )
    assert settings.result_backend == BACKEND_RUNGS[top][1]


def test_result_backend_may_be_a_celery_alias(tmp_path: Path) -> None:
    settings = resolve(flags(result_backend="django-db"), environ(tmp_path))
    assert settings.result_backend == "django-db"


@pytest.mark.parametrize(
    ("flag", "environment", "top_level", "expected"),
    [
        (None, "false", "false", False),
        (True, "false", "false", True),
        (None, "true", "false", True),
        (None, "false", "true", True),
    ],
)
def test_read_only_from_flag_environment_or_top_level(
    tmp_path: Path, flag: bool | None, environment: str, top_level: str, expected: bool
) -> None:
    path = write_config(
        tmp_path,
        f"""\
        default_environment = "local"
        read_only = {top_level}
        [environments.local]
        read_only = {environment}
        """,
    )
    settings = resolve(flags(config=str(path), read_only=flag), environ(tmp_path))
    assert settings.read_only is expected


def test_max_tasks_flag_beats_file_beats_default(tmp_path: Path) -> None:
    path = write_config(tmp_path, "max_tasks = 250\n")
    assert resolve(flags(config=str(path), max_tasks=7), environ(tmp_path)).max_tasks == 7
    assert resolve(flags(config=str(path)), environ(tmp_path)).max_tasks == 250
    assert resolve(flags(), environ(tmp_path)).max_tasks == DEFAULT_MAX_TASKS


def test_max_tasks_flag_must_be_positive(tmp_path: Path) -> None:
    message = config_error(flags(max_tasks=0), environ(tmp_path))
    assert message == "--max-tasks: must be a positive integer (got 0)"


def test_ingest_flag_beats_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, 'ingest = "fast"\n')
    assert resolve(flags(config=str(path)), environ(tmp_path)).ingest == "fast"
    assert resolve(flags(config=str(path), ingest="kombu"), environ(tmp_path)).ingest == "kombu"


def test_no_color_from_flag_or_no_color_variable(tmp_path: Path) -> None:
    assert resolve(flags(no_color=True), environ(tmp_path)).no_color is True
    assert resolve(flags(), environ(tmp_path, NO_COLOR="1")).no_color is True
    assert resolve(flags(), environ(tmp_path, NO_COLOR="")).no_color is False


def test_settings_are_read_only(tmp_path: Path) -> None:
    path = write_config(tmp_path, FULL_CONFIG)
    settings = resolve(flags(config=str(path)), environ(tmp_path))
    with pytest.raises(TypeError):
        settings.keys["quit"] = "x"  # type: ignore[index]
    with pytest.raises(AttributeError):
        settings.broker_url = "redis://other"  # type: ignore[misc]


# --- -A: the user's Celery app ---------------------------------------------------------------


def test_app_supplies_broker_backend_queues_and_transport_options(
    tmp_path: Path, make_app: Callable[..., str]
) -> None:
    module = make_app(APP_MODULE)
    settings = resolve(flags(app=module), environ(tmp_path))
    assert settings.app_spec == module
    assert settings.broker_url == "redis://:appsecret@apphost:6379/3"
    assert settings.broker_source == f"-A {module}"
    assert settings.result_backend == "redis://apphost:6379/4"
    assert settings.queues == ("default", "billing")
    assert dict(settings.transport_options) == {"global_keyprefix": "app:"}
    assert settings.celery_app() is sys.modules[module].app


@pytest.mark.parametrize("suffix", ["", ".celery", ".celery:app"])
def test_app_spec_forms_like_celery_a(
    suffix: str, tmp_path: Path, make_app: Callable[..., str]
) -> None:
    module = make_app(APP_MODULE, package=True)
    settings = resolve(flags(app=module + suffix), environ(tmp_path))
    assert settings.broker_url == "redis://:appsecret@apphost:6379/3"
    assert settings.celery_app().main == "proj"


def test_broker_flag_overrides_the_apps_broker(
    tmp_path: Path, make_app: Callable[..., str]
) -> None:
    module = make_app(APP_MODULE)
    settings = resolve(flags(app=module, broker="redis://flag:6379/0"), environ(tmp_path))
    assert settings.broker_source == "--broker"
    assert settings.result_backend == "redis://apphost:6379/4"
    assert settings.queues == ("default", "billing")
    app = settings.celery_app()
    assert app is sys.modules[module].app
    assert app.conf.broker_url == "redis://flag:6379/0"
    assert app.connection_for_read().as_uri(include_password=True) == "redis://flag:6379/0"
    assert app.connection_for_write().as_uri(include_password=True) == "redis://flag:6379/0"


def test_apps_own_broker_wins_over_celery_broker_url_in_the_process_environment(
    tmp_path: Path, make_app: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # celery's conf.broker_url reads os.environ first; the -A rung must not.
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://shell:6379/0")
    module = make_app(APP_MODULE)
    settings = resolve(flags(app=module), environ(tmp_path))
    assert settings.broker_source == f"-A {module}"
    app = settings.celery_app()
    assert app.connection_for_read().as_uri(include_password=True) == settings.broker_url


def test_app_without_broker_falls_through_to_variables(
    tmp_path: Path, make_app: Callable[..., str]
) -> None:
    module = make_app(BARE_APP_MODULE)
    settings = resolve(
        flags(app=module), environ(tmp_path, CELERY_BROKER_URL="redis://celeryvar:6379/0")
    )
    assert settings.broker_source == "CELERY_BROKER_URL"
    assert settings.queues == ("celery",)
    assert settings.celery_app().conf.broker_read_url == "redis://celeryvar:6379/0"


def test_environment_app_is_imported_and_merged(
    tmp_path: Path, make_app: Callable[..., str]
) -> None:
    module = make_app(APP_MODULE)
    path = write_config(
        tmp_path,
        f"""\
        default_environment = "local"
        [environments.local]
        app = "{module}"
        queues = ["reports", "billing"]
        transport_options = {{ global_keyprefix = "env:", visibility_timeout = 60 }}
        """,
    )
    settings = resolve(flags(config=str(path)), environ(tmp_path))
    assert settings.app_spec == module
    assert settings.broker_url == "redis://:appsecret@apphost:6379/3"
    assert settings.broker_source == f"-A {module} (config environment 'local')"
    assert settings.queues == ("default", "billing", "reports")
    assert dict(settings.transport_options) == {
        "global_keyprefix": "app:",
        "visibility_timeout": 60,
    }


# --- the bare app ----------------------------------------------------------------------------


def test_bare_app_is_built_once_from_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from celery import current_app

    monkeypatch.setenv("CELERY_BROKER_URL", "redis://shell:6379/0")
    path = write_config(tmp_path, FULL_CONFIG)
    settings = resolve(flags(config=str(path), broker="redis://flag:6379/2"), environ(tmp_path))
    app = settings.celery_app()
    assert app is settings.celery_app()
    assert app.main == "lazycelery"
    assert current_app._get_current_object() is not app
    assert app.connection_for_read().as_uri(include_password=True) == "redis://flag:6379/2"
    assert app.conf.result_backend == "redis://localhost:6379/6"
    assert app.conf.broker_transport_options == {
        "global_keyprefix": "env:",
        "priority_steps": [0, 3, 6, 9],
    }


def test_settings_can_be_built_directly() -> None:
    settings = Settings(broker_url="redis://direct:6379/0")
    assert settings.max_tasks == DEFAULT_MAX_TASKS
    assert settings.celery_app().connection_for_read().as_uri(include_password=True) == "redis://direct:6379/0"


def test_replaced_settings_get_their_own_app() -> None:
    first = Settings(broker_url="redis://one:6379/0")
    second = dataclasses.replace(first, broker_url="redis://two:6379/0")
    assert second.celery_app() is not first.celery_app()
    uri = second.celery_app().connection_for_read().as_uri(include_password=True)
    assert uri == "redis://two:6379/0"


# --- the config file and its errors ----------------------------------------------------------


def test_load_file_returns_the_typed_file(tmp_path: Path) -> None:
    config = load_file(write_config(tmp_path, FULL_CONFIG))
    assert isinstance(config, ConfigFile)
    assert config.environments["local"].queues == ("celery", "billing")
    assert config.environments["staging"].read_only is True


def test_missing_default_file_is_fine_but_explicit_config_is_not(tmp_path: Path) -> None:
    resolve(flags(), environ(tmp_path))
    missing = tmp_path / "nope.toml"
    assert config_error(flags(config=str(missing)), environ(tmp_path)) == (
        f"config {missing}: file not found"
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            'default_environment = "local"\n\nbroker\n',
            "line 3: invalid TOML (Expected '=' after a key in a key/value pair)",
        ),
        ('a = "unterminated\n', "line 1: invalid TOML (Illegal character '\\n')"),
        ("[environments.prod]\nbroker = 5\n", "environments.prod.broker: expected str, got int"),
        ('[environments."my prod"]\nread_only = "yes"\n',
         'environments."my prod".read_only: expected bool, got str'),
        ("[environments.prod]\nqueues = [\"a\", 2]\n",
         "environments.prod.queues[1]: expected str, got int"),
        ("environments = 3\n", "environments: expected table, got int"),
        ("[environments]\nprod = 3\n", "environments.prod: expected table, got int"),
        ("[keys]\nquit = 1\n", "keys.quit: expected str, got int"),
        ("max_tasks = 0\n", "max_tasks: expected int >= 1"),
        ("max_tasks = \"many\"\n", "max_tasks: expected int, got str"),
        ('ingest = "turbo"\n', "ingest: invalid enum value 'turbo'"),
        (
            "max_task = 5\n",
            "max_task: unknown key (known: default_environment, read_only, max_tasks, ingest, "
            "read_ahead, environments, keys, otel, mask, serve, policies, notify, reports, sla, restart, "
            "alerts, queues)",
        ),
        (
            '[environments.prod]\nbrokr = "redis://h"\n',
            "environments.prod.brokr: unknown key (known: broker, result_backend, app, "
            "read_only, queues, transport_options, management_url, store, mask, restart, "
            "alerts, color, read_ahead)",
        ),
        (
            'default_environment = "prodd"\n[environments.local]\n[environments.staging]\n',
            "default_environment: unknown environment 'prodd' (known: local, staging)",
        ),
        ('[environments.local]\nbroker = "foo"\n', "environments.local.broker: not a URL ('foo')"),
        (
            '[environments.local]\nresult_backend = "localhost:6379"\n',
            "environments.local.result_backend: not a URL ('localhost:6379')",
        ),
    ],
)
def test_file_errors_name_the_file_the_key_and_the_problem(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = write_config(tmp_path, text)
    assert config_error(flags(config=str(path)), environ(tmp_path)) == f"config {path}: {problem}"


def test_unknown_environment_lists_the_known_ones(tmp_path: Path) -> None:
    path = write_config(tmp_path, FULL_CONFIG)
    assert config_error(flags(config=str(path), env="prodd"), environ(tmp_path)) == (
        f"config {path}: unknown environment 'prodd' (known: local, staging)"
    )


def test_env_without_a_config_file(tmp_path: Path) -> None:
    message = config_error(flags(env="prod"), environ(tmp_path))
    assert message.startswith(f"config {tmp_path / 'absent' / 'lazycelery' / 'config.toml'}: ")
    assert "unknown environment 'prod' (no config file; `lazycelery config init`" in message


def test_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    assert config_error(flags(config=str(tmp_path)), environ(tmp_path)).startswith(
        f"config {tmp_path}: cannot read ("
    )
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'# caf\xe9\n')
    assert config_error(flags(config=str(path)), environ(tmp_path)) == (
        f"config {path}: not UTF-8 text (byte 5)"
    )


@pytest.mark.parametrize(
    ("args", "variables", "expected"),
    [
        ({"broker": "localhost:6379"}, {}, "--broker: not a URL ('localhost:6379')"),
        ({"result_backend": "h:1"}, {}, "--result-backend: not a URL ('h:1')"),
        ({}, {"LAZYCELERY_BROKER_URL": "foo"}, "LAZYCELERY_BROKER_URL: not a URL ('foo')"),
        ({}, {"CELERY_BROKER_URL": "foo"}, "CELERY_BROKER_URL: not a URL ('foo')"),
        ({}, {"LAZYCELERY_RESULT_BACKEND": "a b"}, "LAZYCELERY_RESULT_BACKEND: not a URL ('a b')"),
        ({}, {"CELERY_RESULT_BACKEND": "/tmp/x"}, "CELERY_RESULT_BACKEND: not a URL ('/tmp/x')"),
    ],
)
def test_bad_urls_name_their_source(
    tmp_path: Path, args: dict[str, str], variables: dict[str, str], expected: str
) -> None:
    assert config_error(flags(**args), environ(tmp_path, **variables)) == expected


def test_unimportable_app(tmp_path: Path) -> None:
    assert config_error(flags(app="nosuchproj.celery"), environ(tmp_path)) == (
        "cannot import app 'nosuchproj.celery': No module named 'nosuchproj'"
    )


def test_app_attribute_that_is_not_a_celery_app(
    tmp_path: Path, make_app: Callable[..., str]
) -> None:
    module = make_app("app = 3\n")
    assert config_error(flags(app=f"{module}:app"), environ(tmp_path)) == (
        f"cannot import app '{module}:app': found a int, not a Celery app"
    )


def test_app_that_raises_while_importing(tmp_path: Path, make_app: Callable[..., str]) -> None:
    module = make_app('raise RuntimeError("cannot reach redis://:appsecret@db:6379/0")\n')
    message = config_error(flags(app=module), environ(tmp_path))
    assert message == (
        f"cannot import app '{module}': RuntimeError: cannot reach redis://:********@db:6379/0"
    )


def test_app_with_a_bad_broker_url(tmp_path: Path, make_app: Callable[..., str]) -> None:
    module = make_app(
        'from celery import Celery\napp = Celery("p", broker="nohost", set_as_current=False)\n'
    )
    assert config_error(flags(app=module), environ(tmp_path)) == (
        f"-A {module}: broker_url: not a URL ('nohost')"
    )


def test_errors_reach_the_user_as_one_line_with_exit_code_2(
    tmp_path: Path, run_cli: Callable[..., tuple[int, str, str]]
) -> None:
    path = write_config(tmp_path, "[environments.prod]\nbroker = 5\n")
    code, out, err = run_cli("config", "show", "--config", str(path))
    assert code == 2
    assert out == ""
    assert err == f"lazycelery: config {path}: environments.prod.broker: expected str, got int\n"


# --- masking ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "passwords"), PASSWORD_URLS)
def test_mask_url_hides_every_password(url: str, passwords: tuple[str, ...]) -> None:
    masked = mask_url(url)
    assert "********" in masked
    assert not any(password in masked for password in passwords)


@pytest.mark.parametrize(
    "url",
    [
        "redis://:pa/ss@h:6379/0",  # an unencoded "/" in the password
        "sqs://AKIAEXAMPLE:ab/cd+ef@",
        "user:hunter2@host:6379",  # no scheme at all
        "redis:/:hunter2@host",
        "redis://h:6379/0?password=hunter2&db=1",
    ],
)
def test_mask_url_fails_closed_on_odd_urls(url: str) -> None:
    masked = mask_url(url)
    assert "hunter2" not in masked
    assert "pa/ss" not in masked
    assert "ab/cd" not in masked


def test_mask_url_keeps_urls_without_passwords() -> None:
    assert mask_url("redis://localhost:6379/0") == "redis://localhost:6379/0"
    assert mask_url("rediss://:pw@h:6380/0?ssl_cert_reqs=required") == (
        "rediss://:********@h:6380/0?ssl_cert_reqs=required"
    )


@pytest.mark.parametrize(("url", "passwords"), PASSWORD_URLS)
def test_show_masks_passwords_from_every_source(
    tmp_path: Path,
    run_cli: Callable[..., tuple[int, str, str]],
    url: str,
    passwords: tuple[str, ...],
) -> None:
    path = write_config(
        tmp_path,
        f"""\
        default_environment = "local"
        [environments.local]
        broker = "{url}"
        result_backend = "{url}"
        transport_options = {{ master_name = "mymaster", sentinel_kwargs = {{ password = "x9z" }} }}
        """,
    )
    outputs = []
    for argv in (
        ("config", "show", "--config", str(path)),
        ("config", "show", "--broker", url, "--result-backend", url),
    ):
        code, out, err = run_cli(*argv)
        assert code == 0, err
        assert "********" in out
        assert not any(password in out + err for password in passwords)
        outputs.append(out)
    assert "mymaster" in outputs[0]
    assert "x9z" not in outputs[0]


def test_bad_url_errors_never_show_the_password(tmp_path: Path) -> None:
    message = config_error(
        flags(), environ(tmp_path, LAZYCELERY_BROKER_URL="admin:hunter2@redis:6379")
    )
    assert message == "LAZYCELERY_BROKER_URL: not a URL ('********@redis:6379')"


# --- the `config` command --------------------------------------------------------------------


def test_init_then_show_round_trip(
    tmp_path: Path, run_cli: Callable[..., tuple[int, str, str]]
) -> None:
    path = tmp_path / "nested" / "dir" / "config.toml"
    code, out, _ = run_cli("config", "init", "--config", str(path))
    assert code == 0
    assert f"wrote {path}" in out
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_file(path).default_environment == "local"

    code, out, err = run_cli("config", "show", "--config", str(path))
    assert (code, err) == (0, "")
    fields = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in out.splitlines())
    assert fields["env_name"] == "local"
    assert fields["broker_url"] == DEFAULT_BROKER
    assert fields["broker_source"] == "config environment 'local'"
    assert fields["max_tasks"] == str(DEFAULT_MAX_TASKS)
    assert fields["read_only"] == "false"
    assert fields["config_path"] == str(path)


def test_init_refuses_to_overwrite_without_force(
    tmp_path: Path, run_cli: Callable[..., tuple[int, str, str]]
) -> None:
    path = write_config(tmp_path, "max_tasks = 3\n")
    code, _, err = run_cli("config", "init", "--config", str(path))
    assert code == 2
    assert err == f"lazycelery: config {path}: already exists (add --force to overwrite it)\n"
    assert path.read_text(encoding="utf-8") == "max_tasks = 3\n"
    code, _, _ = run_cli("config", "init", "--force", "--config", str(path))
    assert code == 0
    assert load_file(path).max_tasks == DEFAULT_MAX_TASKS


def test_init_fills_in_the_given_connection(
    tmp_path: Path, run_cli: Callable[..., tuple[int, str, str]]
) -> None:
    path = tmp_path / "config.toml"
    code, _, err = run_cli(
        "--env", "my prod", "-b", "redis://:hunter2@prod:6379/0", "config", "init",
        "--config", str(path), "--result-backend", "rpc://",
    )
    assert code == 0, err
    config = load_file(path)
    assert config.default_environment == "my prod"
    assert config.environments["my prod"].broker == "redis://:hunter2@prod:6379/0"
    assert config.environments["my prod"].result_backend == "rpc://"
    code, out, _ = run_cli("config", "show", "--config", str(path))
    assert code == 0
    assert "redis://:********@prod:6379/0" in out
    assert "hunter2" not in out


def test_path_prints_the_file_that_would_be_used(
    tmp_path: Path, run_cli: Callable[..., tuple[int, str, str]]
) -> None:
    assert run_cli("config", "path") == (0, f"{tmp_path / 'absent' / 'lazycelery' / 'config.toml'}\n", "")
    assert run_cli("--config", "x.toml", "config", "path") == (0, "x.toml\n", "")


def test_show_prints_notes(
    tmp_path: Path,
    run_cli: Callable[..., tuple[int, str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = write_config(tmp_path, FULL_CONFIG)
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://shell:6379/0")
    code, out, _ = run_cli("config", "show", "--config", str(path), "--env", "staging")
    assert code == 0
    assert re.search(r"^note\s+CELERY_BROKER_URL overrides", out, re.M)


def test_config_modules_do_not_import_celery() -> None:
    # `lazycelery --help` and `config path` must stay fast: celery costs ~120 ms to import.
    code = (
        "import sys, lazycelery.config, lazycelery.commands.config_cmd\n"
        "heavy = [m for m in ('celery', 'kombu', 'redis', 'prompt_toolkit') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)


def test_mask_url_keeps_host_when_password_equals_user() -> None:
    from lazycelery.config import mask_url

    masked = mask_url("amqp://guest:guest@rabbit.example:5672//")
    assert masked == "amqp://guest:********@rabbit.example:5672//"


def test_management_url_from_environment_table_and_variable(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from lazycelery.config import resolve

    path = tmp_path / "config.toml"
    path.write_text('default_environment = "prod"\n[environments.prod]\n'
                    'broker = "amqp://u:p@rabbit//"\nmanagement_url = "http://rabbit:15672/api/"\n')
    args = argparse.Namespace(broker=None, app=None, env=None, config=str(path), read_only=None,
                              max_tasks=None, ingest=None, no_color=None, result_backend=None)
    environ = {"LAZYCELERY_CONFIG": str(path)}
    assert resolve(args, environ).management_url == "http://rabbit:15672/api/"
    assert resolve(args, {**environ, "LAZYCELERY_MANAGEMENT_URL": "none"}).management_url == ""
