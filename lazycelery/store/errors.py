"""The one exception of the store: a message the CLI prints as one line (never a traceback)."""

from __future__ import annotations

from lazycelery.errors import LazyCeleryError

__all__ = ["StoreError"]


class StoreError(LazyCeleryError):
    """The store cannot be opened, read or written: ``str(exc)`` names it (password masked)
    and says why in one line."""
