"""The key index is exact, whatever the Bloom filter's false alarms."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from batcher.keyindex import BloomFilter, KeyIndex


def first_rows(index: KeyIndex, keys: list[str]) -> list[int]:
    return [index.first_row(key, row) for row, key in enumerate(keys, start=1)]


def exact_first_rows(keys: list[str]) -> list[int]:
    first: dict[str, int] = {}
    return [first.setdefault(key, row) for row, key in enumerate(keys, start=1)]


@settings(max_examples=200, deadline=None)
@given(keys=st.lists(st.text(alphabet="abc", max_size=3), max_size=60))
def test_the_index_agrees_with_a_dict_of_every_key(keys: list[str]) -> None:
    index = KeyIndex.from_keys(keys, expected_keys=1)  # tiny: many false alarms
    assert first_rows(index, keys) == exact_first_rows(keys)
    assert first_rows(KeyIndex(), keys) == exact_first_rows(keys)


def test_unique_keys_are_mostly_not_remembered() -> None:
    keys = [f"media/{n:07d}.png" for n in range(100_000)]
    index = KeyIndex.from_keys(keys, expected_keys=len(keys))
    assert first_rows(index, keys) == list(range(1, 100_001))
    assert len(index._first_row) < 2_000  # false alarms only: about 0.5 %


def test_a_bloom_filter_reports_what_it_has_seen() -> None:
    bloom = BloomFilter(10)
    assert not bloom.add("a")
    assert bloom.add("a")
