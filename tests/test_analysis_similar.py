"""Similar-error clusters on the recorded real tracebacks, with the threshold's margins."""

from __future__ import annotations

from lazycelery.analysis import clusters, similarity
from lazycelery.analysis.similar import THRESHOLD
from tests.errors_data import by_task, replay


def test_similarity_figures_of_the_docstring() -> None:
    groups = replay()

    def sim(a: str, b: str) -> float:
        return similarity(by_task(groups, a).fp, by_task(groups, b).fp)

    retry_free = by_task(groups, "shop.sync_inventory", lambda g: g.retried == 0).fp
    assert round(sim("shop.fetch_profile", "shop.fetch_orders"), 2) == 0.91
    assert round(similarity(by_task(groups, "shop.cache_get").fp, retry_free), 2) == 0.88
    assert round(sim("shop.cache_get", "shop.publish"), 2) == 0.76
    assert round(sim("shop.fetch_refused", "shop.fetch_orders"), 2) == 0.21
    assert round(sim("shop.cache_slow", "shop.cache_get"), 2) == 0.04
    assert THRESHOLD == 0.5


def test_clusters_join_one_cause_and_keep_others_apart() -> None:
    groups = replay()
    found = [{n for g in c.groups for n in g.names.counts} for c in clusters(groups)]
    assert found == [{"shop.cache_get", "shop.publish", "shop.sync_inventory"},
                     {"shop.fetch_profile", "shop.fetch_orders"}]


def test_the_threshold_moves_the_clusters() -> None:
    groups = replay()
    assert clusters(groups, threshold=0.8) != clusters(groups)
    assert len(clusters(groups, threshold=0.95)) == 0
    loose = {n for c in clusters(groups, threshold=0.2) for g in c.groups for n in g.names.counts}
    assert "shop.fetch_refused" in loose  # 0.21 to the read timeouts: joined below 0.21 only
