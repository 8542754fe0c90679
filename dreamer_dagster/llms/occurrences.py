"""Counting repeated prompts in a run with a fixed, small amount of memory per prompt.

``LLM.run`` gives the ``k``-th repeat of a prompt the occurrence index ``k``, which
enters its cache key, so ``n`` identical prompts get ``n`` distinct cached
answers. Counting needs to remember every distinct prompt of the run; holding
the prompts themselves would grow with their length (a 1 KB prompt a row is 1 KB
a row). :class:`OccurrenceCounter` remembers a prompt by a 96-bit digest in an
open-addressing table of plain arrays: 16 bytes a slot (digest and count), at
most 0.75 full, whatever the prompts' length. The occurrence indexes, and so the cache keys,
are the ones a dict of prompts would give.
"""

from __future__ import annotations

import hashlib
from array import array

__all__ = ["OccurrenceCounter"]

_MAX_LOAD = 0.75


class OccurrenceCounter:
    """``next(prompt)``: how many times ``prompt`` was seen before in this run (0 the first time)."""

    def __init__(self, capacity: int = 1024):
        size = 1
        while size < capacity:
            size *= 2
        self._allocate(size)
        self._used = 0

    def __len__(self) -> int:
        """The number of distinct prompts seen."""
        return self._used

    def next(self, prompt: str) -> int:
        digest = hashlib.blake2b(prompt.encode("utf-8", "surrogatepass"), digest_size=12).digest()
        high = int.from_bytes(digest[:8], "little")
        low = int.from_bytes(digest[8:], "little")
        slot = self._find(high, low)
        seen = self._counts[slot]
        if seen == 0:
            self._highs[slot] = high
            self._lows[slot] = low
            self._used += 1
        self._counts[slot] = seen + 1
        if self._used > _MAX_LOAD * len(self._counts):
            self._grow()
        return seen

    def _find(self, high: int, low: int) -> int:
        """The slot holding the digest ``(high, low)``, or the empty slot where it belongs."""
        mask = len(self._counts) - 1
        slot = high & mask
        highs, lows, counts = self._highs, self._lows, self._counts
        while counts[slot] and (highs[slot] != high or lows[slot] != low):
            slot = (slot + 1) & mask
        return slot

    def _allocate(self, size: int) -> None:
        self._highs = array("Q", bytes(8 * size))
        self._lows = array("I", bytes(4 * size))
        self._counts = array("I", bytes(4 * size))  # 0: an empty slot

    def _grow(self) -> None:
        highs, lows, counts = self._highs, self._lows, self._counts
        self._allocate(2 * len(counts))
        for high, low, count in zip(highs, lows, counts):
            if count:
                slot = self._find(high, low)
                self._highs[slot] = high
                self._lows[slot] = low
                self._counts[slot] = count
