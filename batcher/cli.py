"""The ``batcher`` command: a thin shell over the library with its own error boundary.

Every failure the user can fix ends in one line on stderr and a distinct exit code, never a
traceback:

    0 every row ok · 1 some rows failed or invalid · 2 usage or configuration error
    3 stopped early (signal, --max-duration, --max-failure-rate): run again to resume
    4 an account's credentials were refused: fix them, run again to resume
    5 the results file could not be written (disk full, I/O error): fix, run again to resume
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final, NoReturn, TypeAlias

import anyio

from batcher.accounts import load_accounts
from batcher.api import DEFAULT_TIMEOUT_S, ClientConfig
from batcher.auth import AccountSet, load_default_account
from batcher.contract import DEFAULT_BASE_URL, MEDIA_CATEGORIES
from batcher.errors import BatcherError, ConfigError, ResultsError, ResultsWriteError
from batcher.journal import DEFAULT_MIN_VALIDITY_S, ResumePolicy
from batcher.options import duration_s, fraction, fsync_policy, positive_float, positive_int
from batcher.progress import ProgressDisplay, format_summary
from batcher.results import FsyncPolicy
from batcher.runner import (
    DEFAULT_CONCURRENCY,
    DEFAULT_GRACE_S,
    DEFAULT_MAX_ATTEMPTS,
    Job,
    RunConfig,
    RunSummary,
    first_batcher_error,
)

EXIT_OK: Final = 0
EXIT_USAGE: Final = 2
EXIT_RESULTS_IO: Final = 5
BASE_URL_ENV: Final = "X_API_BASE_URL"

log = logging.getLogger("batcher")

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


def client_config(args: argparse.Namespace) -> ClientConfig:
    """Where and how to call the API, from flags and the environment."""
    base_url = args.base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    return ClientConfig(base_url=base_url, max_in_flight=args.concurrency, timeout_s=args.timeout)


def run_config(args: argparse.Namespace) -> RunConfig:
    """How to work through the rows, from flags."""
    return RunConfig(
        concurrency=args.concurrency,
        max_attempts=args.max_attempts,
        default_category=args.category,
        manifest_format=args.format,
        fsync=args.fsync_every,
        resume=ResumePolicy(min_validity_s=args.min_validity, retry_failed=args.retry_failed),
        grace_s=args.grace,
        max_duration_s=args.max_duration,
        max_failure_rate=args.max_failure_rate,
        max_rate=args.max_rate,
        app_daily_limit=args.app_daily_limit,
    )


async def run_job(job: Job, *, progress: bool) -> RunSummary:
    """Run ``job`` with signal handling and a progress display; the summary goes to stderr."""
    display = ProgressDisplay(job, sys.stderr) if progress else None
    async with anyio.create_task_group() as tg:
        tg.start_soon(stop_on_signals, job)
        if display is not None:
            tg.start_soon(display.run)
        try:
            summary = await job.run()
        finally:
            tg.cancel_scope.cancel()
    if display is not None:
        display.finish(summary)
    else:
        sys.stderr.write(format_summary(summary) + "\n")
    return summary


async def stop_on_signals(job: Job) -> None:
    """First SIGINT/SIGTERM: stop softly. Second: cancel requests in flight at once."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            name = signal.Signals(signum).name
            grace = job.config.grace_s
            if job.stop_reason is None:
                sys.stderr.write(
                    f"\nbatcher: {name}: finishing requests in flight (up to {grace:g} s); "
                    "press Ctrl-C again to stop at once\n"
                )
                job.stop(f"interrupted by {name}")
            else:
                sys.stderr.write(f"\nbatcher: {name} again: cancelling requests in flight\n")
                job.abort(f"interrupted twice by {name}")


def command_run(args: argparse.Namespace) -> int:
    """``batcher run``: the main job."""
    accounts = load_run_accounts(args)
    if args.fresh:
        move_aside(args.output)
    job = Job(
        manifest=args.manifest,
        results_path=args.output,
        accounts=accounts,
        client_config=client_config(args),
        config=run_config(args),
    )
    tune_for_throughput()
    summary = anyio.run(
        lambda: run_job(job, progress=not args.no_progress), backend_options=backend_options()
    )
    return summary.exit_code


def backend_options() -> dict[str, bool]:
    """uvloop when installed (``pip install 'batcher[fast]'``): a cheaper event loop per row."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return {}
    return {"use_uvloop": True}


def tune_for_throughput() -> None:
    """Keep the garbage collector off the hot path.

    Everything imported so far lives for the whole run: freeze it out of the collector's
    sight, and collect young objects less often (a run allocates many short-lived ones, and
    with a thousand requests in flight the default thresholds collect constantly).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def load_run_accounts(args: argparse.Namespace) -> AccountSet:
    """The accounts file's accounts, or the one account of the environment / --token-file."""
    if args.accounts is not None:
        if args.token_file is not None:
            raise ConfigError("give --accounts or --token-file, not both")
        return load_accounts(args.accounts)
    return AccountSet(default=load_default_account(token_file=args.token_file))


def move_aside(results: Path) -> None:
    """``--fresh``: keep the old results as ``NAME.YYYYmmdd-HHMMSS.bak`` rather than delete them."""
    if not results.exists():
        return
    backup = results.with_name(f"{results.name}.{time.strftime('%Y%m%d-%H%M%S')}.bak")
    try:
        results.rename(backup)
    except OSError as exc:
        raise ResultsError(f"cannot move {results} aside for --fresh: {exc.strerror}") from exc
    sys.stderr.write(f"batcher: --fresh: moved the earlier results to {backup}\n")


def command_report(args: argparse.Namespace) -> int:
    """``batcher report``: counts, expiring ids, and the rows that still need work."""
    from batcher.report import build_report, format_report

    report = build_report(
        args.results,
        expiring_within_s=args.expiring_within,
        policy=ResumePolicy(min_validity_s=args.min_validity),
        failed_manifest=args.failed_manifest,
    )
    print(format_report(report, args.results, expiring_within_s=args.expiring_within))
    if args.failed_manifest is not None:
        print(
            f"  written to {args.failed_manifest}; run them with: "
            f"batcher run {args.failed_manifest} -o {args.results}"
        )
    return EXIT_OK


def command_validate(args: argparse.Namespace) -> int:
    """``batcher validate``: 0 when every row would be sent, 1 when some are invalid."""
    from batcher.validate import format_validation, validate_manifest

    result = validate_manifest(args.manifest, fmt=args.format, default_category=args.category)
    print(format_validation(result, args.manifest))
    return result.exit_code


def command_demo(args: argparse.Namespace) -> int:
    """``batcher demo``: the main job on generated files against the built-in simulator."""
    from batcher.demo import run_demo

    return run_demo(args.dir, rows=args.rows, progress=not args.no_progress)


def command_simulate(args: argparse.Namespace) -> int:
    """``batcher simulate``: serve the simulator until interrupted."""
    from batcher.simulator import SimulatorConfig, run_simulator, tokens_from_env

    limits = {
        name: value
        for name, value in (("window_secs", args.window_secs), ("window_limit", args.window_limit))
        if value is not None
    }
    config = SimulatorConfig(
        tokens=tokens_from_env(),
        latency_s=args.latency_ms / 1000,
        fail_5xx_rate=args.fail_5xx_rate,
        seed=args.seed,
        **limits,
    )
    run_simulator(config, host=args.host, port=args.port)
    return EXIT_OK


COMMANDS: Final = {
    "run": command_run,
    "validate": command_validate,
    "report": command_report,
    "demo": command_demo,
    "simulate": command_simulate,
}


def describe_unknown(arguments: Sequence[str]) -> str:
    """Name unknown options without echoing values, which may be secrets pasted on argv."""
    options = [arg.split("=", 1)[0] for arg in arguments if arg.startswith("-")]
    shown = " ".join(options) if options else f"{len(arguments)} extra value(s)"
    return f"unrecognized arguments: {shown} (values not shown; tokens come from the environment)"


def fail(error: BaseException) -> NoReturn:
    """One clear line on stderr, then the exit code that fits the error."""
    sys.stderr.write(f"batcher: error: {error}\n")
    raise SystemExit(EXIT_RESULTS_IO if isinstance(error, ResultsWriteError) else EXIT_USAGE)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``batcher`` console script."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        parser.error(describe_unknown(unknown))
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return COMMANDS[args.command](args)
    except BatcherError as exc:
        fail(exc)
    except BaseExceptionGroup as group:
        error = first_batcher_error(group)
        if error is None:
            raise
        fail(error)
