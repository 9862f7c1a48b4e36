"""10,000 generated argument sets with secrets at every depth, rendered as celery renders them
into events (``saferepr``, cut at 1,024 characters, 3 levels) and as plain reprs: after masking,
no secret is left whole in any of them."""

from __future__ import annotations

import random

from celery.utils.saferepr import saferepr

from lazycelery.mask import Masker
from tests.mask_fuzz import argument_set

SETS = 10_000


def _visible(secret: str, text: str) -> bool:
    return secret in text or secret.encode().decode("latin-1") in text


def test_no_secret_survives_masking_in_generated_arguments() -> None:
    rng = random.Random(17)
    masker = Masker()
    checked = 0
    for _ in range(SETS):
        args, kwargs, secrets = argument_set(rng)
        for field, value in (("args", args), ("kwargs", kwargs)):
            for text in (repr(value), str(saferepr(value, 1024, maxlevels=3))):
                out = masker.mask_field("fuzz.task", field, text)
                leaked = [s for s in secrets if s in out]
                assert not leaked, (text, out)
                checked += 1
    assert checked == SETS * 4
    assert sum(masker.counts.values()) > SETS  # secrets were there, and were masked


def test_the_flat_dict_shortcut_masks_exactly_as_the_syntax_tree() -> None:
    from lazycelery.mask import compile_rules
    from lazycelery.mask.source import mask_flat, mask_source
    from tests.mask_fuzz import KEY_NAMES, PLAIN_KEYS, pattern_secret

    rng = random.Random(3)
    rules = compile_rules()
    flat = 0
    for _ in range(3_000):
        value = {rng.choice(KEY_NAMES + PLAIN_KEYS): rng.choice(
            [pattern_secret(rng), "ana", "it's", 4111111111111111, -2, 1.5, None, True, "x\\y"])
            for _ in range(rng.randrange(0, 5))}
        text = repr(value)
        fast: list[str] = []
        slow: list[str] = []
        shortcut = mask_flat(text, rules, fast)
        if shortcut is None:
            continue
        flat += 1
        assert shortcut == mask_source(text, rules, slow, ()), text
        assert sorted(fast) == sorted(slow), text
    assert flat > 1_000
