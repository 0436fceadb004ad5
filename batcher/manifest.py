"""Streamed reading of a manifest: CSV, JSONL, a list of paths, a directory, or stdin.

    open_manifest(source) ──▶ Manifest (context manager) ──iter──▶ ManifestRecord, ManifestRecord, …

A bad record is data (``ManifestRecord.problem``), never an exception: only a manifest that cannot
be opened or read at all raises ``ManifestError``. Files are read as bytes, one bounded line at a
time, and each line is decoded on its own, so one line of broken UTF-8 spoils that record alone and
memory stays flat however long the manifest is.
"""

from __future__ import annotations

import csv
import os
import stat
import sys
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import chain
from operator import attrgetter, itemgetter
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any, BinaryIO, Final, Generic, TypeVar, cast

import orjson

from batcher.errors import ManifestError
from batcher.models import EMPTY_META, ManifestRecord

__all__ = [
    "FORMATS",
    "MAX_LINE_BYTES",
    "Manifest",
    "count_records",
    "open_manifest",
    "open_manifest_keys",
    "record_key",
]

FORMATS: Final = ("csv", "jsonl", "paths", "dir")
# A longer line becomes a problem record instead of being held in memory whole.
MAX_LINE_BYTES: Final = 1 << 20
STDIN_SOURCE: Final = "-"

_BOM: Final = b"\xef\xbb\xbf"
_COUNT_CHUNK_BYTES: Final = 1 << 20
_EXTENSION_FORMATS: Final[Mapping[str, str]] = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".txt": "paths",
    ".lst": "paths",
    ".list": "paths",
}
_FIELDS: Final = (
    "path",
    "key",
    "media_type",
    "media_category",
    "total_bytes",
    "additional_owners",
    "shared",
    "account",
)
_FIELD_SET: Final = frozenset(_FIELDS)
_STRING_FIELDS: Final = ("path", "key", "media_type", "media_category", "account")
_BAD_UTF8: Final = "line is not valid UTF-8"
_TOO_LONG: Final = f"line is longer than {MAX_LINE_BYTES} bytes"

Lines = Iterator[bytes | None]
"""Raw lines with their terminators; ``None`` stands for a line too long to keep."""

T = TypeVar("T")


class Manifest(Generic[T]):
    """An open manifest: iterate it once for its records, then close it (or use ``with``).

    A ``Manifest[ManifestRecord]`` from :func:`open_manifest`; the cheap first pass of
    :func:`open_manifest_keys` is a ``Manifest[str | None]`` of each record's key.
    """

    __slots__ = ("_close_source", "_closed", "_records", "base_dir", "format", "name")

    base_dir: Path
    format: str
    name: str

    def __init__(
        self,
        *,
        records: Generator[T, None, None],
        base_dir: Path,
        format: str,
        name: str,
        close_source: Callable[[], None] | None = None,
    ) -> None:
        self._records = records
        self._close_source = close_source
        self._closed = False
        self.base_dir = base_dir
        self.format = format
        self.name = name

    def __iter__(self) -> Iterator[T]:
        return self._records

    def close(self) -> None:
        """Stop reading and release the file (never closes stdin); safe to call twice."""
        self._closed = True
        self._records.close()
        if self._close_source is not None:
            self._close_source()
            self._close_source = None

    def __enter__(self) -> Manifest[T]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<Manifest {self.name!r} format={self.format} base_dir={str(self.base_dir)!r} {state}>"
        )


def open_manifest(
    source: str | os.PathLike[str],
    *,
    fmt: str | None = None,
    stdin: BinaryIO | None = None,
) -> Manifest[ManifestRecord]:
    """Open a manifest for streamed reading; ``"-"`` reads ``stdin`` (default: the process's).

    ``fmt`` (one of ``FORMATS``) wins; otherwise the file extension decides, then the first
    non-blank line (``{`` → jsonl, a header with a ``path`` or ``total_bytes`` column → csv, else
    paths). Raises ``ManifestError`` with a one-line message when the manifest cannot be opened.
    """
    return _open(source, fmt=fmt, stdin=stdin, readers=_RECORDS)


def open_manifest_keys(
    source: str | os.PathLike[str], *, fmt: str | None = None
) -> Manifest[str | None]:
    """Open a manifest for a first pass over its keys only: :func:`record_key` of each record.

    The same records in the same order as :func:`open_manifest` (a problem record counts, its
    key may be None), without building them where the format allows: for a CSV, the key and
    path cells are picked from the parsed row, about half the cost of whole records.
    """
    return _open(source, fmt=fmt, stdin=None, readers=_KEYS)


def record_key(record: ManifestRecord) -> str | None:
    """A row's key: its ``key`` column, else its path (None when it has neither)."""
    return record.key or record.path or None


def _open(
    source: str | os.PathLike[str],
    *,
    fmt: str | None,
    stdin: BinaryIO | None,
    readers: _Readers[T],
) -> Manifest[T]:
    if fmt is not None and fmt not in FORMATS:
        raise ManifestError(f"unknown manifest format {fmt!r}; use one of: {', '.join(FORMATS)}")
    if os.fspath(source) == STDIN_SOURCE:
        source_stream = stdin if stdin is not None else sys.stdin.buffer
        return _open_stream(
            source_stream, fmt=fmt, name="stdin", base_dir=Path.cwd(), readers=readers
        )
    path = os.fspath(source)
    if os.path.isdir(path):
        return _open_directory(path, fmt=fmt, readers=readers)
    if fmt == "dir":
        raise ManifestError(f"manifest {path} is not a directory, but the format is dir")
    try:
        stream = open(path, "rb")  # noqa: SIM115 - the Manifest owns and closes it
    except OSError as exc:
        raise ManifestError(_open_failure(path, exc)) from exc
    fmt = fmt or _EXTENSION_FORMATS.get(os.path.splitext(path)[1].lower())
    try:
        base_dir = _base_dir_of(path, stream)
        return _open_stream(
            stream, fmt=fmt, name=path, base_dir=base_dir, close=stream.close, readers=readers
        )
    except BaseException:
        stream.close()
        raise


def _base_dir_of(path: str, stream: BinaryIO) -> Path:
    """The manifest's folder; the working directory for a pipe such as ``<(cmd)``."""
    try:
        is_regular = stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    except (OSError, ValueError):
        is_regular = True
    return Path(os.path.abspath(path)).parent if is_regular else Path.cwd()


def count_records(source: str | os.PathLike[str], *, fmt: str | None = None) -> int | None:
    """Estimate the number of records, for a progress display only; ``None`` when unknown.

    Counts newlines in binary chunks (plus a last unterminated line), minus one for a CSV header.
    Blank lines, comments and quoted newlines inside CSV cells make it a slight overestimate; a
    directory is walked and counted exactly. Stdin or an unreadable source gives ``None``.
    """
    path = os.fspath(source)
    if path == STDIN_SOURCE:
        return None
    try:
        if os.path.isdir(path):
            return sum(1 for _ in _files_under(path, _sorted_entries(path)))
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None  # counting a pipe would consume the records it carries
        with open(path, "rb") as stream:
            lines, first_line = _count_lines(stream)
    except OSError:
        return None
    fmt = fmt or _EXTENSION_FORMATS.get(os.path.splitext(path)[1].lower())
    if fmt is None and first_line is not None:
        fmt = _format_of_line(first_line)
    return max(lines - 1, 0) if fmt == "csv" else lines


def _count_lines(stream: BinaryIO) -> tuple[int, bytes | None]:
    """Newline count (an unterminated last line counts) and the first line's first chunk."""
    lines = 0
    first_line: bytes | None = None
    last = b"\n"
    while chunk := stream.read(_COUNT_CHUNK_BYTES):
        if first_line is None:
            first_line = chunk.removeprefix(_BOM).lstrip().split(b"\n", 1)[0]
        lines += chunk.count(b"\n")
        last = chunk[-1:]
    return lines + (last != b"\n"), first_line


def _open_failure(path: str, exc: OSError) -> str:
    """One line saying why the manifest file did not open."""
    if isinstance(exc, FileNotFoundError):
        return f"manifest not found: {path}"
    if isinstance(exc, PermissionError):
        return f"manifest is not readable (permission denied): {path}"
    return f"cannot open manifest {path}: {exc.strerror or exc}"


def _open_stream(
    stream: BinaryIO,
    *,
    fmt: str | None,
    name: str,
    base_dir: Path,
    readers: _Readers[T],
    close: Callable[[], None] | None = None,
) -> Manifest[T]:
    """A Manifest over a byte stream, sniffing the format from its first line when needed."""
    if fmt == "dir":
        raise ManifestError(
            f"manifest {name} is a stream, not a directory: the format cannot be dir"
        )
    lines: Lines = _bounded_lines(stream)
    try:
        if fmt is None:
            fmt, first = _sniff_format(lines)
            lines = chain(first, lines)
    except OSError as exc:
        raise ManifestError(f"cannot read manifest {name}: {exc.strerror or exc}") from exc
    records = readers.by_format[fmt](lines)
    return Manifest(
        records=_reading_errors_raised(records, name),
        base_dir=base_dir,
        format=fmt,
        name=name,
        close_source=close,
    )


def _open_directory(path: str, *, fmt: str | None, readers: _Readers[T]) -> Manifest[T]:
    """A Manifest that walks a directory (listed now, so an unreadable one fails here)."""
    if fmt not in (None, "dir"):
        raise ManifestError(f"manifest {path} is a directory; drop the format or use dir")
    try:
        entries = _sorted_entries(path)
    except OSError as exc:
        raise ManifestError(_open_failure(path, exc)) from exc
    records = _directory_records(_files_under(path, entries))
    return Manifest(
        records=_reading_errors_raised(readers.of_records(records), path),
        base_dir=Path.cwd(),
        format="dir",
        name=path,
    )


def _reading_errors_raised(records: Iterator[T], name: str) -> Generator[T, None, None]:
    """Pass records through, turning an I/O failure mid-read into one ManifestError."""
    try:
        yield from records
    except OSError as exc:
        raise ManifestError(f"cannot read manifest {name}: {exc.strerror or exc}") from exc


def _bounded_lines(stream: BinaryIO) -> Lines:
    """Each line of ``stream`` (BOM dropped); ``None`` for one longer than MAX_LINE_BYTES."""
    readline = stream.readline
    limit = MAX_LINE_BYTES
    first = True
    while line := readline(limit):
        if len(line) == limit and line[-1] != 0x0A:
            while (rest := readline(limit)) and rest[-1] != 0x0A:
                pass
            yield None
        elif first:
            yield line.removeprefix(_BOM)
        else:
            yield line
        first = False


def _sniff_format(lines: Lines) -> tuple[str, list[bytes | None]]:
    """The format the first non-blank line suggests, and the lines consumed to see it.

    Blank lines before it are dropped: every format skips them anyway.
    """
    for line in lines:
        if line is None:
            return "paths", [line]
        if line and not line.isspace():
            return _format_of_line(line), [line]
    return "paths", []


def _format_of_line(line: bytes) -> str:
    """jsonl for ``{``, csv for a header naming ``path`` or ``total_bytes``, else paths."""
    if line.lstrip().startswith(b"{"):
        return "jsonl"
    try:
        cells = next(csv.reader([line.decode(errors="replace")]), [])
    except csv.Error:  # e.g. a bare carriage return: not a header we can trust
        return "paths"
    names = {cell.strip().lower() for cell in cells}
    return "csv" if "path" in names or "total_bytes" in names else "paths"


def _jsonl_records(lines: Lines) -> Iterator[ManifestRecord]:
    """One record per non-blank line, each parsed as a JSON object."""
    row = 0
    for line in lines:
        if line is None:
            row += 1
            yield ManifestRecord(row=row, problem=_TOO_LONG)
        elif line and not line.isspace():
            row += 1
            yield _jsonl_record(line, row)


def _jsonl_record(line: bytes, row: int) -> ManifestRecord:
    """The record of one JSONL line, or a problem record saying what is wrong with it."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return ManifestRecord(row=row, problem=_json_problem(line, exc))
    if not isinstance(value, dict):
        return ManifestRecord(row=row, problem=f"line is {_json_kind(value)}, not a JSON object")
    wrong = [name for name in _STRING_FIELDS if not isinstance(value.get(name), str | None)]
    if wrong:
        # Every wrong field is dropped (the record's fields are strings); the first is named.
        problem = f'field "{wrong[0]}" must be a string, not {_json_kind(value[wrong[0]])}'
        return _mapping_record({**value, **dict.fromkeys(wrong)}, row, problem)
    return _mapping_record(value, row)


def _mapping_record(value: dict[str, Any], row: int, problem: str | None = None) -> ManifestRecord:
    """A record from a JSON object whose string fields are already checked."""
    meta = {name: item for name, item in value.items() if name not in _FIELD_SET}
    get = value.get
    return ManifestRecord(
        row=row,
        path=get("path"),
        key=get("key"),
        media_type=get("media_type"),
        media_category=get("media_category"),
        total_bytes=get("total_bytes"),
        additional_owners=get("additional_owners"),
        shared=get("shared"),
        account=get("account"),
        meta=MappingProxyType(meta) if meta else EMPTY_META,
        problem=problem,
    )


def _json_problem(line: bytes, exc: orjson.JSONDecodeError) -> str:
    """Why a line did not parse: bad UTF-8 is named as such, else orjson's own message."""
    try:
        line.decode()
    except UnicodeDecodeError:
        return _BAD_UTF8
    return f"line is not valid JSON: {exc}"


def _json_kind(value: object) -> str:
    """A JSON value's kind, with its article, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _path_records(lines: Lines) -> Iterator[ManifestRecord]:
    """One record per line naming a file; blank lines and ``#`` comments are skipped.

    Surrounding whitespace is dropped: it comes from copy and paste far more often than from
    real file names.
    """
    row = 0
    for line in lines:
        if line is None:
            row += 1
            yield ManifestRecord(row=row, problem=_TOO_LONG)
            continue
        text = line.strip()
        if not text or text.startswith(b"#"):
            continue
        row += 1
        try:
            yield ManifestRecord(row=row, path=text.decode())
        except UnicodeDecodeError:
            yield ManifestRecord(row=row, problem=_BAD_UTF8)


def _csv_records(lines: Lines) -> Iterator[ManifestRecord]:
    """One record per CSV row after the header (the first non-blank row)."""
    for header, cells, row, problem in _csv_rows(lines):
        if header is None:
            yield ManifestRecord(row=row, problem=problem)
        else:
            yield header.record(cells, row, problem)


def _csv_keys(lines: Lines) -> Iterator[str | None]:
    """:func:`record_key` of each record :func:`_csv_records` would make, without making it."""
    for header, cells, _row, _problem in _csv_rows(lines):
        yield None if header is None else header.key(cells)


_CsvRow = tuple["_CsvHeader | None", list[str], int, str | None]


def _csv_rows(lines: Lines) -> Iterator[_CsvRow]:
    """(header, cells, row number, problem) per CSV row after the header.

    A row the csv module cannot parse comes with no header and no cells, just its problem.
    """
    issues: list[str] = []
    reader = csv.reader(_decoded_lines(lines, issues))
    header: _CsvHeader | None = None
    row = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            issues.clear()
            row += 1
            yield None, [], row, _csv_problem(exc)
            continue
        problem = issues[0] if issues else None
        issues.clear()
        first = cells[0] if cells else ""
        if not (first and not first.isspace()) and _is_blank_row(cells):  # mostly decided here
            continue
        if header is None:
            header = _CsvHeader(cells)
            continue
        row += 1
        yield header, cells, row, problem


def _csv_problem(exc: csv.Error) -> str:
    """The csv module's complaint, in words that fit a manifest rather than Python's open()."""
    if "new-line character" in str(exc):
        return "row is not valid CSV: a carriage return inside an unquoted cell; quote the cell"
    return f"row is not valid CSV: {exc}"


def _decoded_lines(lines: Lines, issues: list[str]) -> Iterator[str]:
    """Decode each line alone; a bad one is noted in ``issues`` and passed on repaired.

    The csv reader pulls exactly the lines of one row before yielding it, so the issues noted
    by then belong to that row.
    """
    for line in lines:
        if line is None:
            issues.append(_TOO_LONG)
            yield "\ufffd\n"  # keeps a record in place of the dropped line
            continue
        try:
            text = line.decode()
        except UnicodeDecodeError:
            issues.append(_BAD_UTF8)
            text = line.decode(errors="replace")
        yield text


def _is_blank_row(cells: list[str]) -> bool:
    """No cell holds anything but whitespace (``,,,`` lines from spreadsheets too)."""
    if cells and cells[0] and not cells[0].isspace():
        return False
    return all(not cell or cell.isspace() for cell in cells)


class _CsvHeader:
    """Where each known column sits, and the other columns that go to ``meta``."""

    __slots__ = ("_key_position", "_meta", "_path_position", "_pick", "_width")

    def __init__(self, cells: list[str]) -> None:
        known: dict[str, int] = {}
        meta: list[tuple[int, str]] = []
        for position, cell in enumerate(cells):
            name = cell.strip().lower()
            if name in _FIELD_SET and name not in known:
                known[name] = position
            else:
                meta.append((position, cell))
        self._width = len(cells)
        # A missing column points one past the row's cells, where a None is appended.
        self._pick = itemgetter(*(known.get(name, self._width) for name in _FIELDS))
        self._key_position = known.get("key", self._width)
        self._path_position = known.get("path", self._width)
        self._meta = tuple(meta)

    def key(self, cells: list[str]) -> str | None:
        """:func:`record_key` of the record :meth:`record` would make of ``cells``."""
        width = min(len(cells), self._width)  # cells past the header's are dropped
        key_at, path_at = self._key_position, self._path_position
        key = cells[key_at] if key_at < width else None
        return key or (cells[path_at] if path_at < width else None) or None

    def record(self, cells: list[str], row: int, problem: str | None) -> ManifestRecord:
        """The record of one data row; more cells than the header make it a problem."""
        width = len(cells)
        if width > self._width:
            problem = problem or f"row has {width} cells but the header has {self._width}"
            del cells[self._width :]
        values = cast(list[str | None], cells)  # padded with None for missing columns
        values.extend([None] * (self._width + 1 - len(values)))
        # Built for every row: the known columns picked in C, empty cells made None one by
        # one (no comprehension over the row), the fields given by position.
        path, key, media_type, category, size, owners, shared, account = self._pick(values)
        meta = EMPTY_META
        if self._meta:
            meta = MappingProxyType(
                {name: values[position] or None for position, name in self._meta}
            )
        # tuple.__new__, every field in order: NamedTuple's own __new__ is a Python call,
        # three times slower for these eleven fields.
        return tuple.__new__(
            ManifestRecord,
            (
                row,
                path or None,
                key or None,
                media_type or None,
                category or None,
                size or None,
                owners or None,
                shared or None,
                account or None,
                meta,
                problem,
            ),
        )


def _sorted_entries(folder: str) -> list[os.DirEntry[str]]:
    """A folder's entries sorted by name, for a walk that is the same on every run."""
    with os.scandir(folder) as entries:
        return sorted(entries, key=attrgetter("name"))


def _files_under(
    root: str, root_entries: list[os.DirEntry[str]]
) -> Iterator[tuple[str, str | None]]:
    """(path, problem) for each regular file under ``root``, depth first, in name order.

    Hidden names are skipped; links to folders are not followed (no loops). An explicit stack
    instead of recursion, so a deep tree cannot hit the recursion limit.
    """
    stack: list[Iterator[os.DirEntry[str]]] = [iter(root_entries)]
    while stack:
        entry = next(stack[-1], None)
        if entry is None:
            stack.pop()
        elif entry.name.startswith("."):
            continue
        elif _is_real_directory(entry):
            try:
                stack.append(iter(_sorted_entries(entry.path)))
            except OSError as exc:
                yield entry.path, f"cannot list folder: {exc.strerror or exc}"
        elif _is_file(entry):
            yield entry.path, None


def _is_real_directory(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def _is_file(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_file()
    except OSError:
        return False


def _directory_records(files: Iterable[tuple[str, str | None]]) -> Iterator[ManifestRecord]:
    """One record per file found; a name that is not UTF-8 can't be written to results."""
    for row, (path, problem) in enumerate(files, start=1):
        if problem is None and not _is_utf8(path):
            problem = "file name is not valid UTF-8"
        if problem is None:
            yield ManifestRecord(row=row, path=path)
        else:
            yield ManifestRecord(
                row=row, path=path.encode(errors="replace").decode(), problem=problem
            )


def _is_utf8(name: str) -> bool:
    """False for a name with the surrogate escapes os uses for undecodable bytes."""
    if name.isascii():
        return True
    try:
        name.encode()
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class _Readers(Generic[T]):
    """What a manifest yields: a reader per line format, and what becomes of whole records."""

    by_format: Mapping[str, Callable[[Lines], Iterator[T]]]
    of_records: Callable[[Iterator[ManifestRecord]], Iterator[T]]


def _keys_of(records: Iterator[ManifestRecord]) -> Iterator[str | None]:
    return map(record_key, records)


_RECORDS: Final[_Readers[ManifestRecord]] = _Readers(
    by_format={"csv": _csv_records, "jsonl": _jsonl_records, "paths": _path_records},
    of_records=iter,
)
_KEYS: Final[_Readers[str | None]] = _Readers(
    by_format={
        "csv": _csv_keys,  # the one format where skipping the record saves much
        "jsonl": lambda lines: _keys_of(_jsonl_records(lines)),
        "paths": lambda lines: _keys_of(_path_records(lines)),
    },
    of_records=_keys_of,
)
