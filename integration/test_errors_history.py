"""The errors pane's history on a real PostgreSQL: the same scenarios as
tests/test_errors_history.py (stored failures replayed into the groups, marked as from
history, live ones on top, the pane's marks), on a database of the test's own."""

from __future__ import annotations

import pytest

from tests.test_errors_history import (  # noqa: F401 (collected here with this store_url)
    test_a_window_before_the_failures_reads_none,
    test_live_failures_join_the_stored_ones,
    test_stop_while_loading_ends_the_thread,
    test_stored_failures_become_groups_marked_from_history,
    test_the_errors_pane_marks_groups_from_history,
    write_store,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture
def store_url(postgres_url: str) -> str:
    return write_store(postgres_url)
