"""Similar-error clusters: groups whose normalised messages and application frames are near each
other (different fingerprints of one underlying cause, e.g. the same timeout raised from two
tasks, or redis-py's ConnectionError and kombu's OperationalError wrapping it).

Similarity is the Jaccard index of two token sets: the exception's short type name, the words
of the normalised message and their bigrams (word shingles), and the application frames. Groups
at or above ``THRESHOLD`` are linked, and clusters are the connected components (single
linkage). The threshold was chosen on the real tracebacks of tests/data/errors (recorded from
real workers): the same requests read timeout from two tasks scores 0.91, redis-py's
connection refused from two tasks 0.88, redis-py's vs kombu's wrapping of it 0.76; the closest
pair that should stay apart (requests' connection refused vs its read timeout) scores 0.21,
a redis timeout vs a redis connection refused 0.04 (tests/test_analysis_similar.py checks
these figures)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Final

from lazycelery.analysis.fingerprint import Fingerprint
from lazycelery.analysis.groups import ErrorGroup

__all__ = ["THRESHOLD", "Cluster", "clusters", "similarity", "tokens"]

#: groups at least this similar are clustered
THRESHOLD: Final = 0.5
#: a token shared by more groups than this does not propose pairs (it still counts in the score)
_COMMON: Final = 200
_WORD: Final = re.compile(r"<\w+>|[A-Za-z_][A-Za-z0-9_]*")


_TOKENS: dict[str, frozenset[str]] = {}
_TOKENS_MAX: Final = 200_000


def tokens(fp: Fingerprint) -> frozenset[str]:
    """The fingerprint's token set (cached by its key)."""
    found = _TOKENS.get(fp.key)
    if found is None:
        if len(_TOKENS) >= _TOKENS_MAX:
            _TOKENS.clear()
        found = _TOKENS[fp.key] = _tokens(fp)
    return found


def _tokens(fp: Fingerprint) -> frozenset[str]:
    words = [w.lower() for w in _WORD.findall(fp.message)]
    out = {f"type:{fp.short_type.lower()}"}
    out.update(f"w:{w}" for w in words)
    out.update(f"b:{a} {b}" for a, b in pairwise(words))
    out.update(f"f:{f}" for f in fp.frames)
    return frozenset(out)


def similarity(a: Fingerprint, b: Fingerprint) -> float:
    """Jaccard index of the two fingerprints' token sets (1.0: same tokens)."""
    ta, tb = tokens(a), tokens(b)
    union = len(ta | tb)
    return len(ta & tb) / union if union else 1.0


@dataclass(frozen=True)
class Cluster:
    """Groups linked by similarity >= the threshold, most failures first."""

    groups: tuple[ErrorGroup, ...]
    #: the weakest link that joined them (1.0 for a single group)
    min_similarity: float

    @property
    def count(self) -> int:
        return sum(g.count for g in self.groups)

    @property
    def key(self) -> str:
        return self.groups[0].key


def clusters(groups: Iterable[ErrorGroup], threshold: float = THRESHOLD) -> list[Cluster]:
    """Clusters of more than one group, biggest first. Pairs are proposed through shared rare
    tokens (an inverted index), so the cost follows the number of similar pairs, not n²."""
    items: Sequence[ErrorGroup] = list(groups)
    sets = [tokens(g.fp) for g in items]
    postings: dict[str, list[int]] = {}
    for i, ts in enumerate(sets):
        for t in ts:
            postings.setdefault(t, []).append(i)
    parent = list(range(len(items)))
    weakest: dict[int, float] = {}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    seen: set[tuple[int, int]] = set()
    for members in postings.values():
        if len(members) > _COMMON:
            continue
        for x, i in enumerate(members):
            for j in members[x + 1:]:
                if (i, j) in seen:
                    continue
                seen.add((i, j))
                union = len(sets[i] | sets[j])
                score = len(sets[i] & sets[j]) / union if union else 1.0
                if score >= threshold:
                    ri, rj = root(i), root(j)
                    low = min(score, weakest.get(ri, 1.0), weakest.get(rj, 1.0))
                    parent[rj] = ri
                    weakest[ri] = low
    by_root: dict[int, list[ErrorGroup]] = {}
    for i, g in enumerate(items):
        by_root.setdefault(root(i), []).append(g)
    out = [Cluster(tuple(sorted(gs, key=lambda g: (-g.count, g.key))), weakest.get(r, 1.0))
           for r, gs in by_root.items() if len(gs) > 1]
    return sorted(out, key=lambda c: (-c.count, c.key))
