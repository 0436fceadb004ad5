"""The public surface is what ``__all__`` says, and every name in it exists."""

from __future__ import annotations

import batcher


def test_all_names_exist_and_are_public() -> None:
    for name in batcher.__all__:
        assert hasattr(batcher, name), name
    public = {n for n in vars(batcher) if not n.startswith("_") and n[0].isupper()}
    assert public <= set(batcher.__all__)


def test_error_tree_has_one_root() -> None:
    for name in ("ConfigError", "ManifestError", "ResultsError", "ApiError", "BadResponse"):
        assert issubclass(getattr(batcher, name), batcher.BatcherError)
    assert issubclass(batcher.RequestTimeout, TimeoutError)
    assert issubclass(batcher.TransportError, ConnectionError)
    assert issubclass(batcher.BadResponse, ValueError)
