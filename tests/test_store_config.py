"""Which store: --store, LAZYCELERY_STORE, the environment's `store`, else the default file."""

from __future__ import annotations

import argparse
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lazycelery.config import resolve
from lazycelery.errors import ConfigError
from lazycelery.store import default_store_path, default_store_url, parse_store_url

CONFIG = """\
default_environment = "prod"
[environments.prod]
broker = "redis://h/0"
store = "postgresql://lc:s3cret@db/celerymon"
"""


def _flags(**values: object) -> argparse.Namespace:
    return argparse.Namespace(**values)


def _env(tmp_path: Path, **variables: str) -> dict[str, str]:
    """The test's config file if it wrote one, else none (``/dev/null``)."""
    path = tmp_path / "config.toml"
    return {"LAZYCELERY_CONFIG": str(path) if path.exists() else "/dev/null", **variables}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    return path


def test_flag_beats_variable_beats_environment(tmp_path: Path, config: Path) -> None:
    env = _env(tmp_path, LAZYCELERY_STORE="sqlite:///from-env.db")
    settings = resolve(_flags(store="sqlite:///flag.db"), env)
    assert (settings.store_url, settings.store_source) == ("sqlite:///flag.db", "--store")
    settings = resolve(_flags(), env)
    assert (settings.store_url, settings.store_source) == ("sqlite:///from-env.db",
                                                           "LAZYCELERY_STORE")
    settings = resolve(_flags(), _env(tmp_path))
    assert settings.store_source == "config environment 'prod'"
    assert settings.masked_store() == "postgresql://lc:********@db/celerymon"


def test_default_is_a_file_in_the_user_data_dir(tmp_path: Path) -> None:
    settings = resolve(_flags(), _env(tmp_path))
    assert (settings.store_url, settings.store_source) == (None, "default")
    data = tmp_path / "data"
    assert default_store_path({"XDG_DATA_HOME": str(data)}) == data / "lazycelery" / "history.sqlite3"
    url = default_store_url({"XDG_DATA_HOME": str(data)})
    assert parse_store_url(url).path == data / "lazycelery" / "history.sqlite3"


def test_a_bad_store_in_the_config_file_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(textwrap.dedent("""\
        [environments.prod]
        store = "mysql://u:pw@h/db"
        """))
    with pytest.raises(ConfigError) as caught:
        resolve(_flags(), _env(tmp_path))
    text = str(caught.value)
    assert text.startswith(f"config {path}: environments.prod.store: not a store URL")
    assert "pw" not in text.replace("********", "")


def test_a_bad_store_flag_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve(_flags(store="redis://h/0"), _env(tmp_path))
    assert str(caught.value).startswith("--store: not a store URL ('redis://h/0'")


def test_config_show_prints_the_store_masked(tmp_path: Path, config: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "lazycelery", "config", "show"],
                          env={"LAZYCELERY_CONFIG": str(config), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, check=True, timeout=60)
    lines = dict(line.split(None, 1) for line in done.stdout.splitlines() if " " in line)
    assert lines["store"].strip() == "postgresql://lc:********@db/celerymon"
    assert lines["store_source"].strip() == "config environment 'prod'"
    assert "s3cret" not in done.stdout
