"""The ``--otel`` switch of the commands that ingest (record, tail): the option, and starting
and stopping the span pipeline around the command's own ``on_batch``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lazycelery.errors import UsageError

if TYPE_CHECKING:
    from lazycelery.otel.process import ProcessPipeline

__all__ = ["OTEL_HELP", "add_otel_option", "require_tracing", "start_tracing", "stop_tracing"]

OTEL_HELP = ("also export one OpenTelemetry span per task attempt over OTLP, configured by "
             "OTEL_EXPORTER_OTLP_ENDPOINT / _HEADERS / OTEL_SERVICE_NAME or the config file's "
             "[otel] table (needs the `otel` extra; docs/tracing.md)")
INSTALL_HINT = "--otel needs the OpenTelemetry SDK: pip install 'lazycelery[otel]'"


def add_otel_option(parser: argparse._ActionsContainer) -> None:
    # No default of its own: argparse copies a subcommand's defaults over the top-level
    # namespace, which would turn `lazycelery --otel tail` back into --otel off.
    parser.add_argument("--otel", action="store_true", default=argparse.SUPPRESS, help=OTEL_HELP)


def require_tracing(args: argparse.Namespace, settings: Any) -> None:
    """With ``--otel``, the SDK the span exporter needs is installed: else the install hint
    (one UsageError line), said before a command opens its store or starts its schedules."""
    if not getattr(args, "otel", False):
        return
    from lazycelery.otel.process import missing_packages
    from lazycelery.otel.settings import otel_settings

    missing = missing_packages(otel_settings(getattr(settings, "config_path", None)))
    if missing:
        raise UsageError(f"{INSTALL_HINT} (missing {', '.join(missing)})")


def start_tracing(args: argparse.Namespace, settings: Any,
                  say: Callable[[str], None]) -> ProcessPipeline | None:
    """The running pipeline when ``--otel`` was given, else None; a bad setting or a missing
    SDK is one UsageError/ConfigError line."""
    if not getattr(args, "otel", False):
        return None
    from lazycelery.otel.settings import otel_settings

    otel = otel_settings(getattr(settings, "config_path", None))
    from lazycelery.otel.process import ProcessPipeline

    try:
        pipeline = ProcessPipeline(otel, notify=say)
    except ImportError as exc:  # the SDK or its exporter is not installed
        raise UsageError(f"{INSTALL_HINT} ({exc})") from None
    sampling = "" if not otel.tail_sampling else (
        f", keeping {otel.sample_ratio:.0%} of the plain successful traces")
    say(f"exporting task spans to {otel.masked_endpoint} ({otel.protocol}, service "
        f"{otel.service_name!r}{sampling})")
    return pipeline.start()


def stop_tracing(pipeline: ProcessPipeline | None, say: Callable[[str], None]) -> None:
    """Flush what is held and say what became of the spans (one line)."""
    if pipeline is None:
        return
    pipeline.stop()
    say(pipeline.summary())
