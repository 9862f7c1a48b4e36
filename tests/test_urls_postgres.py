"""PostgreSQL store URLs (read by libpq through psycopg): masking, the URLs libpq and other
tools would read differently (refused with how to write them), several hosts, libpq options."""

from __future__ import annotations

import pytest

from lazycelery.errors import ConfigError
from lazycelery.store import StoreError, parse_store_url
from lazycelery.urls import PERCENT_ENCODING_HINT, check_store, check_url, mask_url, url_problem


@pytest.mark.parametrize(("url", "masked"), [
    ("postgresql://lc:s3cret@db:5432/celerymon?sslmode=require",
     "postgresql://lc:********@db:5432/celerymon?sslmode=require"),
    ("postgres://lc:s3cret@db/celerymon", "postgres://lc:********@db/celerymon"),
    ("postgresql://lc@db/celerymon?password=s3cret&sslmode=require",
     "postgresql://lc@db/celerymon?password=********&sslmode=require"),
    ("postgresql://lc:s3cret@h1:5432,h2:5433/celerymon",
     "postgresql://lc:********@h1:5432,h2:5433/celerymon"),
    ("postgresql://lc:p%40ss%2Fw0rd@[::1]:5432/celerymon",
     "postgresql://lc:********@[::1]:5432/celerymon"),
    ("postgresql://:s3cret@db/celerymon", "postgresql://:********@db/celerymon"),
    ("postgresql:///celerymon", "postgresql:///celerymon"),
])
def test_valid_urls_pass_and_are_masked(url: str, masked: str) -> None:
    assert url_problem(url) is None
    assert mask_url(url) == masked
    assert check_store(url, "--store") == url
    assert parse_store_url(url).kind == "postgresql"


@pytest.mark.parametrize(("url", "problem"), [
    ("postgresql://lc:p@ss@db/celerymon", "an '@' in the user name or password"),
    ("postgresql://lc:pa/ss@db/celerymon", "where the password ends is ambiguous (an '@' after a '/')"),
    ("postgresql://lc:pa?ss@db/celerymon", "where the password ends is ambiguous (a '?' before the '@')"),
    ("postgres://lc:pa#ss@db/celerymon", "a '#' (another tool would read the rest as a fragment)"),
    ("postgresql://lc:100%pure@db/celerymon", "a '%' not followed by two hex digits"),
    ("postgresql://lc:pw@db:99999/celerymon", "the port is not a number between 0 and 65535"),
    ("postgresql://lc:pw@h1:5432,h2:x/celerymon", "the port is not a number between 0 and 65535"),
    ("postgresql://lc:pw@[::1/celerymon", "a host is not valid"),
    ("postgresql://db/celerymon?sslmode", "a query parameter without '='"),
])
def test_ambiguous_or_broken_urls_are_one_line_without_the_secret(url: str, problem: str) -> None:
    found = url_problem(url)
    assert found is not None and found.startswith(problem)
    if "password" in found or "'@'" in found:
        assert found.endswith(PERCENT_ENCODING_HINT)
    with pytest.raises(ConfigError) as config_error:
        check_store(url, "LAZYCELERY_STORE")
    with pytest.raises(StoreError) as store_error:
        parse_store_url(url)
    for text in (str(config_error.value), str(store_error.value)):
        assert "\n" not in text and problem in text
        for secret in ("p@ss", "pa/ss", "pa?ss", "pa#ss", "100%pure"):
            assert secret not in text
    assert str(store_error.value).startswith("--store: bad PostgreSQL URL 'postgres")


def test_check_url_applies_the_same_rules() -> None:
    assert check_url("postgresql://lc:s3cret@db/x", "store") == "postgresql://lc:s3cret@db/x"
    with pytest.raises(ConfigError) as info:
        check_url("postgresql://lc:s3/cret@db/x", "store")
    assert "s3/cret" not in str(info.value) and "ambiguous" in str(info.value)
