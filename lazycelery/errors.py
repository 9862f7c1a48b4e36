"""Exceptions that the CLI turns into one clear line (never a traceback)."""

from __future__ import annotations

__all__ = ["BrokerError", "ConfigError", "LazyCeleryError", "UsageError"]


class LazyCeleryError(Exception):
    """Base class: ``str(exc)`` is the one line shown to the user."""

    exit_code = 2


class ConfigError(LazyCeleryError):
    """A bad config file, environment variable, flag or app module."""


class BrokerError(LazyCeleryError):
    """The broker is unreachable, refused us, or its transport is unsupported."""


class UsageError(LazyCeleryError):
    """The command line asks for something that cannot be done."""
