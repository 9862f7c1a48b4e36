"""One module per pane: small typed factories returning prompt_toolkit containers."""

from __future__ import annotations

__all__: list[str] = []
