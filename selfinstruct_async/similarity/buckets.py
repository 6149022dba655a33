"""Token counts folded into 256 buckets per pool item: an overlap bound for the whole pool.

The LCS of two texts is at most their multiset token overlap. Hash every token id into one
of 256 buckets and keep, per item, how many of its tokens fall in each bucket: an inverted
index over 256 token classes, stored densely. For a query whose tokens fall in buckets Q,
an item's overlap is at most the sum of its counts over Q (tokens that match sit in the
same bucket; a collision only adds to the sum), so

    LCS <= overlap <= sum over b in Q of count[b, item]

is an exact upper bound, and one gather-and-sum over |Q| rows gives it for every item at
once. Counts are bytes, and an item's counts add up to its length, so for items of at most
255 tokens no partial sum can carry out of its byte: eight items' bytes are summed as one
uint64 (a SIMD-within-a-register add), which makes the bound for a whole pool cost about
one machine add per eight items per query bucket. Longer items (rare in instruction data)
get no counts and are listed in ``long_items`` for the index to check by length alone.

Each item may also carry an *offset* byte, summed with its counts when asked: the index
stores there what its own length lets it off the least LCS it needs (``bounds.credits``),
so one comparison of the summed bytes with a per-query constant applies every item's own
length at once. Comparing the plain sums with the least need of any length instead let
through 25 times more items at a 50,000-item pool, each then looked up and compared again.

Items are stored in blocks of ``block`` items, so memory grows with the pool (257 bytes an
item) without ever copying a large array. ``chunks`` sums a block in one pass or, once it
holds over 24,576 items, stretch by stretch (8,192 items, 16,384, the rest) so that a
caller looking for any item above its bound can stop at the first stretch with one. Up to
8,192 items a stretch's rows are gathered and reduced in two numpy calls; wider ones are
added row by row into one accumulator.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from .bounds import LANE

__all__ = ["MAX_ITEM", "TokenBuckets", "bucket"]

_BUCKETS = 256
_MASK = _BUCKETS - 1
_OFFSET = _BUCKETS  # the row after the buckets holds each item's offset
MAX_ITEM = LANE  # longest item whose byte lanes cannot overflow
_FIRST_CAPACITY = 1024  # items; a block doubles up to ``block`` before the next one starts
_LANES = 8  # item bytes per uint64 word
# Row views are cut this many words wide at a time: slicing 15 rows per query cost more
# than summing the up to 511 empty items a wider view adds (empty items sum to 0).
_VIEW_STEP = 64
# Up to this many words (8,192 items) a span's query rows are gathered and reduced in two
# calls; above it they are added one by one (measured crossover 1,024-1,536 words).
_GATHER_WIDTH = 1024
# The stretches of a block searched one after the other, in words (8 items a word): 8,192
# items, 16,384, the rest; a block of up to 24,576 items is searched in one stretch.
_SPANS = ((0, 1024), (1024, 3072), (3072, 1 << 62))
_NONE = np.empty(0, dtype=np.int64)
_NONE.setflags(write=False)


def bucket(token: int) -> int:
    """The bucket (row) of a token id."""
    return token & _MASK


class _Span:
    """Views of one stretch of a block's words, summed and searched as one chunk."""

    __slots__ = ("bytes", "first", "grid", "offsets", "rows", "total")

    def __init__(self, block: _Block, lo: int, hi: int) -> None:
        self.first = lo * _LANES  # the block's first item in this span
        self.grid = block.grid[:, lo:hi]
        # one view a row, for the row-by-row sum of wide spans only (narrow ones gather);
        # made on first use: of a block's two layouts, most queries use one
        self.rows: list[np.ndarray[Any, Any]] = []
        self.total = block.total[lo:hi]
        self.bytes = self.total.view(np.uint8)
        self.offsets = block.offsets[self.first : hi * _LANES]

    def make_rows(self) -> list[np.ndarray[Any, Any]]:
        self.rows = list(self.grid)
        return self.rows


class _Block:
    """Counts of up to ``capacity`` items: bytes to write, the same memory as uint64 words."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity  # an attribute: add() reads it twice an item
        self.counts = np.zeros((_BUCKETS + 1, capacity), dtype=np.uint8)
        self.words = self.counts.view(np.uint64)
        self.offsets = self.counts[_OFFSET]
        self.cells = self.counts.reshape(-1).data
        self.used = 0
        self.grid = self.words[:, :0]  # every row's words, as wide as the accumulator
        self.total = np.empty(0, dtype=np.uint64)
        self.whole: list[_Span] = []  # one span: every used item
        self.spans: list[_Span] = []  # the stretches, once there are enough items

    def widen(self) -> None:
        """Make the spans' views and the accumulator cover every used item."""
        width = min(-(-self.used // (_LANES * _VIEW_STEP)) * _VIEW_STEP, self.words.shape[1])
        self.grid = self.words[:, :width]
        self.total = np.empty(width, dtype=np.uint64)
        self.whole = [_Span(self, 0, width)]
        self.spans = self.whole
        if width > _SPANS[-1][0]:  # below, the last stretches would be too short to pay
            self.spans = [_Span(self, lo, min(hi, width)) for lo, hi in _SPANS]


class TokenBuckets:
    """Per-item bucket counts, appended in item order."""

    def __init__(self, block: int = 1 << 16) -> None:
        if block < _LANES or block % _LANES:
            raise ValueError(f"block must be a positive multiple of {_LANES} items, not {block}")
        self._block = block
        self._blocks = [_Block(min(_FIRST_CAPACITY, block))]
        self.long_items: list[int] = []  # items over MAX_ITEM tokens: no counts, no bound

    def __len__(self) -> int:
        return (len(self._blocks) - 1) * self._block + self._blocks[-1].used

    @property
    def nbytes(self) -> int:
        """Memory held by the counts."""
        return sum(int(b.counts.nbytes) for b in self._blocks)

    def add(self, ids: list[int], offset: int = 0) -> None:
        """Append the next item, given its token ids and its offset byte (see ``over``)."""
        if not 0 <= offset <= LANE - min(len(ids), LANE):
            raise ValueError(f"offset {offset} with {len(ids)} tokens would overflow a byte")
        last = self._blocks[-1]
        if last.used == last.capacity:
            if last.capacity == self._block:
                last = _Block(min(_FIRST_CAPACITY, self._block))
                self._blocks.append(last)
            else:
                grown = _Block(min(2 * last.capacity, self._block))
                grown.counts[:, : last.capacity] = last.counts
                grown.used = last.used
                self._blocks[-1] = last = grown
        if len(ids) > MAX_ITEM:
            self.long_items.append(len(self))
        else:
            # Byte stores through a memoryview: a numpy store per token costs ten times more.
            cells, capacity, column = last.cells, last.capacity, last.used
            for token in ids:
                cells[(token & _MASK) * capacity + column] += 1
            if offset:
                cells[_OFFSET * capacity + column] = offset
        last.used += 1

    def over(
        self, ids: Iterable[int], vocabulary: int, least: int, *, offsets: bool = False
    ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """Items whose overlap bound with ``ids`` reaches ``least`` (ascending), and the bounds.

        With ``offsets``, an item's offset byte is added to its bound before the comparison
        (the bounds returned stay without it). Query tokens from ``vocabulary`` on (in no
        pool item) cannot match and are left out, which tightens the bound. Items in
        ``long_items`` are never returned. ``least`` is at least 1.
        """
        found = [(i, b) for _, i, b in self.chunks(ids, vocabulary, least, offsets=offsets)]
        found = [(i, b) for i, b in found if len(i)]
        if not found:
            return _NONE, _NONE
        if len(found) == 1:
            return found[0]
        return np.concatenate([i for i, _ in found]), np.concatenate([b for _, b in found])

    def chunks(
        self,
        ids: Iterable[int],
        vocabulary: int,
        least: int,
        *,
        offsets: bool = False,
        stretches: bool = True,
    ) -> Iterator[tuple[int, np.ndarray[Any, Any], np.ndarray[Any, Any]]]:
        """``over``, one stretch of the pool at a time, oldest items first.

        Yields (items covered, items found, their bounds) per stretch: with ``stretches``,
        8,192 items, then 16,384, then the rest of each 65,536-item block (a block of up to
        24,576 items is one stretch); without, one stretch a block. A caller looking for
        any item that passes can stop early: near-duplicates mostly repeat old
        instructions (the seeds and early ones the prompts show), so when most queries
        have a hit, most hits are in the first stretch. Each stretch costs a few numpy
        calls more than one pass, which is why the caller chooses.
        """
        rows = {bucket(token) for token in ids if token < vocabulary}
        return self.chunks_of_rows(rows, least, offsets=offsets, stretches=stretches)

    def chunks_of_rows(
        self, buckets: set[int], least: int, *, offsets: bool = False, stretches: bool = True
    ) -> Iterator[tuple[int, np.ndarray[Any, Any], np.ndarray[Any, Any]]]:
        """``chunks`` of a query given as the set of its (known) tokens' buckets."""
        rows = list(buckets)
        if not rows or least > MAX_ITEM:
            yield len(self), _NONE, _NONE
            return
        if offsets:
            rows.append(_OFFSET)
        if least < 1:  # unused items sum to 0: they must never pass
            least = 1
        base = 0
        for block in self._blocks:
            used = block.used
            if used > len(block.total) * _LANES:
                block.widen()
            for span in block.spans if stretches else block.whole:
                if span.first >= used:
                    break
                covered = used - span.first
                if covered > len(span.bytes):
                    covered = len(span.bytes)
                items, bounds = _search(span, rows, least, offsets)
                yield covered, (items + (base + span.first) if base + span.first else items), bounds
            base += block.capacity


def _search(
    span: _Span, rows: list[int], least: int, offsets: bool
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """The span's items whose summed bytes reach ``least``, and their sums (less offsets)."""
    total = span.total
    if len(total) <= _GATHER_WIDTH or len(rows) == 1:
        # One gather and one reduction: per-call costs would dominate |Q| row additions
        # (half the time at 4,096 items).
        np.add.reduce(span.grid[rows], axis=0, out=total)
    else:
        # Row by row into one accumulator: the gather would first copy every query row
        # (|Q| times the accumulator's size), 2x the time at 50,000 items. ``out`` is
        # passed by position: the keyword costs a fifth of a small addition.
        views, add = span.rows or span.make_rows(), np.add
        add(views[rows[0]], views[rows[1]], total)
        for row in rows[2:]:
            add(total, views[row], total)
    sums = span.bytes
    items = (sums >= least).nonzero()[0]  # flatnonzero's ravel and frame cost as much
    if not len(items):  # a third of the queries at a 2,000-item pool: three calls saved
        return _NONE, _NONE
    bounds = sums[items]
    if offsets:
        bounds -= span.offsets[items]
    return items, bounds
