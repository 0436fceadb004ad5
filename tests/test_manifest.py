"""Streamed manifest reading (``batcher.manifest``): formats, detection, bad rows, errors."""

from __future__ import annotations

import io
import itertools
import os
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from batcher import manifest as manifest_module
from batcher.errors import ManifestError
from batcher.manifest import count_records, open_manifest
from batcher.models import ManifestRecord

BOM = b"\xef\xbb\xbf"


def read_all(source: str | Path, *, fmt: str | None = None) -> list[ManifestRecord]:
    with open_manifest(source, fmt=fmt) as manifest:
        return list(manifest)


def read_bytes(
    tmp_path: Path, data: bytes, name: str = "m", fmt: str | None = None
) -> list[ManifestRecord]:
    (tmp_path / name).write_bytes(data)
    return read_all(tmp_path / name, fmt=fmt)


def read_stdin(data: bytes, fmt: str | None = None) -> tuple[str, list[ManifestRecord]]:
    with open_manifest("-", fmt=fmt, stdin=io.BytesIO(data)) as manifest:
        return manifest.format, list(manifest)


# --- CSV ------------------------------------------------------------------------------------


def test_csv_known_columns_meta_and_empty_cells(tmp_path: Path) -> None:
    data = (
        b" Path ,KEY,media_type,Media_Category,total_bytes,additional_owners,shared,account,"
        b"Source Id\n"
        b"a.png,k1,image/png,tweet_image,10,1;2,yes,acct,S-1\n"
        b"b.png,,,,,,,,\n"
    )
    records = read_bytes(tmp_path, data, "m.csv")
    assert records == [
        ManifestRecord(
            row=1,
            path="a.png",
            key="k1",
            media_type="image/png",
            media_category="tweet_image",
            total_bytes="10",
            additional_owners="1;2",
            shared="yes",
            account="acct",
            meta={"Source Id": "S-1"},
        ),
        ManifestRecord(row=2, path="b.png", meta={"Source Id": None}),
    ]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(
            b"path,total_bytes\na.png,5\n",
            [ManifestRecord(row=1, path="a.png", total_bytes="5")],
            id="plain",
        ),
        pytest.param(
            BOM + b"path,total_bytes\r\na.png,5\r\n",
            [ManifestRecord(row=1, path="a.png", total_bytes="5")],
            id="bom-and-crlf",
        ),
        pytest.param(
            b"path,key,account\na.png\n",
            [ManifestRecord(row=1, path="a.png")],
            id="fewer-cells-are-none",
        ),
        pytest.param(
            b"path\n\n   \n,,\na.png\n\n",
            [ManifestRecord(row=1, path="a.png")],
            id="blank-and-comma-only-rows-skipped",
        ),
        pytest.param(
            b'path,note\n"a,b.png","two\nlines"\nc.png,x\n',
            [
                ManifestRecord(row=1, path="a,b.png", meta={"note": "two\nlines"}),
                ManifestRecord(row=2, path="c.png", meta={"note": "x"}),
            ],
            id="quoted-comma-and-newline",
        ),
        pytest.param(
            b"\n\npath\na.png\n",
            [ManifestRecord(row=1, path="a.png")],
            id="blank-lines-before-header",
        ),
        pytest.param(b"path,key\n", [], id="header-only"),
        pytest.param(b"", [], id="empty-file"),
    ],
)
def test_csv_rows(tmp_path: Path, data: bytes, expected: list[ManifestRecord]) -> None:
    assert read_bytes(tmp_path, data, "m.csv") == expected


def test_csv_extra_cells_make_a_problem(tmp_path: Path) -> None:
    records = read_bytes(tmp_path, b"path,key\na.png,k,surprise\nb.png,k2\n", "m.csv")
    assert records[0].problem == "row has 3 cells but the header has 2"
    assert (records[0].path, records[0].key) == ("a.png", "k")
    assert records[1] == ManifestRecord(row=2, path="b.png", key="k2")


def test_csv_bad_utf8_spoils_only_its_row(tmp_path: Path) -> None:
    data = b"path,title\na.png,ok\nb.png,caf\xe9\nc.png,\xc3\xa9t\xc3\xa9\n"
    records = read_bytes(tmp_path, data, "m.csv")
    assert [record.row for record in records] == [1, 2, 3]
    assert records[0].problem is None
    assert records[1].problem == "line is not valid UTF-8"
    assert records[2] == ManifestRecord(row=3, path="c.png", meta={"title": "été"})


def test_csv_oversized_cell_is_a_problem_and_reading_goes_on(tmp_path: Path) -> None:
    data = b"path\n" + b"x" * 200_000 + b"\nb.png\n"
    records = read_bytes(tmp_path, data, "m.csv")
    assert [record.row for record in records] == [1, 2]
    assert records[0].problem is not None
    assert "CSV" in records[0].problem
    assert records[1] == ManifestRecord(row=2, path="b.png")


def test_csv_duplicate_known_column_goes_to_meta(tmp_path: Path) -> None:
    records = read_bytes(tmp_path, b"path,PATH\na.png,b.png\n", "m.csv")
    assert records == [ManifestRecord(row=1, path="a.png", meta={"PATH": "b.png"})]


# --- JSONL ----------------------------------------------------------------------------------


def test_jsonl_fields_and_meta_keep_json_values(tmp_path: Path) -> None:
    data = (
        b'{"path": "a.png", "total_bytes": 10, "additional_owners": ["1"], "shared": true,'
        b' "source": {"id": 7}, "tags": ["x"]}\n'
    )
    assert read_bytes(tmp_path, data, "m.jsonl") == [
        ManifestRecord(
            row=1,
            path="a.png",
            total_bytes=10,
            additional_owners=["1"],
            shared=True,
            meta={"source": {"id": 7}, "tags": ["x"]},
        )
    ]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        pytest.param(b"[1, 2]", "line is an array, not a JSON object", id="array"),
        pytest.param(b"42", "line is a number, not a JSON object", id="number"),
        pytest.param(b'"a.png"', "line is a string, not a JSON object", id="string"),
        pytest.param(b"null", "line is null, not a JSON object", id="null"),
        pytest.param(b'{"path": "a.png"', "line is not valid JSON", id="truncated"),
        pytest.param(b'{"path": "caf\xe9"}', "line is not valid UTF-8", id="bad-utf8"),
        pytest.param(b'{"path": 12}', 'field "path" must be a string, not a number', id="path-num"),
        pytest.param(b'{"key": 12}', 'field "key" must be a string, not a number', id="key-num"),
        pytest.param(
            b'{"path": "a", "media_type": ["x"]}',
            'field "media_type" must be a string, not an array',
            id="media-type-array",
        ),
        pytest.param(
            b'{"media_category": true}',
            'field "media_category" must be a string, not a boolean',
            id="category-bool",
        ),
        pytest.param(
            b'{"account": {"a": 1}}',
            'field "account" must be a string, not an object',
            id="account-object",
        ),
    ],
)
def test_jsonl_bad_line_is_a_problem_record(tmp_path: Path, line: bytes, problem: str) -> None:
    data = b'{"path": "first.png"}\n' + line + b'\n{"path": "last.png"}\n'
    records = read_bytes(tmp_path, data, "m.jsonl")
    assert [record.row for record in records] == [1, 2, 3]
    assert records[1].problem is not None
    assert records[1].problem.startswith(problem)
    assert records[2] == ManifestRecord(row=3, path="last.png")


def test_jsonl_problem_keeps_other_fields_best_effort(tmp_path: Path) -> None:
    records = read_bytes(tmp_path, b'{"path": "a.png", "key": 5, "x": 1}\n', "m.jsonl")
    assert records[0].path == "a.png"
    assert records[0].key is None
    assert dict(records[0].meta) == {"x": 1}


def test_jsonl_bom_crlf_and_blank_lines(tmp_path: Path) -> None:
    data = BOM + b'{"path": "a.png"}\r\n\r\n   \n{"path": "b.png"}'
    assert read_bytes(tmp_path, data, "m.ndjson") == [
        ManifestRecord(row=1, path="a.png"),
        ManifestRecord(row=2, path="b.png"),
    ]


# --- paths and directories ------------------------------------------------------------------


def test_paths_skip_blank_and_comments_and_strip(tmp_path: Path) -> None:
    data = BOM + b"# photos\r\n a.png \r\n\r\n  # indented comment\nsub/b c.png\n\xff\xfe.png\n"
    assert read_bytes(tmp_path, data, "m.txt") == [
        ManifestRecord(row=1, path="a.png"),
        ManifestRecord(row=2, path="sub/b c.png"),
        ManifestRecord(row=3, problem="line is not valid UTF-8"),
    ]


def make_tree(root: Path) -> None:
    for name in ["b.png", "a/z.png", "a/b/c.png", "A.png", ".hidden.png", ".git/x.png", "c.txt"]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")


def test_directory_walk_is_sorted_recursive_and_skips_hidden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_tree(tmp_path / "media")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "o.png").write_bytes(b"x")
    os.symlink(tmp_path / "outside", tmp_path / "media" / "link-to-folder")
    monkeypatch.chdir(tmp_path)
    with open_manifest("media") as manifest:
        records = list(manifest)
        assert (manifest.format, manifest.base_dir) == ("dir", tmp_path)
    paths = [os.path.relpath(str(record.path), "media") for record in records]
    assert paths == ["A.png", "a/b/c.png", "a/z.png", "b.png", "c.txt"]
    assert [record.row for record in records] == [1, 2, 3, 4, 5]
    assert all((tmp_path / str(record.path)).is_file() for record in records)


def test_directory_with_unreadable_subfolder_yields_a_problem(
    open_dir: Path, unprivileged: Callable[[], AbstractContextManager[None]]
) -> None:
    make_tree(open_dir)
    (open_dir / "a" / "b").chmod(0)
    try:
        with unprivileged():
            records = read_all(open_dir)
    finally:
        (open_dir / "a" / "b").chmod(0o755)
    problems = [record for record in records if record.problem]
    assert len(problems) == 1
    assert str(problems[0].path).endswith("b")


# --- detection, stdin, errors ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "fmt", "expected"),
    [
        pytest.param("m.csv", b"a.png\n", None, "csv", id="csv-extension"),
        pytest.param("m.JSONL", b"a.png\n", None, "jsonl", id="jsonl-extension"),
        pytest.param("m.ndjson", b"{}\n", None, "jsonl", id="ndjson-extension"),
        pytest.param("m.json", b"{}\n", None, "jsonl", id="json-extension"),
        pytest.param("m.txt", b"path,key\n", None, "paths", id="txt-extension"),
        pytest.param("m.lst", b"a\n", None, "paths", id="lst-extension"),
        pytest.param("m.list", b"a\n", None, "paths", id="list-extension"),
        pytest.param("m", b'\n  {"path": "a"}\n', None, "jsonl", id="sniff-json-object"),
        pytest.param("m", b"Path,Key\na,b\n", None, "csv", id="sniff-csv-path-header"),
        pytest.param("m.dat", b"key,total_bytes\n", None, "csv", id="sniff-csv-size-header"),
        pytest.param("m", b"photos/a.png\n", None, "paths", id="sniff-paths"),
        pytest.param("m", b"", None, "paths", id="sniff-empty"),
        pytest.param("m", b"path\rkey\n", None, "paths", id="sniff-bare-cr-is-no-header"),
        pytest.param("m.txt", b"{}\n", "jsonl", "jsonl", id="format-beats-extension"),
    ],
)
def test_format_detection(
    tmp_path: Path, name: str, data: bytes, fmt: str | None, expected: str
) -> None:
    (tmp_path / name).write_bytes(data)
    with open_manifest(tmp_path / name, fmt=fmt) as manifest:
        assert manifest.format == expected
        assert manifest.base_dir == tmp_path


@pytest.mark.parametrize(
    ("data", "fmt", "expected_format", "expected"),
    [
        pytest.param(
            b"\npath,key\na.png,k\n",
            None,
            "csv",
            [ManifestRecord(row=1, path="a.png", key="k")],
            id="stdin-csv",
        ),
        pytest.param(
            BOM + b'{"path": "a.png"}\n{"path": "b.png"}\n',
            None,
            "jsonl",
            [ManifestRecord(row=1, path="a.png"), ManifestRecord(row=2, path="b.png")],
            id="stdin-jsonl-with-bom",
        ),
        pytest.param(
            b"a.png\nb.png",
            None,
            "paths",
            [ManifestRecord(row=1, path="a.png"), ManifestRecord(row=2, path="b.png")],
            id="stdin-paths-first-line-kept",
        ),
        pytest.param(
            b"path\na.png\n",
            "paths",
            "paths",
            [ManifestRecord(row=1, path="path"), ManifestRecord(row=2, path="a.png")],
            id="stdin-forced-format",
        ),
    ],
)
def test_stdin(
    data: bytes, fmt: str | None, expected_format: str, expected: list[ManifestRecord]
) -> None:
    assert read_stdin(data, fmt) == (expected_format, expected)


def test_stdin_base_dir_is_cwd_and_stdin_stays_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    stream = io.BytesIO(b"a.png\n")
    with open_manifest("-", stdin=stream) as manifest:
        assert manifest.base_dir == tmp_path
    assert not stream.closed


@pytest.mark.parametrize(
    ("make", "source", "fmt", "message"),
    [
        pytest.param(None, "missing.csv", None, "manifest not found", id="missing"),
        pytest.param(None, "m.csv", "xml", "unknown manifest format 'xml'", id="unknown-format"),
        pytest.param("dir", "d", "csv", "is a directory", id="directory-with-csv-format"),
        pytest.param("file", "m.csv", "dir", "is not a directory", id="file-with-dir-format"),
        pytest.param(None, "-", "dir", "cannot be dir", id="stdin-with-dir-format"),
    ],
)
def test_open_errors(
    tmp_path: Path, make: str | None, source: str, fmt: str | None, message: str
) -> None:
    if make == "dir":
        (tmp_path / source).mkdir()
    elif make == "file":
        (tmp_path / source).write_bytes(b"path\n")
    target = source if source == "-" else str(tmp_path / source)
    with pytest.raises(ManifestError, match=message) as caught:
        open_manifest(target, fmt=fmt, stdin=io.BytesIO(b""))
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("kind", [pytest.param("file", id="file"), pytest.param("dir", id="dir")])
def test_permission_denied_is_a_manifest_error(
    open_dir: Path, unprivileged: Callable[[], AbstractContextManager[None]], kind: str
) -> None:
    target = open_dir / "locked"
    if kind == "dir":
        target.mkdir()
    else:
        target.write_bytes(b"a.png\n")
    target.chmod(0)
    with unprivileged(), pytest.raises(ManifestError, match="permission denied"):
        open_manifest(target)


class FailingStream(io.BytesIO):
    """Gives one line, then fails the way a dying disk or a dropped pipe would."""

    def readline(self, size: int | None = -1) -> bytes:
        if self.tell():
            raise OSError(5, "Input/output error")
        return super().readline(size)


def test_read_failure_mid_stream_is_a_manifest_error() -> None:
    with open_manifest("-", fmt="paths", stdin=FailingStream(b"a.png\nb.png\n")) as manifest:
        records = iter(manifest)
        assert next(records).path == "a.png"
        with pytest.raises(ManifestError, match="Input/output error"):
            next(records)


class EndlessStream(io.RawIOBase):
    """An endless manifest: only a streaming reader can get records out of it."""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        line = b"photos/a.png\n" * (len(buffer) // 13)
        buffer[: len(line)] = line
        return len(line)


def test_reading_is_streamed() -> None:
    stream = io.BufferedReader(EndlessStream())
    with open_manifest("-", stdin=stream) as manifest:
        first = list(itertools.islice(manifest, 5))
    assert [record.row for record in first] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    ("name", "data"),
    [
        pytest.param("m.csv", b"path\nshort.png\n{long}\nafter.png\n", id="csv"),
        pytest.param(
            "m.jsonl", b'{"path": "short.png"}\n{long}\n{"path": "after.png"}\n', id="jsonl"
        ),
        pytest.param("m.txt", b"short.png\n{long}\nafter.png\n", id="paths"),
    ],
)
def test_overlong_line_is_a_problem_not_a_memory_hog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, data: bytes
) -> None:
    monkeypatch.setattr(manifest_module, "MAX_LINE_BYTES", 64)
    records = read_bytes(tmp_path, data.replace(b"{long}", b"x" * 500), name)
    assert [record.row for record in records] == [1, 2, 3]
    assert records[1].problem is not None
    assert "longer than" in records[1].problem
    assert records[2].path == "after.png"


def test_close_is_idempotent_and_closes_the_file(tmp_path: Path) -> None:
    (tmp_path / "m.txt").write_bytes(b"a.png\n")
    manifest = open_manifest(tmp_path / "m.txt")
    assert "open" in repr(manifest)
    manifest.close()
    manifest.close()
    assert "closed" in repr(manifest)
    assert list(manifest) == []


# --- count_records --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        pytest.param("m.csv", b"path\na\nb\n", 2, id="csv-minus-header"),
        pytest.param("m", b"path,key\na,1\nb,2", 2, id="sniffed-csv-no-final-newline"),
        pytest.param("m.jsonl", b"{}\n{}\n{}\n", 3, id="jsonl"),
        pytest.param("m.txt", b"a\nb", 2, id="paths-no-final-newline"),
        pytest.param("m.txt", b"", 0, id="empty"),
        pytest.param("m.csv", b"path\n", 0, id="header-only"),
    ],
)
def test_count_records(tmp_path: Path, name: str, data: bytes, expected: int) -> None:
    (tmp_path / name).write_bytes(data)
    assert count_records(tmp_path / name) == expected


def test_count_records_of_stdin_directory_and_missing(tmp_path: Path) -> None:
    make_tree(tmp_path / "media")
    assert count_records("-") is None
    assert count_records(tmp_path / "media") == 5
    assert count_records(tmp_path / "missing.csv") is None


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_pipe_is_read_and_resolves_against_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipe = tmp_path / "pipes" / "manifest"
    pipe.parent.mkdir()
    os.mkfifo(pipe)
    monkeypatch.chdir(tmp_path)
    assert count_records(pipe) is None  # counting would eat the records

    writer = threading.Thread(target=pipe.write_bytes, args=(b"a.png\nb.png\n",))
    writer.start()
    with open_manifest(pipe) as manifest:
        records = list(manifest)
        assert manifest.base_dir == tmp_path
    writer.join(timeout=5)
    assert [record.path for record in records] == ["a.png", "b.png"]


def test_permission_denied_message_even_as_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> io.BytesIO:
        raise PermissionError(13, "Permission denied")

    (tmp_path / "m.csv").write_bytes(b"path\n")
    monkeypatch.setattr(manifest_module, "open", refuse, raising=False)
    with pytest.raises(ManifestError, match=r"permission denied\): .*m\.csv$"):
        open_manifest(tmp_path / "m.csv")


def test_csv_bare_carriage_return_is_a_problem_in_plain_words(tmp_path: Path) -> None:
    records = read_bytes(tmp_path, b"path\na\rb.png\nc.png\n", "m.csv")
    assert [record.row for record in records] == [1, 2]
    assert records[0].problem is not None
    assert "carriage return" in records[0].problem
    assert records[1] == ManifestRecord(row=2, path="c.png")


def test_every_non_string_field_of_a_jsonl_line_is_dropped(tmp_path: Path) -> None:
    (tmp_path / "m.jsonl").write_bytes(b'{"path": [], "key": [null], "account": 7}\n')
    (record,) = read_all(tmp_path / "m.jsonl")
    assert (record.path, record.key, record.account) == (None, None, None)
    assert record.problem == 'field "path" must be a string, not an array'
