"""Rate smoothing: time-weighted EWMA, a sane first rate, forgetting vanished queues."""

from __future__ import annotations

import pytest

from lazycelery.broker.rates import SmoothedRates


def test_first_sample_has_no_rate_then_raw_rate() -> None:
    tracker = SmoothedRates(half_life_s=5.0)
    assert tracker.update("q", 10, at=100.0) is None
    assert tracker.update("q", 20, at=101.0) == pytest.approx(10.0)


def test_first_rate_needs_a_long_enough_baseline() -> None:
    tracker = SmoothedRates(half_life_s=5.0, min_first_dt=0.25)
    tracker.update("q", 0, at=100.0)
    assert tracker.update("q", 1, at=100.005) is None  # would be 200/s
    assert tracker.update("q", 1, at=101.0) == pytest.approx(1.0)  # baseline kept at t=100


def test_one_half_life_moves_halfway() -> None:
    tracker = SmoothedRates(half_life_s=4.0)
    tracker.update("q", 0, at=0.0)
    tracker.update("q", 40, at=4.0)  # 10/s
    assert tracker.update("q", 40, at=8.0) == pytest.approx(5.0)  # raw 0/s, one half-life


def test_weight_depends_on_time_not_sample_count() -> None:
    coarse, fine = SmoothedRates(half_life_s=4.0), SmoothedRates(half_life_s=4.0)
    for tracker in (coarse, fine):
        tracker.update("q", 0, at=0.0)
        tracker.update("q", 40, at=4.0)
    coarse.update("q", 40, at=8.0)
    for step in range(1, 41):
        fine.update("q", 40, at=4.0 + step * 0.1)
    assert fine.rate("q") == pytest.approx(coarse.rate("q") or 0.0, rel=1e-9)


def test_negative_rates_and_non_increasing_time() -> None:
    tracker = SmoothedRates()
    tracker.update("q", 100, at=0.0)
    assert tracker.update("q", 90, at=2.0) == pytest.approx(-5.0)
    assert tracker.update("q", 0, at=2.0) == pytest.approx(-5.0)  # same instant: unchanged


def test_forget_except_restarts_history() -> None:
    tracker = SmoothedRates()
    tracker.update("a", 0, at=0.0)
    tracker.update("b", 0, at=0.0)
    tracker.forget_except(["a"])
    assert tracker.update("a", 5, at=1.0) == pytest.approx(5.0)
    assert tracker.update("b", 5, at=1.0) is None


def test_half_life_must_be_positive() -> None:
    with pytest.raises(ValueError):
        SmoothedRates(half_life_s=0)
