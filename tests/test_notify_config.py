"""The config file's [notify] and [reports] tables: what is accepted, and one clear line for
each mistake (never the secret it holds)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lazycelery.config_file import load_file
from lazycelery.errors import ConfigError
from lazycelery.notify.channels import EmailChannel, HttpChannel, build_channels

GOOD = """
[notify]
dead_letter = "{tmp}/dead.ndjson"
queue_size = 50

[notify.channels.ops]
type = "webhook"
url = "https://hooks.example.com/lazycelery"
secret_env = "OPS_SECRET"
retries = 2

[notify.channels.chat]
type = "slack"
url_env = "SLACK_URL"

[notify.channels.mail]
type = "email"
host = "smtp.example.com"
from = "lazycelery@example.com"
to = ["ops@example.com"]
username = "lazycelery"
password_env = "SMTP_PASSWORD"

[[reports.schedules]]
cron = "0 8 * * mon-fri"
format = "html"
channels = ["mail"]

[[reports.schedules]]
cron = "@weekly"
since = "7d"
file = "{tmp}/weekly-{{date}}.md"
"""


def _load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "config.toml"
    path.write_text(textwrap.dedent(text).replace("{tmp}", str(tmp_path)))
    return load_file(path)


def _problem(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, text)
    message = str(caught.value)
    assert "\n" not in message
    return message.removeprefix(f"config {tmp_path / 'config.toml'}: ")


def test_a_full_table_loads_and_builds(tmp_path: Path) -> None:
    config = load_file(_write(tmp_path, GOOD.replace("{tmp}", str(tmp_path))))
    assert config.notify.queue_size == 50
    assert config.notify.channels["ops"].retries == 2
    assert config.notify.channels["mail"].from_addr == "lazycelery@example.com"
    assert [s.format for s in config.reports.schedules] == ["html", "md"]
    channels, broken = build_channels(config.notify.channels, {
        "OPS_SECRET": "s3cret", "SLACK_URL": "https://hooks.slack.com/services/T0/B0/XyZ",
        "SMTP_PASSWORD": "pw"})
    assert broken == {}
    assert isinstance(channels["ops"], HttpChannel) and channels["ops"].secret == "s3cret"
    assert isinstance(channels["mail"], EmailChannel) and channels["mail"].password == "pw"
    # the Slack URL's path is its secret: never shown
    assert "XyZ" not in channels["chat"].describe()
    # nor in a repr that may end up in a log line
    for name, channel in channels.items():
        assert not {"s3cret", "XyZ", "pw"} & set(repr(channel).replace("'", " ").split()), name
    table = config.notify.channels["ops"].__class__(type="webhook", url="https://u:pw@h/x",
                                                    secret="s3cret")
    assert "s3cret" not in repr(table) and ":pw@" not in repr(table)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_an_unset_secret_variable_breaks_only_its_channel(tmp_path: Path) -> None:
    config = load_file(_write(tmp_path, GOOD.replace("{tmp}", str(tmp_path))))
    channels, broken = build_channels(config.notify.channels, {"SLACK_URL": "https://x.example"})
    assert set(channels) == {"chat"}
    assert broken == {
        "ops": "notify channel ops: secret_env: environment variable OPS_SECRET is not set",
        "mail": "notify channel mail: password_env: environment variable SMTP_PASSWORD is not set",
    }


@pytest.mark.parametrize(("table", "problem"), [
    ('[notify.channels.x]\ntype = "pager"\n',
     "notify.channels.x.type: invalid enum value 'pager'"),
    ('[notify.channels.x]\ntype = "webhook"\nurl = "https://a.example"\nsecrte = "x"\n',
     "notify.channels.x.secrte: unknown key (known: type, url"),
    ('[notify.channels.x]\ntype = "webhook"\n', "notify.channels.x: set one of url or url_env"),
    ('[notify.channels.x]\ntype = "webhook"\nurl = "ftp://a.example"\n',
     "notify.channels.x.url: expected an http:// or https:// URL"),
    ('[notify.channels.x]\ntype = "webhook"\nurl = "https://a.example"\nhost = "smtp"\n',
     "notify.channels.x.host: only for email channels"),
    ('[notify.channels.x]\ntype = "email"\nfrom = "a@b"\nto = ["c@d"]\n',
     "notify.channels.x.host: required for an email channel"),
    ('[notify.channels.x]\ntype = "email"\nhost = "h"\nto = ["c@d"]\n',
     "notify.channels.x.from: required for an email channel (an address)"),
    ('[notify.channels.x]\ntype = "email"\nhost = "h"\nfrom = "a@b"\nto = ["nobody"]\n',
     "notify.channels.x.to: required for an email channel (a list of addresses)"),
    ('[notify.channels.x]\ntype = "slack"\nurl_env = "not a name"\n',
     "notify.channels.x.url_env: 'not a name' is not an environment variable name"),
    ('[notify.channels.x]\ntype = "webhook"\nurl = "https://a.example"\ntimeout = 0\n',
     "notify.channels.x.timeout: expected float > 0.0"),
    ('[notify]\nqueue_size = 0\n', "notify.queue_size: expected int >= 1"),
    ('[[reports.schedules]]\ncron = "0 25 * * *"\nfile = "r.md"\n',
     "reports.schedules[0].cron: cron '0 25 * * *': hour '25': 25 is out of range 0-23"),
    ('[[reports.schedules]]\ncron = "@daily"\n',
     "reports.schedules[0]: set channels, file or both (where the report goes)"),
    ('[[reports.schedules]]\ncron = "@daily"\nchannels = ["nope"]\n',
     "reports.schedules[0].channels: unknown channel 'nope' (known: none defined)"),
    ('[[reports.schedules]]\ncron = "@daily"\nfile = "r.md"\nformat = "pdf"\n',
     "reports.schedules[0].format: invalid enum value 'pdf'"),
    ('[[reports.schedules]]\ncron = "@daily"\nfile = "r.md"\nsince = "yesterday"\n',
     "reports.schedules[0].since: expected a duration like 24h or 7d, got 'yesterday'"),
    ('[[reports.schedules]]\ncron = "@daily"\nfile = "r.md"\ntz = "Europe/Pariss"\n',
     "reports.schedules[0].tz: unknown time zone 'Europe/Pariss' (an IANA name like"),
    ('[[reports.schedules]]\ncron = "@daily"\nfile = "r.md"\ntz = "../etc/passwd"\n',
     "reports.schedules[0].tz: unknown time zone '../etc/passwd'"),
])
def test_each_mistake_is_one_line_naming_the_key(tmp_path: Path, table: str, problem: str) -> None:
    assert _problem(tmp_path, table).startswith(problem)


def test_a_secret_written_in_a_bad_url_is_not_echoed(tmp_path: Path) -> None:
    message = _problem(tmp_path, '[notify.channels.x]\ntype = "webhook"\n'
                                 'url = "https://user:hunter2@host:99999/x"\n')
    assert "hunter2" not in message
    assert message.startswith("notify.channels.x.url")


def test_the_cli_says_the_problem_in_one_line(tmp_path: Path) -> None:
    path = _write(tmp_path, '[notify.channels.x]\ntype = "email"\n')
    done = subprocess.run([sys.executable, "-m", "lazycelery", "--config", str(path),
                           "notify", "dead-letters"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"lazycelery: config {path}: notify.channels.x.host: required for an email channel"]
