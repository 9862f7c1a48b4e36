"""Generated task arguments with secrets at every depth (shared by the unit fuzz test and the
integration test through a real worker). Holds no tests."""

from __future__ import annotations

import random
from typing import Any

KEY_NAMES = ("password", "PASSWORD", "db_password", "userPassword", "passwd", "secret",
             "client-secret", "token", "access_token", "api_key", "ApiKey", "x-api-key",
             "Authorization", "cookie", "card", "card_number", "cvv", "iban", "ssn",
             "private_key", "credentials", "pässword", "秘密_token")
PLAIN_KEYS = ("id", "user", "name", "amount", "tags", "note", "when", "ünïcode", "k", "items")


def _luhn_card(rng: random.Random) -> str:
    digits = [rng.choice("3456")] + [str(rng.randrange(10)) for _ in range(14)]
    total = 0
    for position, d in enumerate(reversed(digits)):
        n = int(d) * (2 if position % 2 == 0 else 1)
        total += n - 9 if n > 9 else n
    digits.append(str((10 - total % 10) % 10))
    card = "".join(digits)
    return rng.choice([card, " ".join(card[i:i + 4] for i in range(0, 16, 4)),
                       "-".join(card[i:i + 4] for i in range(0, 16, 4))])


def _token(rng: random.Random) -> str:
    return "S3cr3t" + "".join(rng.choice("abcdefghijkmnpqrstuvwxyz23456789") for _ in range(12))


def pattern_secret(rng: random.Random) -> str:
    """A value masked by what it looks like, whatever its key."""
    kind = rng.randrange(5)
    if kind == 0:
        return _luhn_card(rng)
    if kind == 1:
        return "Bearer " + _token(rng)
    if kind == 2:
        return f"eyJhbGciOiJIUzI1NiJ9.eyJ{_token(rng)}.{_token(rng)}"
    if kind == 3:
        return "AKIA" + "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16))
    return f"-----BEGIN PRIVATE KEY-----\n{_token(rng)}\n-----END PRIVATE KEY-----"


def _plain(rng: random.Random) -> Any:
    return rng.choice([rng.randrange(-1000, 10**6), rng.random() * 100, None, True,
                       "ana", "ünïcode ✓", "x" * rng.randrange(0, 40), b"bytes\x00",
                       "it's \"quoted\"", "line\nbreak"])


def generate(rng: random.Random, secrets: list[str], depth: int = 0) -> Any:
    """A nested value; every secret put in it is appended to ``secrets``."""
    roll = rng.random()
    if depth >= 3 or roll < 0.3:
        if rng.random() < 0.25:
            secret = pattern_secret(rng)
            secrets.append(secret)
            return secret
        return _plain(rng)
    if roll < 0.7:
        out: dict[Any, Any] = {}
        for _ in range(rng.randrange(1, 5)):
            if rng.random() < 0.4:
                secret = _token(rng)
                secrets.append(secret)
                value: Any = rng.choice([secret, secret.encode(), [secret, 1], {"v": secret}])
                out[rng.choice(KEY_NAMES)] = value
            else:
                out[rng.choice(PLAIN_KEYS)] = generate(rng, secrets, depth + 1)
        return out
    items = [generate(rng, secrets, depth + 1) for _ in range(rng.randrange(0, 4))]
    return tuple(items) if roll < 0.85 else items


def argument_set(rng: random.Random) -> tuple[tuple[Any, ...], dict[str, Any], list[str]]:
    """(args, kwargs, the secrets in them)."""
    secrets: list[str] = []
    args = tuple(generate(rng, secrets, 1) for _ in range(rng.randrange(0, 3)))
    kwargs: dict[str, Any] = {}
    for _ in range(rng.randrange(0, 3)):
        key = rng.choice(KEY_NAMES + PLAIN_KEYS)
        if key in KEY_NAMES:
            secret = _token(rng)
            secrets.append(secret)
            kwargs[key] = secret
        else:
            kwargs[key] = generate(rng, secrets, 1)
    return args, kwargs, secrets
