"""Free text and regular expressions over a million tasks without a Python call per task.

The task list keeps, per chunk of records (by arrival number), the lowercased text that free
text searches joined into one string (a *haystack*): ``args \\x00 kwargs \\x00 result \\x00
exception`` for each record, records separated by ``\\x01``; the ids get a text of their own,
built only when a needle could occur in one (a custom id, or a needle of hex digits). A
``str.find`` pass in C over a chunk of 16,384 records finds the records that contain a
filter's needle (``query.TextProbe``); a bisection over the record offsets maps each hit to its record. The
name, low-cardinality, is tested once per distinct value. Only those candidates are re-checked
with the whole predicate, so semantics stay exactly the predicate's (docs/filter.md): the
haystack only has to miss nothing, and a regular expression is never run on joined text.

Validity: a chunk is reused while it holds the same record objects (a list compare, identity
first, in C) and none of them changed since it was built. Changes come from the index writer's
change log (``TaskIndex.changed_since``: ids of the records it touched), drained by the reader
before it uses a chunk; a change made while a chunk is being built is in the next drain, so a
stale chunk is rebuilt at the next scan at the latest. Built and read on the reader's (UI)
thread only; the records' fields are read without the lock like every other reader does.

Memory: the joined text (one byte per character while a chunk is ASCII), 8 bytes per record
for the offsets, and lists of the records, names and ids (8 bytes each per record); measured
in docs/performance.md.
"""

from __future__ import annotations

import re
import sys
from array import array
from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate, compress, count, repeat
from operator import add, attrgetter, contains
from typing import Any, Final

from lazycelery.core.model import TaskRecord
from lazycelery.core.query import Predicate, TextProbe

__all__ = ["CHUNK", "Chunk", "Haystacks"]

#: records (arrival numbers) per chunk: a rebuild costs a few ms, a scan of one a fraction
CHUNK: Final = 16_384
FIELD_SEP: Final = "\x00"
RECORD_SEP: Final = "\x01"
_FIELDS: Final = ("args", "kwargs", "result", "exception")
# ids as celery makes them, joined by the separator
_PLAIN_IDS: Final = re.compile("[0-9a-f\x00-]*").fullmatch
_ID_CHARS: Final = "0123456789abcdef-"
_name: Final = attrgetter("name")


def _blank_odd(columns: list[list[Any]]) -> list[int]:
    """Replace fields that are not text by "" (in place); the positions of their records."""
    odd: set[int] = set()
    for col in columns:
        for i, value in enumerate(col):
            if value.__class__ is not str:
                col[i] = ""
                odd.add(i)
    return sorted(odd)


class _Text:
    """Strings joined, lowercased, each followed by ``RECORD_SEP``; maps offsets back."""

    __slots__ = ("splits", "starts", "text")

    def __init__(self, texts: list[str]) -> None:
        text = RECORD_SEP.join(texts) + RECORD_SEP
        self.text = lowered = text.lower()
        if len(lowered) != len(text):
            # lowercasing made a character longer ("\u0130" -> "i\u0307"; none gets shorter,
            # so equal lengths mean equal offsets): offsets from each string lowercased
            texts = [t.lower() for t in texts]
            self.text = RECORD_SEP.join(texts) + RECORD_SEP
        #: where each string starts, and the end
        self.starts = array("q", map(add, accumulate(map(len, texts), initial=0), count()))
        #: no string holds the separator itself: splitting gives one piece per string
        self.splits = self.text.count(RECORD_SEP) == len(texts)

    def hits(self, needle: str) -> list[int]:
        """Positions of the strings that contain ``needle``, in order."""
        text, starts = self.text, self.starts
        n = len(starts) - 1
        dense = n // 4  # (measured: n // 2 to n // 8 within noise, n // 32 2-3x slower)
        out: list[int] = []
        find = text.find
        pos = find(needle)
        while pos >= 0:
            i = bisect_right(starts, pos) - 1
            out.append(i)
            if len(out) > dense and self.splits:
                # many: one string per record tested in C beats a find per hit
                return list(compress(range(n), map(contains, text.split(RECORD_SEP),
                                                   repeat(needle))))
            pos = find(needle, starts[i + 1])
        return out

    def memory(self) -> int:
        return sys.getsizeof(self.text) + sys.getsizeof(self.starts)


class Chunk:
    """The joined lowercased text of one run of records, and what maps a hit back."""

    __slots__ = ("_ids", "fields", "names", "odd", "plain_ids", "records")

    def __init__(self, records: list[TaskRecord]) -> None:
        self.records = records
        # one list per field, each a comprehension of its own (faster than one of tuples)
        uuids: list[Any] = [r.uuid for r in records]
        columns = [[r.args or "" for r in records], [r.kwargs or "" for r in records],
                   [r.result or "" for r in records], [r.exception or "" for r in records]]
        #: the distinct names (tested once each: names repeat); None: one is not hashable
        self.names: set[Any] | None
        try:
            self.names = set(map(_name, records))
        except TypeError:
            self.names = None
        #: positions of records with a field of an odd type (a record built without
        #: validation): always re-checked record by record, their text left out
        self.odd: list[int] = []
        try:
            #: args, kwargs, result, exception of each record
            self.fields = _Text(list(map(FIELD_SEP.join, zip(*columns, strict=True))))
            ids = FIELD_SEP.join(uuids)
        except TypeError:  # a field that is not text
            self.odd = _blank_odd([uuids, *columns])
            self.fields = _Text(list(map(FIELD_SEP.join, zip(*columns, strict=True))))
            ids = FIELD_SEP.join(uuids)
        #: every id is lowercase hex (as celery makes them): a needle with another
        #: character cannot occur in one, and lowercasing leaves them as they are
        self.plain_ids = _PLAIN_IDS(ids) is not None
        self._ids: _Text | None = None  # the ids' own text, built when a needle needs it

    def memory(self) -> int:
        """Bytes this chunk holds beyond the records themselves (text, offsets, lists)."""
        return (self.fields.memory() + (self._ids.memory() if self._ids is not None else 0)
                + sys.getsizeof(self.names) + sys.getsizeof(self.records)
                + sys.getsizeof(self.odd))

    def hits(self, needle: str) -> list[int]:
        """Positions of the records whose text (id included) contains ``needle``, in order."""
        hits = self.fields.hits(needle)
        if self.plain_ids and needle.strip(_ID_CHARS):
            return hits  # a character no plain id has
        if self._ids is None:
            ids = [r.uuid for r in self.records]  # (ids never change)
            if self.odd:
                _blank_odd([ids])
            self._ids = _Text(ids)
        more = self._ids.hits(needle)
        if not more:
            return hits
        return sorted({*hits, *more}) if hits else more

    def search(self, predicate: Predicate, probe: TextProbe) -> list[TaskRecord]:
        """The records of this chunk ``predicate`` matches, in order (as ``filter`` would)."""
        records = self.records
        test = probe.name_test
        if self.names is None:
            return predicate.filter(records)
        try:
            named = {name for name in self.names if test(name)}
        except Exception:  # an odd name the memo cannot take: record by record
            return predicate.filter(records)
        exact = probe.exact and self.plain_ids and not self.odd
        if exact and named and len(named) == len(self.names):
            return list(records)  # every name matches (a word of the task names, typed)
        hits = self.hits(probe.needle)
        if exact:
            # the needle in the text, or the name: that is the term, and the term is the filter
            if not named:
                return [records[i] for i in hits]
            mask = list(map(named.__contains__, map(_name, records)))
            for i in hits:
                mask[i] = True
            return list(compress(records, mask))
        if named:
            mask = list(map(named.__contains__, map(_name, records)))
            for i in hits:
                mask[i] = True
            for i in self.odd:
                mask[i] = True
            candidates = list(compress(records, mask))
        else:
            positions = sorted({*hits, *self.odd}) if self.odd else hits
            candidates = [records[i] for i in positions]
        if not self.odd:
            return predicate.filter(candidates)
        odd = {id(records[i]) for i in self.odd}
        plain = predicate.filter([r for r in candidates if id(r) not in odd])
        if not plain:
            return [r for r in candidates if id(r) in odd and predicate(r)]
        # merge back in order: the odd ones are checked one by one (``Predicate.__call__``)
        keep = {id(r) for r in plain}
        return [r for r in candidates if id(r) in keep or (id(r) in odd and predicate(r))]


class Haystacks:
    """Chunks of joined text keyed by arrival-number range (``key = seq // CHUNK``), rebuilt
    when a record in them changed (``invalidate``) or they no longer hold the same records."""

    def __init__(self, chunk: int = CHUNK) -> None:
        self.chunk = chunk
        self._chunks: dict[int, Chunk] = {}
        self._dirty: set[int] = set()
        #: chunks built (for tests and the benchmark)
        self.built = 0

    def __len__(self) -> int:
        return len(self._chunks)

    def invalidate(self, seqs: Sequence[int | None]) -> None:
        """Records with these arrival numbers changed: their chunks are rebuilt when next used."""
        size = self.chunk
        chunks = self._chunks
        if not chunks:
            return
        self._dirty.update(s // size for s in seqs if s is not None and s // size in chunks)

    def clear(self) -> None:
        self._chunks.clear()
        self._dirty.clear()

    def keep_only(self, keys: set[int]) -> None:
        """Drop the chunks of ranges no longer listed (their records were evicted)."""
        for key in [k for k in self._chunks if k not in keys]:
            del self._chunks[key]
        self._dirty &= keys

    def holds(self, key: int) -> bool:
        """A chunk of ``key``'s range is built (current or not)."""
        return key in self._chunks

    def get(self, key: int, records: list[TaskRecord]) -> Chunk:
        """The chunk of ``records`` (arrival numbers in ``key``'s range), rebuilt if stale."""
        chunk = self._chunks.get(key)
        if chunk is None or key in self._dirty or chunk.records != records:
            chunk = self._chunks[key] = Chunk(records)
            self._dirty.discard(key)
            self.built += 1
        return chunk

    def search(self, key: int, records: list[TaskRecord], predicate: Predicate) -> list[TaskRecord]:
        """What ``predicate.filter(records)`` returns, through the chunk of joined text of
        ``records`` (their arrival numbers all in ``key``'s range). The predicate needs a
        probe (``Predicate.probe``)."""
        probe = predicate.probe
        assert probe is not None
        return self.get(key, records).search(predicate, probe)

    def memory(self) -> int:
        """Bytes held by the chunks (text, offsets, lists), not counting the records."""
        return sum(c.memory() for c in self._chunks.values())
