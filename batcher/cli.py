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
import contextlib
import ctypes
import gc
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final, NoReturn

import anyio

from batcher.accounts import load_accounts
from batcher.api import ClientConfig
from batcher.auth import AccountSet, load_default_account
from batcher.contract import DEFAULT_BASE_URL
from batcher.errors import BatcherError, ConfigError, ResultsError, ResultsWriteError
from batcher.journal import ResumePolicy
from batcher.parser import BASE_URL_ENV, build_parser
from batcher.progress import ProgressDisplay, format_summary
from batcher.runner import (
    Job,
    RunConfig,
    RunSummary,
    first_batcher_error,
)

EXIT_OK: Final = 0
EXIT_USAGE: Final = 2
EXIT_RESULTS_IO: Final = 5
EXIT_INTERRUPTED: Final = 130
_M_ARENA_MAX: Final = -8  # glibc's mallopt parameter number

log = logging.getLogger("batcher")


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
    _one_malloc_arena()


def _one_malloc_arena() -> None:
    """Ask glibc for a single malloc arena (what ``MALLOC_ARENA_MAX=1`` does).

    Rows are read in a worker thread and freed in the loop's thread; with an arena per thread,
    memory freed in one is not reused by the other, and a long run's peak RSS crept up by a few
    MiB over millions of rows. Python allocates only while it holds the GIL, so one arena costs
    no contention. Anywhere but glibc this does nothing.
    """
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(_M_ARENA_MAX, 1)


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
    from batcher.simulator import FaultRates, SimulatorConfig, run_simulator, tokens_from_env

    limits = {
        name: value
        for name, value in (("window_secs", args.window_secs), ("window_limit", args.window_limit))
        if value is not None
    }
    config = SimulatorConfig(
        tokens=tokens_from_env(),
        latency_s=args.latency_ms / 1000,
        faults=FaultRates(fail_5xx_rate=args.fail_5xx_rate),
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
    except KeyboardInterrupt:
        # Ctrl-C before the run's own signal handling started (or in demo/report/validate):
        # nothing was sent yet that a results file would have to record.
        sys.stderr.write("batcher: interrupted\n")
        raise SystemExit(EXIT_INTERRUPTED) from None
