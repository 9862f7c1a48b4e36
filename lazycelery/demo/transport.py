"""The embedded broker: kombu's ``filesystem://`` transport, writing message files atomically."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

__all__ = ["Channel", "Transport"]


class Channel(filesystem.Channel):
    """A filesystem channel whose ``_put`` never exposes a partly written file.

    kombu's channel creates a message file under its final name and only then writes it, so a
    consumer polling the folder can take the file while it is still empty and fail with
    ``JSONDecodeError`` (kombu#1551; with a few processes it happens within seconds). This one
    writes each message in a staging folder and renames it into place, which is atomic on one
    filesystem. Readers need nothing else: a stock ``filesystem://`` consumer reads these files.
    The demo app selects this transport with ``broker_transport``.
    """

    @property
    def staging_folder(self) -> Path:
        """Where files are written before the rename (``staging_folder`` option; by default
        next to ``data_folder_out``, so on the same filesystem)."""
        configured = self.transport_options.get("staging_folder")
        return Path(configured or f"{self.data_folder_out}.staging")

    # kombu's base class names the argument `message`, its filesystem channel `payload`.
    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        # The name format is kombu's: consumers sort by it (milliseconds first) and match the
        # queue by what follows the first dot.
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        staging = self.staging_folder
        partial = staging / name
        try:
            staging.mkdir(parents=True, exist_ok=True)
            with partial.open("xb") as out:
                out.write(str_to_bytes(dumps(payload)))  # type: ignore[no-untyped-call]
            os.replace(partial, os.path.join(self.data_folder_out, name))
        except OSError as exc:
            raise ChannelError(f"Cannot add file {name!r} to directory") from exc


class Transport(filesystem.Transport):
    """kombu's filesystem transport with the atomic channel."""

    Channel = Channel
