"""The command-line surface: every subcommand, option and help text, and nothing else.

The values' types live in :mod:`batcher.options`; what the commands do lives in
:mod:`batcher.cli`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TypeAlias

from batcher.api import DEFAULT_TIMEOUT_S
from batcher.contract import DEFAULT_BASE_URL, MEDIA_CATEGORIES
from batcher.journal import DEFAULT_MIN_VALIDITY_S
from batcher.options import duration_s, fraction, fsync_policy, positive_float, positive_int
from batcher.results import FsyncPolicy
from batcher.runner import DEFAULT_CONCURRENCY, DEFAULT_GRACE_S, DEFAULT_MAX_ATTEMPTS

BASE_URL_ENV = "X_API_BASE_URL"

Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def build_parser() -> argparse.ArgumentParser:
    """The whole command-line surface."""
    # No abbreviations: "--token SECRET" must be refused, not taken as "--token-file SECRET"
    # and echoed back in an error message.
    parser = argparse.ArgumentParser(
        prog="batcher", description="Start X API v2 media uploads in bulk.", allow_abbrev=False
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_run_command(commands)
    add_validate_command(commands)
    add_report_command(commands)
    add_demo_command(commands)
    add_simulate_command(commands)
    return parser


def add_run_command(commands: Subcommands) -> None:
    """``batcher run MANIFEST -o RESULTS``."""
    run = commands.add_parser(
        "run",
        allow_abbrev=False,
        help="initialize an upload for every row of a manifest",
        description=(
            "Initialize one media upload per manifest row and write one JSON line per row. "
            "An existing results file is resumed. The access token comes from X_ACCESS_TOKEN "
            "or --token-file, never from a flag value."
        ),
    )
    run.add_argument(
        "manifest", help="CSV, JSONL, a text file of paths, a directory, or - for stdin"
    )
    run.add_argument("-o", "--output", required=True, type=Path, help="results JSONL file")
    add_connection_options(run)
    add_rate_options(run)
    add_resume_options(run)
    add_stop_options(run)
    run.add_argument("--no-progress", action="store_true", help="no live progress display")


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    """Where to send, as whom, how much at once, how long to wait."""
    parser.add_argument(
        "--base-url", help=f"API base URL (default: ${BASE_URL_ENV} or {DEFAULT_BASE_URL})"
    )
    parser.add_argument("--token-file", type=Path, help="read the access token from this file")
    parser.add_argument(
        "--accounts",
        type=Path,
        help="TOML file naming the accounts (the manifest's account column picks one per row)",
    )
    parser.add_argument(
        "--concurrency",
        type=positive_int,
        default=DEFAULT_CONCURRENCY,
        help=f"requests in flight at most (default {DEFAULT_CONCURRENCY})",
    )
    parser.add_argument(
        "--category",
        choices=sorted(MEDIA_CATEGORIES),
        help="media_category for rows that give none (default: inferred from the type)",
    )
    parser.add_argument(
        "--max-attempts",
        type=positive_int,
        default=DEFAULT_MAX_ATTEMPTS,
        help=f"requests per row before a retryable error is final (default {DEFAULT_MAX_ATTEMPTS})",
    )
    parser.add_argument(
        "--timeout",
        type=positive_float,
        default=DEFAULT_TIMEOUT_S,
        help=f"seconds per request (default {DEFAULT_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--format",
        choices=["csv", "jsonl", "paths", "dir"],
        help="manifest format (default: detected)",
    )


def add_rate_options(parser: argparse.ArgumentParser) -> None:
    """Headroom under the API's own limits."""
    parser.add_argument(
        "--max-rate",
        type=positive_float,
        help="requests per second per account at most (leave room for other tools on a token)",
    )
    parser.add_argument(
        "--app-daily-limit",
        type=positive_int,
        help="the app's 24-hour cap when the API does not announce it (it normally does)",
    )


def add_resume_options(parser: argparse.ArgumentParser) -> None:
    """What an earlier run's results mean for this one, and how often lines reach the disk."""
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="start over: move an existing results file aside (to NAME.TIMESTAMP.bak) first",
    )
    parser.add_argument(
        "--retry-failed",
        action="store_true",
        help="also run rows whose latest line is a failure a retry would not fix",
    )
    parser.add_argument(
        "--min-validity",
        type=duration_s,
        default=DEFAULT_MIN_VALIDITY_S,
        help="re-initialize ok rows whose upload session expires sooner than this (default 1h)",
    )
    parser.add_argument(
        "--fsync-every",
        type=fsync_policy,
        default=FsyncPolicy(),
        help="force lines to disk every N rows (1000) or every duration (5s); default 1s",
    )


def add_stop_options(parser: argparse.ArgumentParser) -> None:
    """When a run ends early, softly and resumably."""
    parser.add_argument(
        "--max-duration", type=duration_s, help="stop softly after this long (e.g. 50m for cron)"
    )
    parser.add_argument(
        "--max-failure-rate",
        type=fraction,
        help="stop when more than this share of finished rows failed (after 100 rows)",
    )
    parser.add_argument(
        "--grace",
        type=duration_s,
        default=DEFAULT_GRACE_S,
        help=f"on stop, how long requests in flight may finish (default {DEFAULT_GRACE_S:g}s)",
    )


def add_validate_command(commands: Subcommands) -> None:
    """``batcher validate MANIFEST``."""
    validate = commands.add_parser(
        "validate",
        allow_abbrev=False,
        help="check a manifest offline: every check of a run, no request sent",
    )
    validate.add_argument("manifest", help="CSV, JSONL, a text file of paths, a directory, or -")
    validate.add_argument(
        "--category", choices=sorted(MEDIA_CATEGORIES), help="media_category for rows without one"
    )
    validate.add_argument(
        "--format", choices=["csv", "jsonl", "paths", "dir"], help="manifest format"
    )


def add_report_command(commands: Subcommands) -> None:
    """``batcher report RESULTS``."""
    report = commands.add_parser(
        "report",
        allow_abbrev=False,
        help="summarize a results file; write the rows that still need work as a manifest",
    )
    report.add_argument("results", type=Path, help="results JSONL file")
    report.add_argument(
        "--expiring-within",
        type=duration_s,
        default=24 * 3600.0,
        help="list ok ids whose upload session expires within this (default 24h)",
    )
    report.add_argument(
        "--min-validity",
        type=duration_s,
        default=DEFAULT_MIN_VALIDITY_S,
        help="ok rows expiring sooner than this still need work (default 1h)",
    )
    report.add_argument(
        "--failed-manifest",
        type=Path,
        help="write the rows that still need work here (.csv, else JSONL), for batcher run",
    )


def add_demo_command(commands: Subcommands) -> None:
    """``batcher demo``."""
    demo = commands.add_parser(
        "demo",
        allow_abbrev=False,
        help="run the whole job on generated media against the built-in simulator",
    )
    demo.add_argument(
        "--dir", type=Path, default=Path("batcher-demo"), help="where to put the demo files"
    )
    demo.add_argument("--rows", type=positive_int, default=120, help="media files to generate")
    demo.add_argument("--no-progress", action="store_true", help="no live progress display")


def add_simulate_command(commands: Subcommands) -> None:
    """``batcher simulate``."""
    simulate = commands.add_parser(
        "simulate",
        allow_abbrev=False,
        help="serve the X API simulator on loopback",
        description="Serve the X API initialize endpoint simulator (token: $BATCHER_SIM_TOKEN).",
    )
    simulate.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    simulate.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any)")
    simulate.add_argument(
        "--window-secs", type=positive_int, help="rate-limit window (default 900)"
    )
    simulate.add_argument(
        "--window-limit", type=positive_int, help="calls per window (default 1875)"
    )
    simulate.add_argument("--latency-ms", type=float, default=0.0, help="added to every answer")
    simulate.add_argument(
        "--fail-5xx-rate", type=fraction, default=0.0, help="share of answers that are 5xx"
    )
    simulate.add_argument("--seed", type=int, default=0, help="seed of the fault draws")
