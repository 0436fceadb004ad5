"""``batcher run`` at two git revisions, side by side: did a change make the pipeline cheaper?

    python -m benchmarks.versions bc10785 HEAD              # 6 alternating runs each, 100k rows
    python -m benchmarks.versions HEAD~1 HEAD --rows 20000 --repeats 10

Each revision is checked out in a git worktree under ``--workdir`` (removed at the end), and
runs from there. :mod:`benchmarks.server` runs pinned to core 1, every client is pinned to core 0,
and the runs alternate A B B A A B … so slow phases of the machine fall on both revisions alike.
It prints the CPU (user+system) of every run, then each revision's median and least and the
ratios B / A. Both revisions run the same metadata-only CSV manifest with the same options.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from benchmarks.inputs import write_metadata_manifest
from benchmarks.processes import Measure, ServerProcess, run_child

REPO = Path(__file__).resolve().parent.parent


@contextmanager
def worktree(revision: str, where: Path) -> Iterator[Path]:
    """``revision`` checked out at ``where`` for the duration (a detached git worktree)."""
    shutil.rmtree(where, ignore_errors=True)
    git = ["git", "-C", str(REPO), "worktree"]
    added = subprocess.run(
        [*git, "add", "--detach", "--force", str(where), revision], capture_output=True, check=False
    )
    if added.returncode != 0:
        raise SystemExit(f"cannot check out {revision!r}: {added.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run([*git, "remove", "--force", str(where)], check=False, capture_output=True)


def run_once(tree: Path, manifest: Path, url: str, args: argparse.Namespace) -> Measure:
    """One ``batcher run`` of ``manifest`` with the code in ``tree``; a fresh results file."""
    results = args.workdir / f"results-{tree.name}.jsonl"
    results.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "batcher", "run", str(manifest), "-o", str(results)]
    argv += ["--base-url", url, "--no-progress", "--concurrency", str(args.concurrency)]
    env = {"X_ACCESS_TOKEN": "bench-token", "PYTHONPATH": str(tree)}
    measured = run_child(argv, cwd=tree, env=env, cpu=0, timeout_s=args.child_timeout_s)
    lines = results.read_bytes().count(b"\n") if results.exists() else 0
    results.unlink(missing_ok=True)
    return measured.with_rows(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Revisions, counts and limits."""
    parser = argparse.ArgumentParser(description="batcher run at two revisions, side by side")
    parser.add_argument("a", help="the baseline revision (e.g. a commit or HEAD~1)")
    parser.add_argument("b", help="the revision compared with it")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--child-timeout-s", type=float, default=300.0)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/batcher-versions"))
    args = parser.parse_args(argv)
    if args.a == args.b:
        parser.error("give two different revisions (the same one twice measures only noise)")
    args.workdir.mkdir(parents=True, exist_ok=True)
    return args


def main(argv: Sequence[str] | None = None) -> None:
    """Alternate the two revisions and print the CPU figures."""
    args = parse_args(argv)
    manifest = write_metadata_manifest(args.workdir, args.rows)
    two_cores = len(os.sched_getaffinity(0)) >= 2
    runs: dict[str, list[float]] = {args.a: [], args.b: []}
    with (
        worktree(args.a, args.workdir / "tree-a") as tree_a,
        worktree(args.b, args.workdir / "tree-b") as tree_b,
        ServerProcess(cwd=REPO, cpu=1 if two_cores else None) as server,
    ):
        trees = {args.a: tree_a, args.b: tree_b}
        for repeat in range(args.repeats):
            order = [args.a, args.b] if repeat % 2 == 0 else [args.b, args.a]
            for revision in order:
                measured = run_once(trees[revision], manifest, server.url, args)
                if not measured.ok or measured.rows < args.rows:
                    raise SystemExit(f"{revision}: incomplete run: {measured}")
                runs[revision].append(measured.cpu_s)
                print(f"  {revision}: {measured}", flush=True)
    median_a, median_b = (statistics.median(runs[r]) for r in (args.a, args.b))
    least_a, least_b = min(runs[args.a]), min(runs[args.b])
    for revision, median, least in ((args.a, median_a, least_a), (args.b, median_b, least_b)):
        per_row = median / args.rows * 1e6
        print(f"{revision:>12}: median {median:.2f} s ({per_row:.1f} µs/row), least {least:.2f} s")
    print(f"{args.b} / {args.a}: median {median_b / median_a:.3f}, least {least_b / least_a:.3f}")
    faster = sum(b < a for a, b in zip(runs[args.a], runs[args.b], strict=True))
    print(f"repeats where {args.b} used less CPU: {faster} of {args.repeats}")


if __name__ == "__main__":
    main()
