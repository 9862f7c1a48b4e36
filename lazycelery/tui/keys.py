"""Key specs: parsing user notation (``ctrl-d``, ``shift-tab``, ``g g``) and pretty names for
help and footer (the registry turns commands into key bindings)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from prompt_toolkit.key_binding import KeyBindings

__all__ = ["KeySeq", "display_keys", "normalize_key", "parse_key_spec"]

#: one binding: a sequence of prompt_toolkit key names (usually one key)
KeySeq = tuple[str, ...]

_ALIASES: Final = {
    "esc": "escape", "return": "enter", "ret": "enter", "cr": "enter", "space": " ",
    "spc": " ", "pgup": "pageup", "page-up": "pageup", "pgdn": "pagedown",
    "pgdown": "pagedown", "page-down": "pagedown", "del": "delete", "bs": "c-h",
    "backspace": "c-h", "ins": "insert", "backtab": "s-tab",
}
_PRETTY: Final = {
    "escape": "esc", "enter": "enter", " ": "space", "down": "↓", "up": "↑", "left": "←",
    "right": "→", "pagedown": "pgdn", "pageup": "pgup", "s-tab": "shift-tab", "c-h": "backspace",
}


def normalize_key(token: str) -> str:
    """One key in user notation -> prompt_toolkit's name: ``ctrl-d``/``C-d``/``^d`` -> ``c-d``,
    ``shift-tab`` -> ``s-tab``, ``esc`` -> ``escape``; single characters stay as they are."""
    if len(token) == 1:
        return token
    low = token.lower()
    if low in _ALIASES:
        return _ALIASES[low]
    for prefix in ("ctrl-", "ctrl+", "control-", "c-", "^"):
        if low.startswith(prefix) and len(token) > len(prefix):
            rest = token[len(prefix):]
            return "c-" + rest.lower()
    for prefix in ("shift-", "shift+", "s-"):
        if low.startswith(prefix) and len(token) > len(prefix):
            return "s-" + low[len(prefix):]
    return low


def _valid(seq: KeySeq) -> bool:
    try:
        KeyBindings().add(*seq)(lambda event: None)
    except (ValueError, KeyError):
        return False
    return True


def parse_key_spec(spec: str | Sequence[str]) -> tuple[KeySeq, ...]:
    """``"j, down"`` -> ``(("j",), ("down",))``; ``"g g"`` is a two-key sequence; a list gives
    alternatives too. Raises ValueError naming the bad key."""
    parts: list[str] = []
    if isinstance(spec, str):
        # "," alone (or "<comma>") is the comma key; otherwise commas separate alternatives
        parts = [spec] if spec.strip() == "," else [p for p in spec.split(",")]
    else:
        parts = list(spec)
    out: list[KeySeq] = []
    for part in parts:
        words = part.split() if part.strip() else ([part] if part else [])
        if not words:
            continue
        seq = tuple(normalize_key(w) for w in words)
        if not _valid(seq):
            raise ValueError(f"unknown key {part.strip()!r} (examples: j, G, ctrl-d, shift-tab, "
                             "enter, esc, f5, space, 'g g')")
        out.append(seq)
    return tuple(out)


def display_key(seq: KeySeq) -> str:
    return " ".join(_PRETTY.get(k, k.replace("c-", "ctrl-", 1) if k.startswith("c-")
                                 else k) for k in seq)


def display_keys(seqs: Sequence[KeySeq], limit: int = 3) -> str:
    """``(("j",), ("down",))`` -> ``j/↓``."""
    return "/".join(display_key(s) for s in seqs[:limit])
