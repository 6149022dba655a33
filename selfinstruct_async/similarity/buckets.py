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
item) without ever copying a large array.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from .bounds import LANE

__all__ = ["MAX_ITEM", "TokenBuckets"]

_BUCKETS = 256
_MASK = _BUCKETS - 1
_OFFSET = _BUCKETS  # the row after the buckets holds each item's offset
MAX_ITEM = LANE  # longest item whose byte lanes cannot overflow
_FIRST_CAPACITY = 1024  # items; a block doubles up to ``block`` before the next one starts
_LANES = 8  # item bytes per uint64 word
# Row views are cut this many words wide at a time: slicing 15 rows per query cost more
# than summing the up to 511 empty items a wider view adds (empty items sum to 0).
_VIEW_STEP = 64
_NONE = np.empty(0, dtype=np.int64)
_NONE.setflags(write=False)


class _Block:
    """Counts of up to ``capacity`` items: bytes to write, the same memory as uint64 words."""

    def __init__(self, capacity: int) -> None:
        self.counts = np.zeros((_BUCKETS + 1, capacity), dtype=np.uint8)
        self.words = self.counts.view(np.uint64)
        self.cells = self.counts.reshape(-1).data
        self.used = 0
        self.rows: list[np.ndarray[Any, Any]] = []  # word views of every row, as wide as
        self.total = np.empty(0, dtype=np.uint64)  # this accumulator
        self.bytes = self.total.view(np.uint8)

    @property
    def capacity(self) -> int:
        return int(self.counts.shape[1])

    def widen(self) -> None:
        """Make the row views and the accumulator cover every used item."""
        width = min(-(-self.used // (_LANES * _VIEW_STEP)) * _VIEW_STEP, self.words.shape[1])
        self.rows = list(self.words[:, :width])
        self.total = np.empty(width, dtype=np.uint64)
        self.bytes = self.total.view(np.uint8)


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
        ``long_items`` are never returned.
        """
        rows = list({token & _MASK for token in ids if token < vocabulary})
        if not rows or least > MAX_ITEM:
            return _NONE, _NONE
        if offsets:
            rows.append(_OFFSET)
        if len(self._blocks) == 1:  # the usual case, without the bookkeeping of many
            return self._over_block(self._blocks[0], rows, least, offsets)
        found = []
        offset = 0
        for block in self._blocks:
            items, bounds = self._over_block(block, rows, least, offsets)
            if len(items):
                found.append((items + offset, bounds))
            offset += block.capacity
        if not found:
            return _NONE, _NONE
        return np.concatenate([i for i, _ in found]), np.concatenate([b for _, b in found])

    @staticmethod
    def _over_block(
        block: _Block, rows: list[int], least: int, offsets: bool
    ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        used = block.used
        if used > len(block.bytes):
            block.widen()
        elif not used:
            return _NONE, _NONE
        views, total, add = block.rows, block.total, np.add
        # Row by row into one accumulator: a fancy-indexed gather would first copy every
        # query row (|Q| times the accumulator's size) and then sum the copy, 3x the time.
        np.copyto(total, views[rows[0]])
        for row in rows[1:]:
            add(total, views[row], out=total)
        sums = block.bytes[:used]
        items = np.flatnonzero(sums >= least)
        bounds = sums[items]
        if offsets:
            bounds -= block.counts[_OFFSET, items]
        return items, bounds
