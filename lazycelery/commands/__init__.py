"""Sub-commands of the `lazycelery` CLI: one module each, imported only when needed.

Each module listed in ``COMMANDS`` exposes ``register(subparsers, common)`` which adds its
parser and sets ``handler`` to a ``"module:function"`` string; the function takes the parsed
``argparse.Namespace`` and returns an exit code. Modules keep heavy imports (celery, redis,
prompt_toolkit) inside their handlers so that ``--help`` stays fast.
"""

from __future__ import annotations

__all__ = ["COMMANDS"]

COMMANDS: tuple[str, ...] = (
    "lazycelery.commands.tail",
    "lazycelery.commands.record",
    "lazycelery.commands.serve",
    "lazycelery.commands.queues",
    "lazycelery.commands.config_cmd",
    "lazycelery.commands.task",
    "lazycelery.commands.worker",
    "lazycelery.commands.audit_cmd",
    "lazycelery.commands.mask_cmd",
    "lazycelery.commands.report",
    "lazycelery.commands.demo",
    "lazycelery.commands.plugins",
    "lazycelery.commands.errors_cmd",
    "lazycelery.commands.policies_cmd",
    "lazycelery.commands.notify_cmd",
)
