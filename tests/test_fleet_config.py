"""The config's ``[sla."task"]`` tables and ``restart`` commands: parsed into the settings, and
every mistake one line naming the file and the key."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from lazycelery.config import resolve
from lazycelery.errors import ConfigError


def settings(tmp_path: Path, text: str, env: str | None = None) -> object:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return resolve(argparse.Namespace(config=str(path), env=env), {})


def test_targets_and_restart_commands(tmp_path: Path) -> None:
    s = settings(tmp_path, 'restart = "systemctl restart celery@{name}"\n'
                           '[sla."proj.add"]\nruntime = "2s"\nwait = 30\n'
                           '[sla."reports.*"]\nruntime = "1.5m"\n'
                           '[sla."x"]\nwait = "250ms"\n'
                           '[environments.k8s]\nrestart = "kubectl rollout restart deploy/{name}"\n'
                           '[environments.plain]\n')
    assert dict(s.sla) == {"proj.add": (2.0, 30.0), "reports.*": (90.0, None),  # type: ignore[attr-defined]
                           "x": (None, 0.25)}
    assert s.restart == "systemctl restart celery@{name}"  # type: ignore[attr-defined]
    k8s = settings(tmp_path, '[environments.k8s]\nrestart = "kubectl rollout restart x/{name}"\n',
                   env="k8s")
    assert k8s.restart == "kubectl rollout restart x/{name}"  # type: ignore[attr-defined]


@pytest.mark.parametrize("text, problem", [
    ('[sla."a.b"]\nruntime = "2x"\n',
     "sla.\"a.b\".runtime: not a duration: '2x' (try 500ms, 2s, 1.5m, 1h)"),
    ('[sla."a.b"]\nwait = -1\n', "sla.\"a.b\".wait: must be a positive duration, not -1.0"),
    ('[sla."a.b"]\n', 'sla."a.b": give runtime and/or wait'),
    ('[sla."a.b"]\nrun = 1\n', 'sla."a.b".run: unknown key (known: runtime, wait)'),
    ('restart = "sh -c {cmd}"\n',
     "restart: unknown placeholder {cmd} (known: {worker}, {name}, {host})"),
    ('[environments.p]\nrestart = "a \'b"\n',
     "environments.p.restart: cannot be split into arguments (No closing quotation)"),
])
def test_each_mistake_is_one_line(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings(tmp_path, text)
    message = str(caught.value)
    assert message == f"config {tmp_path / 'config.toml'}: {problem}"
    assert "\n" not in message
