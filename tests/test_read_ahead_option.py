"""``--read-ahead`` / ``read_ahead``: sizes parsed by ``lazycelery.sizes``, the flag over the
environment's key over the top-level one, bad values one line, 0 kept (no read-ahead)."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path
from typing import Any

import pytest

from lazycelery import cli
from lazycelery.config import resolve
from lazycelery.errors import ConfigError
from lazycelery.sizes import MAX_BYTES, format_size, parse_size, size_of

pytestmark = pytest.mark.timeout(60)

FLAG_NAMES = ("broker", "app", "result_backend", "env", "config", "read_only", "max_tasks",
              "ingest", "no_color", "read_ahead")


def flags(**values: Any) -> argparse.Namespace:
    return argparse.Namespace(**{name: values.pop(name, None) for name in FLAG_NAMES}, **values)


def environ(tmp_path: Path) -> dict[str, str]:
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    return {"LAZYCELERY_CONFIG": str(empty)}


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def config_error(args: argparse.Namespace, env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as caught:
        resolve(args, env)
    return str(caught.value)


@pytest.mark.parametrize(("text", "size"), [
    ("0", 0), ("4096", 4096), ("64MB", 64 << 20), ("64mb", 64 << 20), ("64M", 64 << 20),
    ("64MiB", 64 << 20), (" 512 kb ", 512 << 10), ("1.5GB", 3 << 29), ("1g", 1 << 30),
    ("10B", 10), (".5k", 512), ("1TB", MAX_BYTES),
])
def test_sizes_parse(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "MB", "-1MB", "64 MBs", "1e6", "64XB", "lots", "1.2.3k"])
def test_not_a_size_is_one_line(text: str) -> None:
    with pytest.raises(ValueError, match=r"^not a size: .* \(try 0, 512KB, 64MB, 1GB\)$"):
        parse_size(text)


def test_too_large_is_refused() -> None:
    with pytest.raises(ValueError, match="size too large"):
        parse_size("2TB")
    with pytest.raises(ValueError, match="must be 0 to 1TB"):
        size_of(-1)
    with pytest.raises(ValueError, match="not a size"):
        size_of(True)  # type: ignore[arg-type]


def test_config_values_are_strings_or_byte_counts() -> None:
    assert size_of("64MB") == size_of(64 << 20) == 64 << 20
    assert size_of(0) == 0


@pytest.mark.parametrize(("size", "text"), [
    (0, "0"), (100, "100B"), (1536, "1.5KB"), (64 << 20, "64MB"), (1 << 40, "1TB")])
def test_format_size(size: int, text: str) -> None:
    assert format_size(size) == text


def test_default_is_none_and_zero_is_kept(tmp_path: Path) -> None:
    assert resolve(flags(), environ(tmp_path)).read_ahead is None
    assert resolve(flags(read_ahead="0"), environ(tmp_path)).read_ahead == 0
    assert resolve(flags(read_ahead="64MB"), environ(tmp_path)).read_ahead == 64 << 20


def test_flag_beats_environment_beats_top_level(tmp_path: Path) -> None:
    path = write_config(tmp_path, '''
        read_ahead = "32MB"
        default_environment = "prod"
        [environments.prod]
        broker = "redis://localhost:6379/0"
        read_ahead = "8MB"
        [environments.dev]
        broker = "redis://localhost:6379/1"
    ''')
    env = environ(tmp_path)
    assert resolve(flags(config=str(path)), env).read_ahead == 8 << 20
    assert resolve(flags(config=str(path), env="dev"), env).read_ahead == 32 << 20
    assert resolve(flags(config=str(path), read_ahead="1MB"), env).read_ahead == 1 << 20


def test_bad_flag_is_one_line(tmp_path: Path) -> None:
    message = config_error(flags(read_ahead="lots"), environ(tmp_path))
    assert message == "--read-ahead: not a size: 'lots' (try 0, 512KB, 64MB, 1GB)"


@pytest.mark.parametrize(("text", "where"), [
    ('read_ahead = "64XB"\n', "read_ahead: not a size: '64XB'"),
    ('read_ahead = -5\n', "read_ahead: must be 0 to 1TB, not -5"),
    ('[environments.a]\nread_ahead = "huge"\n', "environments.a.read_ahead: not a size"),
    ('read_ahead = 1.5\n', "read_ahead: expected"),
])
def test_bad_config_value_is_one_line(tmp_path: Path, text: str, where: str) -> None:
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        resolve(flags(config=str(path)), environ(tmp_path))
    message = str(caught.value)
    assert "\n" not in message and where in message, message


def test_every_ingesting_command_takes_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    parser = cli.build_parser()
    for command in (["--read-ahead", "64MB"], ["tail", "--read-ahead", "64MB"],
                    ["record", "--read-ahead", "64MB"], ["serve", "--read-ahead", "64MB"]):
        assert parser.parse_args(command).read_ahead == "64MB"


def test_cli_bad_value_exits_with_one_line(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "none.toml"
    missing.write_text("")
    assert cli.main(["--config", str(missing), "--read-ahead", "12 parsecs", "config",
                     "show"]) != 0
    err = capsys.readouterr().err
    assert err == "lazycelery: --read-ahead: not a size: '12 parsecs' (try 0, 512KB, 64MB, 1GB)\n"


def test_every_ingestor_built_from_settings_gets_the_bound() -> None:
    """Each command's ``Ingestor(settings.broker_url, ...)`` passes ``settings.read_ahead`` (a
    new command that forgot it would read ahead 128MB whatever the user said)."""
    import ast

    package = Path(cli.__file__).parent
    built: list[str] = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id == "Ingestor"):
                continue
            where = f"{path.relative_to(package)}:{node.lineno}"
            keywords = {k.arg: ast.unparse(k.value) for k in node.keywords}
            assert keywords.get("read_ahead") == "settings.read_ahead", where
            built.append(where)
    assert len(built) >= 9, built  # dashboard, tail, record, serve, envs, one-shot commands
