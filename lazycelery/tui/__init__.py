"""The full-screen dashboard (prompt_toolkit); imported only by the dashboard command.

Data flows one way: ingest thread -> TaskIndex -> view models (``lazycelery.core.views``)
-> controls. Keys are bound by command name in one registry (``commands.py``) that also
generates the help overlay, the ``:`` palette and the footer.
"""

from __future__ import annotations

__all__: list[str] = []
