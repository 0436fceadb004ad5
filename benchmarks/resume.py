"""``python -m benchmarks.resume RESULTS``: time loading a results file as the resume journal."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import orjson


def main() -> None:
    """Print ``{"us_per_line", "lines", "settled"}`` for ``batcher.journal.load_journal``."""
    from batcher.journal import ResumePolicy, load_journal

    path = Path(sys.argv[1])
    started = time.perf_counter()
    journal = load_journal(path, policy=ResumePolicy(), now=time.time())
    elapsed_s = time.perf_counter() - started
    report = {
        "us_per_line": elapsed_s / max(journal.lines, 1) * 1e6,
        "lines": journal.lines,
        "settled": len(journal.settled),
    }
    sys.stdout.write(orjson.dumps(report).decode() + "\n")


if __name__ == "__main__":
    main()
