"""Alert rules in the config file: top level and per environment, and one clear line naming
the bad key for each kind of mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from lazycelery.alerts.describe import describe_rule
from lazycelery.alerts.spec import rules_for
from lazycelery.config_file import load_file
from lazycelery.errors import ConfigError

GOOD = """
[[alerts.rules]]
name = "billing-failures"
kind = "failures"
filter = "name:billing.*"
count = 10
window = "5m"
for = "1m"
notify = ["ops"]

[[alerts.rules]]
name = "backlog"
kind = "queue_depth"
threshold = 1000

[environments.prod]
broker = "redis://localhost:6379/0"

[[environments.prod.alerts.rules]]
name = "backlog"
kind = "queue_depth"
queue = "celery"
threshold = 50
severity = "critical"
"""


def _load(tmp_path: Path, text: str, env: str | None = None) -> list:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return rules_for(load_file(path), env, path)


def test_top_level_rules_and_an_environment_s_rules_over_them(tmp_path: Path) -> None:
    top = _load(tmp_path, GOOD)
    assert [(r.name, r.threshold, r.environment) for r in top] == [
        ("billing-failures", None, None), ("backlog", 1000.0, None)]
    failures = top[0]
    assert (failures.window, failures.for_, failures.count, failures.notify) == (
        300.0, 60.0, 10.0, ("ops",))
    prod = _load(tmp_path, GOOD, "prod")
    assert [(r.name, r.threshold, r.queue, r.severity, r.environment) for r in prod] == [
        ("billing-failures", None, "*", "warning", None),
        ("backlog", 50.0, "celery", "critical", "prod")]
    assert describe_rule(failures) == "failures of name:billing.* >= 10 in 5m"


RULE = '[[alerts.rules]]\nname = "r"\n'

BAD = [
    (RULE + 'kind = "nope"',
     "alerts.rules[0].kind: unknown kind 'nope' (known: failures, failure_ratio, "),
    ('[[alerts.rules]]\nkind = "failures"', "alerts.rules[0].name: missing"),
    (RULE + 'kind = "failures"\ncolour = "red"', "alerts.rules[0].colour: unknown key (known: "),
    (RULE + 'kind = "failures"\nthreshold = 3',
     "alerts.rules[0].threshold: not a key of kind 'failures' (known: "),
    (RULE + 'kind = "failures"\nfilter = "state:bogus"', "alerts.rules[0].filter: bad filter: "),
    (RULE + 'kind = "failures"\nwindow = "soon"',
     "alerts.rules[0].window: not a duration: 'soon'"),
    (RULE + 'kind = "failures"\nwindow = "0s"', "alerts.rules[0].window: '0s' is not a duration > 0"),
    (RULE + 'kind = "failures"\ncount = -1', "alerts.rules[0].count: -1 is not a number >= 0"),
    (RULE + 'kind = "failures"\ncount = 1\nrate = 2', "alerts.rules[0].rate: give count or rate"),
    (RULE + 'kind = "failure_ratio"', "alerts.rules[0].ratio: missing (kind 'failure_ratio'"),
    (RULE + 'kind = "failure_ratio"\nratio = 2', "alerts.rules[0].ratio: 2 is not between 0 and 1"),
    (RULE + 'kind = "failures"\nseverity = "meh"',
     "alerts.rules[0].severity: unknown value 'meh' (known: info, warning, critical)"),
    (RULE + 'kind = "failures"\nnotify = "ops"\n' + RULE + 'kind = "failures"',
     "alerts.rules[1].name: 'r' is already the name of another rule"),
    (RULE + 'kind = "failures"\nnotify = [1]', "alerts.rules[0].notify: expected an array"),
    (RULE + 'kind = "queue_age"\nthreshold = true',
     "alerts.rules[0].threshold: expected a duration"),
    ('[alerts]\nrule = []', "alerts.rule: unknown key (known: rules)"),
    ('[alerts]\nrules = 3', "alerts.rules: expected an array of tables"),
    ('[environments.prod]\n[[environments.prod.alerts.rules]]\nname = "x"\nkind = "periodic"',
     "environments.prod.alerts.rules[0].filter: missing (kind 'periodic' needs it)"),
]


@pytest.mark.parametrize(("text", "expected"), BAD)
def test_a_bad_rule_is_one_line_naming_the_key(tmp_path: Path, text: str,
                                               expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, text, "prod" if "environments" in text else None)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"config {tmp_path / 'config.toml'}: {expected}"), message
