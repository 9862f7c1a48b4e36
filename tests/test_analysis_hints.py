"""Root-cause hints on the replayed real stream: the bad worker is named with its numbers, the
render failures follow the cache outage, a new version is noticed; and hints stay silent where
the events show no contrast."""

from __future__ import annotations

import copy
from typing import Any

from lazycelery.analysis import ErrorGroups, hints_for
from tests.errors_data import by_task, recorded_events, replay


def kinds(groups: ErrorGroups, name: str, **where: Any) -> dict[str, Any]:
    group = by_task(groups, name)
    return {h.kind: h for h in hints_for(group, groups)}


def test_the_bad_worker_is_named_with_its_numbers() -> None:
    groups = replay()
    hints = kinds(groups, "shop.resize")
    worker = hints["worker"]
    assert worker.evidence["value"] == "w-bad@shop-1"
    assert (worker.evidence["failures"], worker.evidence["of"]) == (31, 31)
    assert worker.evidence["baseline_tasks"] == 80  # 49 succeeded on w-good, 31 failed on w-bad
    assert worker.text.startswith("100 % of 31 failures on worker w-bad@shop-1, which ran 39 %")
    online = hints["online"]
    assert online.evidence["worker"] == "w-bad@shop-1" and online.evidence["sw_ver"] == "5.7.0"
    assert 0 <= online.evidence["first_failure"] - online.evidence["online"] < 5
    assert "none before" in online.text


def test_failures_split_across_workers_give_no_worker_hint() -> None:
    groups = replay()
    for name in ("shop.cache_get", "shop.render_page", "shop.charge"):
        assert "worker" not in kinds(groups, name)
        assert "online" not in kinds(groups, name)


def test_render_failures_follow_the_cache_outage() -> None:
    groups = replay()
    cache = by_task(groups, "shop.cache_get")
    follows = kinds(groups, "shop.render_page")["follows"]
    assert follows.evidence["group"] == cache.key
    assert follows.evidence["other_failures_before"] == 30
    assert 0 < follows.evidence["delay_seconds"] < 60


def test_a_burst_is_a_time_window() -> None:
    groups = replay()
    window = kinds(groups, "shop.render_page")["window"]  # 20 failures within 0.1 s
    assert window.evidence["failures"] == 16 and window.evidence["of"] == 20
    assert window.evidence["end"] - window.evidence["start"] < 1
    assert "window" not in kinds(groups, "shop.cache_get")  # 30 failures over 29 of 75 s
    assert "window" not in kinds(groups, "shop.charge")  # 6 failures: too few to say


def test_a_new_version_coming_online_is_noticed() -> None:
    """The same stream with the bad worker reporting another celery version."""
    events = copy.deepcopy(recorded_events())
    for e in events:
        if e["hostname"] == "w-bad@shop-1" and "sw_ver" in e:
            e["sw_ver"] = "5.7.1"
    groups = replay(events)
    version = kinds(groups, "shop.resize")["version"]
    assert version.evidence["version"] == "5.7.1"
    assert version.evidence["worker"] == "w-bad@shop-1"
    assert (version.evidence["failures"], version.evidence["of"]) == (31, 31)
    assert "version" not in kinds(groups, "shop.cache_get")


def test_one_worker_alone_is_no_contrast() -> None:
    events = copy.deepcopy(recorded_events())
    for e in events:
        if e.get("hostname") == "w-good@shop-1":
            e["hostname"] = "w-bad@shop-1"
    hints = kinds(replay(events), "shop.resize")
    assert "worker" not in hints and "online" not in hints


def test_one_argument_value_with_other_values_succeeding() -> None:
    """Real failure events of render_page, their tasks given one argument value, beside
    successes of the same task with other arguments."""
    events = copy.deepcopy(recorded_events())
    ok: list[dict[str, Any]] = []
    for e in events:
        if e["type"] in ("task-received", "task-sent") and e.get("name") == "shop.render_page":
            e["args"] = "(13,)"
            for i in range(3):
                ok.append({**e, "uuid": f"{e['uuid'][:-2]}z{i}", "args": f"({i},)"})
    last = events[-1]["timestamp"]
    ok += [{"type": "task-succeeded", "uuid": o["uuid"], "timestamp": last, "result": "None",
            "hostname": "w-good@shop-1", "runtime": 0.1} for o in ok if o["type"] == "task-sent"]
    argument = kinds(replay(events + ok), "shop.render_page")["argument"]
    assert argument.evidence["value"] == "(13,)"
    assert argument.evidence["failures"] == 20 and argument.evidence["succeeded_other_args"] == 60
