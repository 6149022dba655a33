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

Items are stored in blocks of ``block`` items, so memory grows with the pool (256 bytes an
item) without ever copying a large array.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = ["MAX_ITEM", "TokenBuckets"]

_BUCKETS = 256
_MASK = _BUCKETS - 1
MAX_ITEM = 255  # longest item whose byte lanes cannot overflow
_FIRST_CAPACITY = 1024  # items; a block doubles up to ``block`` before the next one starts
_LANES = 8  # item bytes per uint64 word
_NONE = np.empty(0, dtype=np.int64)
_NONE.setflags(write=False)


class _Block:
    """Counts of up to ``capacity`` items: bytes to write, the same memory as uint64 words."""

    def __init__(self, capacity: int) -> None:
        self.counts = np.zeros((_BUCKETS, capacity), dtype=np.uint8)
        self.words = self.counts.view(np.uint64)
        self.cells = self.counts.reshape(-1).data
        self.used = 0

    @property
    def capacity(self) -> int:
        return int(self.counts.shape[1])


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

    def add(self, ids: list[int]) -> None:
        """Append the next item, given its token ids."""
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
        last.used += 1

    def over(
        self, ids: Iterable[int], vocabulary: int, least: int
    ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """Items whose overlap bound with ``ids`` reaches ``least`` (ascending), and the bounds.

        Query tokens from ``vocabulary`` on (in no pool item) cannot match and are left out,
        which tightens the bound. Items in ``long_items`` are never returned.
        """
        rows = list({token & _MASK for token in ids if token < vocabulary})
        if not rows or least > MAX_ITEM:
            return _NONE, _NONE
        if len(self._blocks) == 1:  # the usual case, without the bookkeeping of many
            return self._over_block(self._blocks[0], rows, least)
        found = []
        offset = 0
        for block in self._blocks:
            items, bounds = self._over_block(block, rows, least)
            if len(items):
                found.append((items + offset, bounds))
            offset += block.capacity
        if not found:
            return _NONE, _NONE
        return np.concatenate([i for i, _ in found]), np.concatenate([b for _, b in found])

    @staticmethod
    def _over_block(
        block: _Block, rows: list[int], least: int
    ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        used = block.used
        words = block.words
        width = -(-used // _LANES)
        # Row by row into one accumulator: a fancy-indexed gather would first copy every
        # query row (|Q| times the accumulator's size) and then sum the copy, 3x the time.
        total = words[rows[0], :width].copy()
        for row in rows[1:]:
            np.add(total, words[row, :width], out=total)
        bounds = total.view(np.uint8)[:used]
        items = (bounds >= least).nonzero()[0]
        return items, bounds[items]
