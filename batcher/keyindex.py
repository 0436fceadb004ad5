"""Finding repeated keys exactly, with memory that barely grows with the manifest.

A first pass over the manifest puts every key into a Bloom filter (a few bits per key); a key
the filter claims to have seen already is a *suspect*: every real repeat is one, plus a small
share of false alarms. The run then remembers first rows for suspects only, so the check stays
exact while the state is about 2 MB per million rows instead of a dict of every key.

A manifest that cannot be read twice (stdin) gets the plain index: every key, remembered.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Final

BITS_PER_KEY: Final = 16
MIN_BITS: Final = 1 << 16


class BloomFilter:
    """A fixed-size Bloom filter over strings (Python's own string hash, double hashing)."""

    __slots__ = ("_bits", "_size")

    def __init__(self, expected_keys: int) -> None:
        size = max(MIN_BITS, expected_keys * BITS_PER_KEY)
        self._size = size
        self._bits = bytearray(math.ceil(size / 8))

    def __repr__(self) -> str:
        return f"<BloomFilter {self._size} bits>"

    def add(self, key: str) -> bool:
        """Add ``key``; True if it may have been added before (all its bits were set)."""
        # Three probes (with 16 bits per key: about 0.5 % false alarms), unrolled: this runs
        # once per key of the manifest, and a loop over them cost twice as much.
        first = hash(key)
        step = (first >> 32) | 1
        bits, size = self._bits, self._size
        one, two, three = first % size, (first + step) % size, (first + 2 * step) % size
        byte_1, mask_1 = one >> 3, 1 << (one & 7)
        byte_2, mask_2 = two >> 3, 1 << (two & 7)
        byte_3, mask_3 = three >> 3, 1 << (three & 7)
        seen = bool(bits[byte_1] & mask_1 and bits[byte_2] & mask_2 and bits[byte_3] & mask_3)
        bits[byte_1] |= mask_1
        bits[byte_2] |= mask_2
        bits[byte_3] |= mask_3
        return seen


class KeyIndex:
    """Which row first used a key; exact, remembering only keys that may repeat."""

    __slots__ = ("_first_row", "_suspects", "records")

    def __init__(self, suspects: set[str] | None = None, *, records: int = 0) -> None:
        self._suspects = suspects
        self._first_row: dict[str, int] = {}
        self.records = records  # what the first pass saw, keyless records too

    def __repr__(self) -> str:
        watched = "every key" if self._suspects is None else f"{len(self._suspects)} suspects"
        return f"<KeyIndex {watched}, {len(self._first_row)} remembered>"

    @classmethod
    def from_keys(cls, keys: Iterable[str | None], *, expected_keys: int) -> KeyIndex:
        """The index for a manifest whose keys were read once beforehand (None: no key)."""
        bloom = BloomFilter(expected_keys)
        records = 0
        suspects: set[str] = set()
        for key in keys:
            records += 1
            if key is not None and bloom.add(key):
                suspects.add(key)
        return cls(suspects, records=records)

    def first_row(self, key: str, row: int) -> int:
        """The first row that used ``key``: ``row`` itself unless the key repeats."""
        if self._suspects is not None and key not in self._suspects:
            return row
        return self._first_row.setdefault(key, row)
