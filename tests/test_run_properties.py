"""Whatever bytes the manifest holds, the run never raises and writes one line per record."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import anyio
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batcher.api import ClientConfig
from batcher.auth import AccountSet, bearer_account
from batcher.manifest import open_manifest
from batcher.runner import Job, RunConfig
from batcher.simulator import SimulatorConfig, ThreadedSimulator
from tests.helpers import TOKEN


@pytest.fixture(scope="module")
def simulator_url() -> Iterator[str]:
    config = SimulatorConfig(tokens=frozenset({TOKEN}), window_limit=1_000_000)
    with ThreadedSimulator(config) as simulator:
        yield simulator.url


def records_in(manifest: Path, fmt: str) -> int:
    with open_manifest(manifest, fmt=fmt) as rows:
        return sum(1 for _ in rows)


def run_once(url: str, manifest: Path, results: Path, fmt: str) -> int:
    job = Job(
        manifest=str(manifest),
        results_path=results,
        accounts=AccountSet(default=bearer_account("default", TOKEN)),
        client_config=ClientConfig(base_url=url, max_in_flight=4, timeout_s=5),
        config=RunConfig(concurrency=4, manifest_format=fmt, backoff_base_s=0.01),
    )
    summary = anyio.run(job.run)
    return summary.rows


JSONL_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=6,
)
JSONL_ROWS = st.dictionaries(
    st.sampled_from(["path", "key", "media_type", "media_category", "total_bytes", "shared"])
    | st.sampled_from(["additional_owners", "account", "extra"]),
    JSONL_VALUES,
    max_size=6,
)  # fmt: skip


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=400), fmt=st.sampled_from(["csv", "jsonl", "paths"]))
def test_arbitrary_bytes_give_one_line_per_record(
    simulator_url: str, data: bytes, fmt: str
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        manifest, results = Path(folder) / "m", Path(folder) / "r.jsonl"
        manifest.write_bytes(data)
        expected = records_in(manifest, fmt)
        assert run_once(simulator_url, manifest, results, fmt) == expected
        assert len(results.read_bytes().splitlines()) == expected


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.lists(JSONL_ROWS, max_size=8))
def test_arbitrary_rows_give_one_line_each(
    simulator_url: str, rows: list[dict[str, object]]
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        manifest, results = Path(folder) / "m.jsonl", Path(folder) / "r.jsonl"
        manifest.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
        assert run_once(simulator_url, manifest, results, "jsonl") == len(rows)
        assert len(results.read_bytes().splitlines()) == len(rows)
