"""The kill switch: ``lazycelery policies pause [--for 1h]`` writes a small JSON file that every
running ``serve`` / ``record`` reads before it acts (a stat per tick; read again only when the
file changed). While paused, due retries are skipped and counted, not kept for later."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = ["STATE_ENV", "PauseState", "PauseSwitch", "default_state_path"]

#: overrides where the switch lives (tests; several recorders sharing one switch on NFS)
STATE_ENV: Final = "LAZYCELERY_POLICIES_STATE"


def default_state_path() -> Path:
    override = os.environ.get(STATE_ENV)
    if override:
        return Path(override).expanduser()
    import platformdirs

    return platformdirs.user_state_path("lazycelery", appauthor=False) / "policies.json"


@dataclass(frozen=True)
class PauseState:
    paused: bool = False
    #: unix time the pause ends by itself; None = until `policies resume`
    until: float | None = None
    by: str = ""
    since: float | None = None

    def active(self, now: float) -> bool:
        return self.paused and (self.until is None or now < self.until)

    def describe(self, now: float) -> str:
        if not self.active(now):
            return "active"
        if self.until is None:
            return f"paused by {self.by or 'someone'} (until `lazycelery policies resume`)"
        return f"paused by {self.by or 'someone'} for {max(0, int(self.until - now))} s more"


class PauseSwitch:
    def __init__(self, path: Path | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = path or default_state_path()
        self.clock = clock
        self._seen: tuple[int, int] | None = None
        self._state = PauseState()

    def read(self) -> PauseState:
        """The switch as the file says now (the last good reading if the file is unreadable:
        a half-written file must not un-pause the policies)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._seen, self._state = None, PauseState()
            return self._state
        except OSError:
            return self._state
        key = (st.st_mtime_ns, st.st_size)
        if key != self._seen:
            try:
                raw = json.loads(self.path.read_text())
                until = raw.get("until")
                since = raw.get("since")
                self._state = PauseState(
                    paused=bool(raw.get("paused")),
                    until=float(until) if isinstance(until, (int, float)) else None,
                    by=str(raw.get("by", "")),
                    since=float(since) if isinstance(since, (int, float)) else None)
                self._seen = key
            except (OSError, ValueError, AttributeError):
                pass
        return self._state

    def paused(self) -> bool:
        return self.read().active(self.clock())

    def write(self, state: PauseState) -> None:
        """Atomically (rename), so a reader sees the old file or the new one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        tmp.write_text(json.dumps({"paused": state.paused, "until": state.until,
                                   "by": state.by, "since": state.since}))
        os.replace(tmp, self.path)
