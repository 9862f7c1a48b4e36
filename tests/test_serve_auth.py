"""Serve authentication: hashed passwords and tokens, roles, the failed-login limit, and one
clear line (never the secret) for a bad [serve] table."""

from __future__ import annotations

import base64

import pytest

from lazycelery.serve.auth import (
    AuthConfig,
    AuthError,
    Guard,
    LoginLimiter,
    hash_password,
    hash_token,
    new_token,
)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture(scope="module")
def config() -> AuthConfig:
    return AuthConfig({
        "users": [{"name": "alice", "password": hash_password("s3cret"), "role": "operator"},
                  {"name": "bob", "password": hash_password("hunter2")}],
        "tokens": [{"name": "grafana", "sha256": hash_token("tok-1"), "role": "viewer"}],
    })


def test_passwords_and_tokens_identify_callers_with_roles(config: AuthConfig) -> None:
    guard = Guard(config)
    alice, _, _ = guard.identify(basic("alice", "s3cret"), "1.2.3.4")
    assert alice is not None and alice.name == "user:alice" and alice.may_act
    bob, _, _ = guard.identify(basic("bob", "hunter2"), "1.2.3.4")
    assert bob is not None and bob.role == "viewer" and not bob.may_act
    grafana, _, _ = guard.identify("Bearer tok-1", "1.2.3.4")
    assert grafana is not None and grafana.name == "token:grafana" and not grafana.may_act
    for header in (None, "", "Bearer", "Bearer tok-2", basic("alice", "S3cret"),
                   basic("nobody", "s3cret"), "Basic !!!", "Digest x", basic("alice", "")):
        caller, status, reason = guard.identify(header, f"client-{header}")
        assert caller is None and status == 401 and "s3cret" not in reason


def test_an_open_guard_lets_everyone_act_as_anonymous() -> None:
    caller, _, _ = Guard(AuthConfig({})).identify(None, "127.0.0.1")
    assert caller is not None and caller.name == "anonymous@127.0.0.1" and caller.may_act


def test_failed_logins_are_limited_per_client(config: AuthConfig) -> None:
    now = [100.0]
    guard = Guard(config, limiter=LoginLimiter(max_failures=3, window=60, clock=lambda: now[0]))
    for _ in range(3):
        assert guard.identify("Bearer wrong", "10.0.0.1")[1] == 401
    caller, status, reason = guard.identify("Bearer tok-1", "10.0.0.1")
    assert caller is None and status == 429 and "60 s" in reason
    assert guard.identify("Bearer tok-1", "10.0.0.2")[0] is not None  # another client
    now[0] += 61
    assert guard.identify("Bearer tok-1", "10.0.0.1")[0] is not None


@pytest.mark.parametrize(("table", "needle"), [
    ({"users": [{"name": "a", "password": "plain"}]}, "not a scrypt hash"),
    ({"users": [{"name": "a", "password": "scrypt$3$8$1$AAAA$AAAA"}]}, "out-of-range"),
    ({"users": [{"name": "a", "password": "scrypt$x$8$1$AAAA$AAAA"}]}, "malformed"),
    ({"users": [{"name": "a", "password": hash_password("x"), "role": "admin"}]}, "role"),
    ({"tokens": [{"name": "t", "sha256": "abc"}]}, "64 hex digits"),
    ({"tokens": [{"name": "t", "sha256": hash_token("x"), "extra": 1}]}, "extra"),
    ({"users": [{"name": "a:b", "password": hash_password("x")}]}, "no ':'"),
    ({"nope": 1}, "nope"),
])
def test_a_bad_table_is_one_line_without_the_secret(table: dict[str, object], needle: str) -> None:
    with pytest.raises(AuthError) as caught:
        AuthConfig(table)
    message = str(caught.value)
    assert needle in message and "\n" not in message
    users = table.get("users", [])
    assert isinstance(users, list)
    assert all(user["password"] not in message for user in users)


def test_new_tokens_are_unique_and_long() -> None:
    tokens = {new_token() for _ in range(20)}
    assert len(tokens) == 20 and min(map(len, tokens)) >= 40
