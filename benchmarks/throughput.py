"""Client CPU per row: ``batcher run`` end to end against bare HTTP client loops.

    python -m benchmarks.throughput                 # the full comparison (a few minutes)
    python -m benchmarks.throughput --quick         # smaller counts, one repeat
    python -m benchmarks.throughput --only compare --cases acg   # some cases only

One command: it starts :mod:`benchmarks.server` in its own process (pinned to core 1 where the
machine has two; every client is pinned to core 0), generates its inputs under ``--workdir``,
then runs, alternating, each in its own process:

    (a) batcher run, a metadata-only CSV manifest      (b) batcher run on a folder of real files
    (c) bare aiohttp, shared session, orjson, uvloop   (d) aiohttp, a session per request
    (e) httpx.AsyncClient                              (f) requests in a thread pool
    (g) batcher's InitializeClient alone (the fast path without the pipeline), uvloop
    (h) the floor: a bare asyncio.Protocol writing request bytes, uvloop (not an HTTP client)

``batcher run`` uses uvloop when it is installed (``pip install -e '.[bench]'`` installs it).

How it measures: each client is a child process; ``os.wait4`` gives its rusage, so CPU is the
child's user+system time (whole process, interpreter start-up included) and RSS its peak
``ru_maxrss``. Start-up is measured separately (the same command for 1 row) and subtracted:
``net µs/row = (cpu − start-up cpu) / rows``; ratios are of net figures, to (c): of the
medians over the repeats, and of each case's least ("best", see :func:`table`). Rows/s is
rows over wall time. It also runs (a) at 10,000 and 1,000,000 rows (peak RSS of each), (a) at
concurrency 1,024 against 64, and times loading a 1,000,000-line results file for resume.
Every child has a deadline (``--child-timeout-s``) and is killed past it. Loopback only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.inputs import write_files_folder, write_metadata_manifest, write_results_file
from benchmarks.processes import Measure, ServerProcess, run_child

REPO = Path(__file__).resolve().parent.parent
TOKEN_ENV = {"X_ACCESS_TOKEN": "bench-token"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Case:
    """One client configuration under test."""

    label: str
    rows: int
    concurrency: int
    kind: str  # "run-meta", "run-files" or a benchmarks.clients KIND


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    """The medians of a case's repeats."""

    case: Case
    net_us_per_row: float
    best_us_per_row: float
    gross_us_per_row: float
    rows_per_s: float
    peak_rss_mib: float


def command(case: Case, rows: int, url: str, workdir: Path) -> tuple[list[str], Path | None]:
    """The child's argv (and the results file it writes, for ``batcher run``)."""
    if case.kind.startswith("run-"):
        manifest = (
            write_files_folder(workdir, rows)
            if case.kind == "run-files"
            else write_metadata_manifest(workdir, rows)
        )
        out = workdir / f"results-{case.kind}-{rows}-{case.concurrency}.jsonl"
        argv = [sys.executable, "-m", "batcher", "run", str(manifest), "-o", str(out)]
        argv += ["--base-url", url, "--no-progress", "--concurrency", str(case.concurrency)]
        return argv, out
    argv = [sys.executable, "-m", "benchmarks.clients", case.kind, url, str(rows)]
    return [*argv, str(case.concurrency)], None


def measure(case: Case, rows: int, url: str, workdir: Path, timeout_s: float) -> Measure:
    """Run ``case`` once for ``rows`` rows in a fresh child."""
    argv, out = command(case, rows, url, workdir)
    if out is not None:
        out.unlink(missing_ok=True)  # the results file is the resume journal: start clean
    measured = run_child(argv, cwd=REPO, env=TOKEN_ENV, cpu=0, timeout_s=timeout_s)
    if out is not None:
        measured = measured.with_rows(count_lines(out))
        out.unlink(missing_ok=True)
    return measured


def count_lines(path: Path) -> int:
    """Lines in ``path`` (0 if absent)."""
    if not path.exists():
        return 0
    with path.open("rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))


def compare(
    cases: Sequence[Case], repeats: int, url: str, args: argparse.Namespace
) -> list[Result]:
    """Alternate the cases ``repeats`` times; medians of each."""
    startup = {c.kind: measure(c, 1, url, args.workdir, args.child_timeout_s) for c in cases}
    runs: dict[str, list[Measure]] = {c.label: [] for c in cases}
    for repeat in range(repeats):
        order = list(cases) if repeat % 2 == 0 else list(reversed(cases))
        for case in order:
            measured = measure(case, case.rows, url, args.workdir, args.child_timeout_s)
            log(f"  {case.label}: {measured}")
            runs[case.label].append(measured)
    return [summarize(c, runs[c.label], startup[c.kind]) for c in cases]


def summarize(case: Case, runs: list[Measure], startup: Measure) -> Result:
    """Medians over the repeats; net of the start-up cost."""
    ok = [m for m in runs if m.ok and m.rows >= case.rows * 0.999]
    if not ok:
        raise SystemExit(f"{case.label}: no complete run: {runs}")
    net = [(m.cpu_s - startup.cpu_s) / m.rows * 1e6 for m in ok]
    return Result(
        case=case,
        net_us_per_row=statistics.median(net),
        best_us_per_row=min(net),
        gross_us_per_row=statistics.median(m.cpu_s / m.rows * 1e6 for m in ok),
        rows_per_s=statistics.median(m.rows / m.wall_s for m in ok),
        peak_rss_mib=statistics.median(m.maxrss_kib / 1024 for m in ok),
    )


def table(results: Sequence[Result], reference: str) -> str:
    """The comparison table, ratios to ``reference``'s net CPU per row.

    ``net µs/row`` and ``× (c)`` are medians over the repeats; ``best`` and ``best ×`` use each
    case's least CPU. Interference from other tenants of the machine only ever adds CPU time,
    so the least is the steadier estimate of a client's own cost on a noisy machine.
    """
    reference_result = next(r for r in results if r.case.label == reference)
    base, best_base = reference_result.net_us_per_row, reference_result.best_us_per_row
    lines = [
        f"{'client':<46} {'rows':>9} {'net µs/row':>10} {'best':>7} {'gross':>8} {'× (c)':>6} "
        f"{'best ×':>6} {'rows/s':>9} {'peak RSS':>9}"
    ]
    for r in results:
        lines.append(
            f"{r.case.label:<46} {r.case.rows:>9,} {r.net_us_per_row:>10.1f} "
            f"{r.best_us_per_row:>7.1f} {r.gross_us_per_row:>8.1f} "
            f"{r.net_us_per_row / base:>6.2f} {r.best_us_per_row / best_base:>6.2f} "
            f"{r.rows_per_s:>9,.0f} {r.peak_rss_mib:>7.1f}Mi"
        )
    return "\n".join(lines)


def log(text: str) -> None:
    """Progress on stderr (the tables go to stdout)."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def main_cases(args: argparse.Namespace) -> list[Case]:
    """(a)–(f) at the configured counts."""
    rows, slow, c = args.rows, args.slow_rows, args.concurrency
    return [
        Case(label="(a) batcher run, metadata CSV", rows=rows, concurrency=c, kind="run-meta"),
        Case(label="(b) batcher run, real files (stat+sniff)", rows=rows, concurrency=c,
             kind="run-files"),
        Case(label="(c) aiohttp shared session+orjson+uvloop", rows=rows, concurrency=c,
             kind="aiohttp"),
        Case(label="(d) aiohttp session per request", rows=slow, concurrency=c,
             kind="aiohttp-per-request"),
        Case(label="(e) httpx.AsyncClient", rows=slow, concurrency=c, kind="httpx"),
        Case(label="(f) requests, 32 threads", rows=slow, concurrency=c, kind="requests"),
        Case(label="(g) batcher InitializeClient alone+uvloop", rows=rows, concurrency=c,
             kind="batcher-client"),
        Case(label="(h) floor: bare asyncio.Protocol+uvloop", rows=rows, concurrency=c,
             kind="raw-protocol"),
    ]  # fmt: skip


def scale_and_gc(url: str, args: argparse.Namespace) -> str:
    """(a) at 10k vs 1M rows (peak RSS) and at concurrency 1,024 vs 64 (CPU per row)."""
    small = Case(label="(a) 10,000 rows", rows=10_000, concurrency=64, kind="run-meta")
    big = Case(label="(a) 1,000,000 rows", rows=args.million, concurrency=64, kind="run-meta")
    wide = Case(label="(a) concurrency 1,024", rows=args.rows, concurrency=1024, kind="run-meta")
    narrow = Case(label="(a) concurrency 64", rows=args.rows, concurrency=64, kind="run-meta")
    # Peak RSS barely varies between runs: once each. CPU per row does: medians of repeats.
    results = compare([small, big], 1, url, args) + compare([narrow, wide], args.repeats, url, args)
    by = {r.case.label: r for r in results}
    rss_ratio = by[big.label].peak_rss_mib / by[small.label].peak_rss_mib
    cpu_ratio = by[wide.label].net_us_per_row / by[narrow.label].net_us_per_row
    return "\n".join(
        [
            table(results, narrow.label).replace("× (c)", "× a64"),
            f"peak RSS {big.rows:,} / 10,000 rows: {rss_ratio:.2f} (target ≤ 1.15)",
            f"CPU per row at concurrency 1,024 / at 64: {cpu_ratio:.2f} (target ≤ 1.3)",
        ]
    )


def resume_cost(args: argparse.Namespace) -> str:
    """µs per line to load a results file of ``--million`` lines through batcher.journal."""
    path = write_results_file(args.workdir, args.million)
    argv = [sys.executable, "-m", "benchmarks.resume", str(path)]
    measured = run_child(argv, cwd=REPO, env={}, cpu=0, timeout_s=args.child_timeout_s)
    if not measured.ok:
        return f"resume load: failed: {measured.stderr.strip()[-300:]}"
    return (
        f"resume load: {measured.stdout.strip()}; whole process {measured.cpu_s:.2f} s CPU, "
        f"peak RSS {measured.maxrss_kib / 1024:.0f} MiB"
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Counts, repeats and limits."""
    parser = argparse.ArgumentParser(description="client CPU per row, side by side")
    parser.add_argument("--rows", type=int, default=100_000, help="rows for (a), (b), (c)")
    parser.add_argument("--slow-rows", type=int, default=5_000, help="rows for (d), (e), (f)")
    parser.add_argument("--million", type=int, default=1_000_000, help="the big (a) run")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child-timeout-s", type=float, default=300.0)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/batcher-bench"))
    parser.add_argument("--only", choices=["compare", "scale", "resume"], action="append")
    parser.add_argument(
        "--cases", default="abcdefgh", help="which of (a)–(h) to compare, e.g. 'acg' (default all)"
    )
    parser.add_argument("--quick", action="store_true", help="small counts, one repeat")
    args = parser.parse_args(argv)
    if "c" not in args.cases:
        parser.error("--cases must include c: every ratio is to (c)")
    if args.quick:
        args.rows, args.slow_rows, args.million, args.repeats = 20_000, 2_000, 100_000, 1
    args.workdir.mkdir(parents=True, exist_ok=True)
    return args


def main(argv: Sequence[str] | None = None) -> None:
    """Run the comparison, the scale and GC checks, and the resume timing."""
    args = parse_args(argv)
    parts = args.only or ["compare", "scale", "resume"]
    two_cores = len(os.sched_getaffinity(0)) >= 2
    with ServerProcess(cwd=REPO, cpu=1 if two_cores else None) as server:
        log(f"server on {server.url} (pinned: {two_cores})")
        if "compare" in parts:
            cases = [c for c in main_cases(args) if c.label[1] in args.cases]
            results = compare(cases, args.repeats, server.url, args)
            print(table(results, "(c) aiohttp shared session+orjson+uvloop"), flush=True)
        if "scale" in parts:
            print(scale_and_gc(server.url, args), flush=True)
    if "resume" in parts:
        print(resume_cost(args), flush=True)


if __name__ == "__main__":
    main()
