"""Heartbeat analysis (recorded beats and scripted gaps), rusage CPU share and the sampler's
throttle, and the block-character renderers: exact strings and levels."""

from __future__ import annotations

import pytest

from lazycelery.analysis.fleet import heartbeats as hb
from lazycelery.analysis.fleet import render
from lazycelery.analysis.fleet.resources import RusageSample, Sampler, cpu_series, rusage_sample
from tests.replay import load_events


def beat(t: float, kind: str = "worker-heartbeat", host: str = "w1@h", **extra: object) -> dict:
    return {"type": kind, "hostname": host, "timestamp": t, "freq": 2.0, **extra}


def test_recorded_heartbeats_miss_nothing() -> None:
    events = load_events("redis")
    beats = hb.beats_from_events(events)
    workers = [e for e in events if e["type"].startswith("worker-")]
    assert len(beats) == len(workers) == 22
    columns = tuple(1795825492.0 + i for i in range(19))
    found = hb.heartbeat_report(beats, columns, 1.0, 1795825511.0)
    assert [(w.worker, w.beats, w.missed) for w in found] == [("rec1@vm", 11, 0),
                                                              ("rec2@vm", 11, 0)]
    for w in found:
        assert [f.status for f in w.flips] == ["online", "offline"]
        assert w.max_age is not None and w.max_age < 2.1
        assert len(w.loads) == 11  # online, heartbeats and offline all carry a loadavg


def test_a_gap_counts_missed_beats_and_a_lost_stretch() -> None:
    times = [0.0, 2.0, 4.0, 12.0, 14.0]  # 8 s without a beat: 3 missed, lost from 8 s to 12 s
    beats = hb.beats_from_events([beat(t) for t in times])
    columns = (0.0, 5.0, 10.0, 15.0)
    [w] = hb.heartbeat_report(beats, columns, 5.0, until=20.0)
    assert w.missed == 3
    # lost at 4 + 2 x 2 = 8; back at 12; lost again 4 s after the last beat (14 + 4 = 18)
    assert [(f.time, f.status) for f in w.flips] == [(0.0, "online"), (8.0, "lost"),
                                                     (12.0, "online"), (18.0, "lost")]
    # the oldest age per bucket: 2 in [0,5); 6 near 10; 8 at 12 (beat 4 -> 12); 20 - 14 = 6
    assert w.ages == (2.0, 6.0, 8.0, 6.0)
    assert w.max_age == 8.0


def test_stored_beats_are_judged_at_the_store_resolution() -> None:
    beats = hb.beats_from_events([beat(t) for t in (0.0, 60.0, 120.0, 300.0)])
    [w] = hb.heartbeat_report(beats, (0.0,), 600.0, until=300.0, resolution=hb.STORED)
    assert (w.interval, w.missed) == (60.0, 2)
    assert [f.status for f in w.flips] == ["online", "lost", "online"]


def test_offline_ends_the_ages_and_is_a_flip() -> None:
    beats = hb.beats_from_events([beat(0.0, "worker-online"), beat(2.0),
                                  beat(3.0, "worker-offline")])
    [w] = hb.heartbeat_report(beats, (0.0, 10.0), 10.0, until=20.0)
    assert [f.status for f in w.flips] == ["online", "offline"]
    assert w.ages == (2.0, None) and w.missed == 0


def test_odd_worker_events_are_skipped() -> None:
    assert hb.beat_of({"type": "worker-heartbeat", "hostname": "", "timestamp": 1.0}) is None
    assert hb.beat_of({"type": "worker-heartbeat", "hostname": "w", "timestamp": "x"}) is None
    assert hb.beat_of({"type": "task-sent", "hostname": "w", "timestamp": 1.0}) is None
    odd = hb.beat_of(beat(1.0, freq=-5, loadavg=["x", 0.5]))
    assert odd is not None and odd.freq == 2.0 and odd.loadavg == (0.5,)


def test_cpu_share_between_rusage_samples() -> None:
    samples = [RusageSample("w", 10.0, 1.0, 0.5, 1000), RusageSample("w", 20.0, 3.0, 1.5, 1200),
               RusageSample("w", 30.0, 0.1, 0.1, 900)]  # restarted: counters went down
    points = cpu_series(samples)
    assert [p.cpu_percent for p in points] == [None, pytest.approx(30.0), None]
    assert [p.maxrss_kib for p in points] == [1000, 1200, 900]
    assert rusage_sample("w", {"rusage": {"utime": 1, "stime": 2, "maxrss": 7}}, 5.0) == \
        RusageSample("w", 5.0, 1.0, 2.0, 7)
    assert rusage_sample("w", {"rusage": "?"}, 5.0) is None
    assert rusage_sample("w", None, 5.0) is None


def test_the_sampler_never_asks_a_worker_more_often_than_its_interval() -> None:
    now = [100.0]
    asked: list[str] = []

    def fetch(host: str) -> object:
        asked.append(host)
        return {"rusage": {"utime": now[0] / 10, "stime": 0.0}} if host == "w1" else None

    sampler = Sampler(fetch, 5.0, keep=2, clock=lambda: now[0])
    for t in (100.0, 101.0, 104.9, 105.0, 110.0, 115.0):
        now[0] = t
        sampler.sample("w1")
    assert asked == ["w1"] * 4  # at 100, 105, 110, 115
    assert [s.time for s in sampler.samples["w1"]] == [110.0, 115.0]  # keep=2
    sampler.sample("w2")
    assert (sampler.asked, sampler.unanswered) == (5, 1)
    with pytest.raises(ValueError, match="at least"):
        Sampler(fetch, 0.5)


def test_sparkline_and_bar() -> None:
    assert render.sparkline([0.0, 1.0, 2.0, 4.0, 8.0, None]) == "▁▁▂▄█ "
    assert render.sparkline([5.0, 10.0], top=20.0) == "▂▄"
    assert render.sparkline([]) == ""
    assert render.sparkline([0.0, 0.0]) == "▁▁"
    assert render.bar(0.5, 1.0, 4) == "██  "
    assert render.bar(1 / 16, 1.0, 2) == "▏ "
    assert render.bar(3.0, 1.0, 3) == "███"  # capped at the top
    assert render.bar(1.0, 0.0, 2) == "  "


def test_heat_levels_and_legend() -> None:
    chart = render.heat_chart(["a", "b"], [[0.1, None, 0.4], [0.25, 0.3, 0.05]], seconds=True,
                              cell_width=2)
    # quartiles of 0.05 0.1 0.25 0.3 0.4 (nearest rank): 0.1, 0.25, 0.3, 0.4
    assert chart.rows[0] == ("a", ((0, "░░"), (None, "  "), (3, "██")))
    assert chart.rows[1] == ("b", ((1, "▒▒"), (2, "▓▓"), (0, "░░")))
    legend = "".join(text for _, text in chart.legend)
    assert legend == ("legend: ░ 0ms-100ms  ▒ 100ms-250ms  ▓ 250ms-300ms  █ 300ms-400ms  "
                      "blank: no task")
    assert [level for level, _ in chart.legend if level is not None] == [0, 1, 2, 3]


def test_time_axis() -> None:
    columns = [1795824000.0 + 3600 * i for i in range(24)]  # 2026-11-28 00:00 UTC
    assert render.time_axis(columns, 1, 3600.0) == "00:00" + "23:00".rjust(24 - 5)
    assert render.time_axis(columns[:3], 1, 3600.0) == "00:00"
    assert render.time_axis([], 1, 60.0) == ""


def test_rusage_figures_say_they_are_the_main_process_only() -> None:
    from lazycelery.analysis.fleet.text import resource_lines

    reply = {"rusage": {"utime": 1, "stime": 2, "maxrss": 2048},
             "pool": {"implementation": "celery.concurrency.prefork:TaskPool",
                      "processes": [101, 102, 103]}}
    first = rusage_sample("w", reply, 5.0)
    second = rusage_sample("w", {**reply, "rusage": {"utime": 2, "stime": 2, "maxrss": 2048}},
                           15.0)
    assert first is not None and second is not None and second.pool_processes == 3
    points = cpu_series([first, second])
    assert points[1].as_json()["pool_processes_not_counted"] == 3
    lines = resource_lines("w", points, [])
    assert "(2 samples, main process only)" in lines[1]
    assert lines[2].endswith("last 2.0 MiB  (main process only)")
    assert lines[3] == ("  not counted: its 3 pool processes, where the tasks run (celery's "
                        "rusage is the main process's own)")
