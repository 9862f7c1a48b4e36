"""The masker of a resolved configuration: the active environment's ``[mask]`` rules."""

from __future__ import annotations

from lazycelery.config import Settings
from lazycelery.mask.masker import SAVE_EVERY, Masker

__all__ = ["masker_for"]


def masker_for(settings: Settings, *, save_counts: bool = True) -> Masker:
    """The masker for ``settings`` (its ``problems`` are one line each, to show the user);
    ``save_counts``: keep the counts the compliance report reads (``mask.counts``)."""
    return Masker.from_config(settings.mask, settings.env_name,
                              save_every=SAVE_EVERY if save_counts else None)
