"""lazycelery: a keyboard-driven terminal dashboard and CLI for Celery clusters."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
