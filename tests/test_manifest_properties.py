"""Properties of manifest reading and row inspection, over arbitrary input (hypothesis).

Whatever the bytes: reading never raises, records are numbered 1..n without gaps, each
non-blank line of a line-based format is exactly one record, and inspecting any record never
raises either.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batcher.contract import MEDIA_CATEGORIES, MEDIA_TYPES
from batcher.manifest import open_manifest, open_manifest_keys, record_key
from batcher.media import inspect_record
from batcher.models import InvalidRow, ManifestRecord, WorkItem

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FIELDS = (
    "path",
    "key",
    "media_type",
    "media_category",
    "total_bytes",
    "additional_owners",
    "shared",
    "account",
)
STRING_FIELDS = ("path", "key", "media_type", "media_category", "account")
BOM = b"\xef\xbb\xbf"

# Bytes that look like manifests often enough to reach the interesting branches.
manifest_bytes = st.lists(
    st.one_of(
        st.binary(max_size=40),
        st.sampled_from(
            [b"\n", b"\r\n", b"  \n", b"#c\n", b",", b'"', b"{", b"}", BOM, b"\xff", b"\x00"]
        ),
        st.sampled_from([b'{"path": "a.png"}\n', b"path,key\n", b"a.png,k\n", b"[1]\n"]),
    ),
    max_size=30,
).map(b"".join)

text = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=6,
)


def records_of(data: bytes, fmt: str | None, tmp_path: Path) -> list[ManifestRecord]:
    (tmp_path / "manifest").write_bytes(data)
    with open_manifest(tmp_path / "manifest", fmt=fmt) as manifest:
        return list(manifest)


def _split(data: bytes) -> Iterator[bytes]:
    """The lines a line-based reader sees: split after each newline, BOM dropped once."""
    data = data.removeprefix(BOM)
    start = 0
    while start < len(data):
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end + 1
        yield data[start:end]
        start = end


def expected_count(data: bytes, fmt: str) -> int:
    if fmt == "jsonl":
        return sum(1 for line in _split(data) if line.strip(b" \t\r\n\x0b\x0c"))
    stripped = (line.strip() for line in _split(data))
    return sum(1 for line in stripped if line and not line.startswith(b"#"))


def assert_numbered(records: list[ManifestRecord]) -> None:
    assert [record.row for record in records] == list(range(1, len(records) + 1))


@SETTINGS
@given(data=manifest_bytes, fmt=st.sampled_from(["csv", "jsonl", "paths", None]))
def test_any_bytes_as_a_file_read_without_raising(
    tmp_path: Path, data: bytes, fmt: str | None
) -> None:
    records = records_of(data, fmt, tmp_path)
    assert_numbered(records)
    if fmt in ("jsonl", "paths"):
        assert len(records) == expected_count(data, fmt)
    for record in records:
        result = inspect_record(record, base_dir=tmp_path)
        assert isinstance(result, WorkItem | InvalidRow)


@SETTINGS
@given(data=manifest_bytes, fmt=st.sampled_from(["csv", "jsonl", "paths", None]))
def test_any_bytes_on_stdin_read_without_raising(data: bytes, fmt: str | None) -> None:
    with open_manifest("-", fmt=fmt, stdin=io.BytesIO(data)) as manifest:
        records = list(manifest)
        detected = manifest.format
    assert_numbered(records)
    if detected in ("jsonl", "paths"):
        assert len(records) == expected_count(data, detected)


def assert_same_keys(source: Path, fmt: str | None) -> None:
    """The cheap first pass sees exactly the keys of the records the run will read."""
    with open_manifest(source, fmt=fmt) as manifest:
        expected = [record_key(record) for record in manifest]
    with open_manifest_keys(source, fmt=fmt) as keys:
        assert list(keys) == expected


@SETTINGS
@given(data=manifest_bytes, fmt=st.sampled_from(["csv", "jsonl", "paths", None]))
def test_key_pass_matches_records_for_any_bytes(
    tmp_path: Path, data: bytes, fmt: str | None
) -> None:
    (tmp_path / "manifest").write_bytes(data)
    assert_same_keys(tmp_path / "manifest", fmt)


csv_cells = st.sampled_from(["", " ", "a.png", "k1", "k1", "x,y", 'q"uote', "é"]) | text


@SETTINGS
@given(
    header=st.permutations(["path", "key", "media_type", "extra"]).flatmap(
        lambda names: st.lists(st.sampled_from([*names, "KEY", " Path "]), min_size=1, max_size=6)
    ),
    body=st.lists(st.lists(csv_cells, max_size=7), max_size=8),
)
def test_csv_key_pass_matches_records_whatever_the_columns(
    tmp_path: Path, header: list[str], body: list[list[str]]
) -> None:
    # Repeated, missing, reordered or padded key/path columns; short, long and blank rows.
    out = io.StringIO()
    writer = csv.writer(out)
    for cells in [header, *body]:
        writer.writerow(cells)
    (tmp_path / "m.csv").write_text(out.getvalue())
    assert_same_keys(tmp_path / "m.csv", None)


def test_key_pass_of_a_directory_is_its_paths(tmp_path: Path) -> None:
    (tmp_path / "b.png").write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.gif").write_bytes(b"x")
    with open_manifest_keys(tmp_path) as keys:
        assert list(keys) == [str(tmp_path / "b.png"), str(tmp_path / "sub" / "a.gif")]
    assert_same_keys(tmp_path, None)


field_values: dict[str, st.SearchStrategy[Any]] = {
    "path": text.filter(str.strip).map(lambda value: "p" + value),
    "key": st.none() | text | st.integers(-(2**63), 2**63 - 1),
    "media_type": st.none() | st.sampled_from(sorted(MEDIA_TYPES)) | text,
    "media_category": st.none() | st.sampled_from(sorted(MEDIA_CATEGORIES)) | text,
    "total_bytes": json_values,
    "additional_owners": json_values,
    "shared": json_values,
    "account": st.none() | text,
    "x_source_id": json_values,
}
rows = st.lists(
    st.fixed_dictionaries(
        {"path": field_values["path"]},
        optional={name: value for name, value in field_values.items() if name != "path"},
    ),
    min_size=1,
    max_size=8,
)


@SETTINGS
@given(rows=rows)
def test_jsonl_rows_round_trip(tmp_path: Path, rows: list[dict[str, Any]]) -> None:
    data = b"".join(orjson.dumps(row) + b"\n" for row in rows)
    records = records_of(data, "jsonl", tmp_path)
    assert_numbered(records)
    assert len(records) == len(rows)
    for row, record in zip(rows, records, strict=True):
        bad_strings = [
            name for name in STRING_FIELDS if not isinstance(row.get(name, ""), str | None)
        ]
        if bad_strings:
            assert record.problem is not None
            assert any(f'"{name}"' in record.problem for name in bad_strings)
            continue
        assert record.problem is None
        assert {name: getattr(record, name) for name in FIELDS} == {
            name: row.get(name) for name in FIELDS
        }
        assert dict(record.meta) == {k: v for k, v in row.items() if k not in FIELDS}


@SETTINGS
@given(rows=rows)
def test_csv_rows_round_trip(tmp_path: Path, rows: list[dict[str, Any]]) -> None:
    columns = [*FIELDS, "x_source_id"]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([str(row.get(name, "")) for name in columns])
    records = records_of(out.getvalue().encode(), "csv", tmp_path)
    assert_numbered(records)
    assert len(records) == len(rows)
    for row, record in zip(rows, records, strict=True):
        assert record.problem is None
        assert record.path == row["path"]
        assert record.meta["x_source_id"] == (str(row.get("x_source_id", "")) or None)


records = st.builds(
    ManifestRecord,
    row=st.integers(1, 10**9),
    path=st.sampled_from([None, "", "a.png", "clip.mp4", "empty.gif", "dir", "gone.png"])
    | text.map(lambda value: "p" + value),
    key=st.none() | text,
    media_type=st.none() | st.sampled_from(sorted(MEDIA_TYPES)) | text,
    media_category=st.none() | st.sampled_from(sorted(MEDIA_CATEGORIES)) | text,
    total_bytes=json_values | st.integers(0, 2**40).map(str),
    additional_owners=json_values | st.lists(st.from_regex(r"[0-9]{1,19}", fullmatch=True)),
    shared=json_values | st.sampled_from(["yes", "No", "1", "TRUE", "off"]),
    account=st.none() | text,
    problem=st.none() | text,
)


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("media")
    (base / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))
    (base / "clip.mp4").write_bytes(b"\x00\x00\x00\x10ftypisom\x00\x00\x00\x00")
    (base / "empty.gif").write_bytes(b"")
    (base / "dir").mkdir()
    return base


@SETTINGS
@given(
    record=records,
    default=st.none() | st.sampled_from(sorted(MEDIA_CATEGORIES)),
)
def test_inspect_record_never_raises(
    media_dir: Path, record: ManifestRecord, default: str | None
) -> None:
    result = inspect_record(record, base_dir=media_dir, default_category=default)
    if isinstance(result, InvalidRow):
        assert result.error.detail.startswith(f"row {record.row}")
        assert result.error.retryable is False
    else:
        assert record.problem is None
        assert result.request.media_type in MEDIA_TYPES
        assert result.request.media_category in MEDIA_CATEGORIES
        assert result.key
