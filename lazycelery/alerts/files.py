"""The alert files, in one directory (``$LAZYCELERY_ALERTS_DIR``, else ``alerts/`` in the user
state directory): ``silences.json`` (written by ``lazycelery alerts silence``, read by every
evaluator) and ``state-ENV.json`` (what a running evaluator publishes, read by ``lazycelery
alerts``). Written whole to a temporary file and renamed: a reader never sees half a file."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from lazycelery.errors import ConfigError

__all__ = ["ALERTS_DIR_ENV", "SilenceReader", "alerts_dir", "read_silences", "read_state",
           "state_path", "write_json", "write_silences"]

ALERTS_DIR_ENV: Final = "LAZYCELERY_ALERTS_DIR"
SILENCES: Final = "silences.json"
VERSION: Final = 1
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_-]")


def alerts_dir(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    override = env.get(ALERTS_DIR_ENV)
    if override:
        return Path(override).expanduser()
    import platformdirs

    return platformdirs.user_state_path("lazycelery", appauthor=False) / "alerts"


def state_path(directory: Path, environment: str | None) -> Path:
    """``state-ENV.json``; an environment name is made a safe file name (no ``/``, ``..``, NUL)."""
    name = _UNSAFE.sub("_", environment) if environment else "default"
    return directory / f"state-{name}.json"


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` whole (a temporary file renamed over ``path``); ConfigError (one line)
    when it cannot be written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        reason = getattr(exc, "strerror", None) or exc
        raise ConfigError(f"{path}: cannot write ({reason})") from None


def _read_json(path: Path) -> dict[str, Any] | None:
    """The file's object; None when there is no file. ConfigError (one line) when unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        raise ConfigError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{path}: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    return data


def read_silences(directory: Path, now: float | None = None) -> dict[str, dict[str, Any]]:
    """Rule name -> its silence (``until``, ``created``, ``comment``), expired ones left out."""
    now = time.time() if now is None else now
    data = _read_json(directory / SILENCES) or {}
    found = data.get("silences", {})
    if not isinstance(found, dict):
        raise ConfigError(f"{directory / SILENCES}: 'silences' is not an object")
    return {name: entry for name, entry in found.items()
            if isinstance(entry, dict) and isinstance(entry.get("until"), (int, float))
            and entry["until"] > now}


def write_silences(directory: Path, silences: Mapping[str, Mapping[str, Any]]) -> None:
    write_json(directory / SILENCES, {"version": VERSION, "silences": dict(silences)})


def read_state(directory: Path, environment: str | None) -> dict[str, Any] | None:
    return _read_json(state_path(directory, environment))


class SilenceReader:
    """The silences as an evaluator reads them each tick: the file is read again only when
    it changed (one ``stat`` per tick); a bad file is reported once and counts as none."""

    def __init__(self, directory: Path, say: Any = None) -> None:
        self.path = directory / SILENCES
        self.directory = directory
        self.say = say
        self._seen: tuple[int, int] | None = None
        self._until: dict[str, float] = {}
        self._reported = False

    def __call__(self) -> dict[str, float]:
        try:
            stat = self.path.stat()
            seen = (stat.st_mtime_ns, stat.st_size)
        except (OSError, ValueError):
            seen = None
        if seen != self._seen:
            self._seen = seen
            try:
                silences = read_silences(self.directory, now=0.0)
            except ConfigError as exc:
                if self.say is not None and not self._reported:
                    self.say(f"alert silences ignored: {exc}")
                self._reported = True
                silences = {}
            self._until = {name: float(entry["until"]) for name, entry in silences.items()}
        return self._until
