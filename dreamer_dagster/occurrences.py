"""Counting repeated texts (a run's prompts, a step's generations) with a fixed, small
amount of memory per distinct text.

``LLM.run`` gives the ``k``-th repeat of a prompt the occurrence index ``k``, which
enters its cache key, so ``n`` identical prompts get ``n`` distinct cached
answers. Counting needs to remember every distinct prompt of the run; holding
the prompts themselves would grow with their length (a 1 KB prompt a row is 1 KB
a row). :class:`OccurrenceCounter` remembers a prompt by a 64-bit digest in an
open-addressing table of plain arrays: 12 bytes a slot (digest and count), at
most 0.75 full, whatever the prompts' length. The occurrence indexes, and so the
cache keys, are the ones a dict of prompts would give, unless two distinct
prompts of one run share a digest (about one chance in 10^9 for 200,000
prompts), when the second is taken for a repeat: it still gets an answer of its
own, cached under another key.
"""

from __future__ import annotations

import hashlib
from array import array

__all__ = ["OccurrenceCounter"]

_MAX_LOAD = 0.75


class OccurrenceCounter:
    """``next(text)``: how many times ``text`` was seen before (0 the first time), remembered
    by a 64-bit digest; writes nothing."""

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
        return self.add(prompt, 1)

    def add(self, text: str, count: int) -> int:
        """Count ``text`` as seen ``count`` more times (``count`` 0 changes nothing);
        return how many times it was seen before."""
        digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        value = int.from_bytes(digest, "little")
        slot = self._find(value)
        seen = self._counts[slot]
        if count <= 0:
            return seen
        if seen == 0:
            self._digests[slot] = value
            self._used += 1
        self._counts[slot] = seen + count
        if self._used > _MAX_LOAD * len(self._counts):
            self._grow()
        return seen

    def _find(self, value: int) -> int:
        """The slot holding the digest ``value``, or the empty slot where it belongs."""
        mask = len(self._counts) - 1
        slot = value & mask
        digests, counts = self._digests, self._counts
        while counts[slot] and digests[slot] != value:
            slot = (slot + 1) & mask
        return slot

    def _allocate(self, size: int) -> None:
        self._digests = array("Q", bytes(8 * size))
        self._counts = array("I", bytes(4 * size))  # 0: an empty slot

    def _grow(self) -> None:
        digests, counts = self._digests, self._counts
        self._allocate(2 * len(counts))
        for value, count in zip(digests, counts):
            if count:
                slot = self._find(value)
                self._digests[slot] = value
                self._counts[slot] = count
