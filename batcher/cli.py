"""The ``batcher`` command: a thin shell over the library with its own error boundary.

Every failure the user can fix ends in one line on stderr and a distinct exit code, never a
traceback. Exit codes: 0 every row ok · 1 some rows failed or invalid · 2 usage or config error.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final, NoReturn

import anyio

from batcher.api import DEFAULT_TIMEOUT_S, ClientConfig
from batcher.auth import AccountSet, load_default_account
from batcher.contract import DEFAULT_BASE_URL, MEDIA_CATEGORIES
from batcher.errors import BatcherError
from batcher.progress import ProgressDisplay, format_summary
from batcher.runner import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_ATTEMPTS,
    Job,
    RunConfig,
    RunSummary,
    first_batcher_error,
)

EXIT_OK: Final = 0
EXIT_ROWS_FAILED: Final = 1
EXIT_USAGE: Final = 2
BASE_URL_ENV: Final = "X_API_BASE_URL"

log = logging.getLogger("batcher")


def positive_int(text: str) -> int:
    """argparse type: an integer ≥ 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def positive_float(text: str) -> float:
    """argparse type: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return value


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
    add_demo_command(commands)
    add_simulate_command(commands)
    return parser


def add_run_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``batcher run MANIFEST -o RESULTS``."""
    run = commands.add_parser(
        "run",
        allow_abbrev=False,
        help="initialize an upload for every row of a manifest",
        description=(
            "Initialize one media upload per manifest row and write one JSON line per row. "
            "The access token comes from X_ACCESS_TOKEN or --token-file, never from a flag value."
        ),
    )
    run.add_argument(
        "manifest", help="CSV, JSONL, a text file of paths, a directory, or - for stdin"
    )
    run.add_argument("-o", "--output", required=True, type=Path, help="results JSONL file")
    add_run_options(run)


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``run`` and ``demo``."""
    parser.add_argument(
        "--base-url",
        default=None,
        help=f"API base URL (default: ${BASE_URL_ENV} or {DEFAULT_BASE_URL})",
    )
    parser.add_argument("--token-file", type=Path, help="read the access token from this file")
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
    parser.add_argument("--no-progress", action="store_true", help="no live progress display")


def add_demo_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def add_simulate_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
        "--fail-5xx-rate", type=float, default=0.0, help="fraction of answers that are 5xx"
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
    )


async def run_job(job: Job, *, progress: bool) -> RunSummary:
    """Run ``job`` with a progress display beside it; the summary always goes to stderr."""
    display = ProgressDisplay(job, sys.stderr)
    if not progress:
        summary = await job.run()
        sys.stderr.write(format_summary(summary) + "\n")
        return summary
    async with anyio.create_task_group() as tg:
        tg.start_soon(display.run)
        summary = await job.run()
        tg.cancel_scope.cancel()
    display.finish(summary)
    return summary


def command_run(args: argparse.Namespace) -> int:
    """``batcher run``: the main job."""
    account = load_default_account(token_file=args.token_file)
    job = Job(
        manifest=args.manifest,
        results_path=args.output,
        accounts=AccountSet(default=account),
        client_config=client_config(args),
        config=run_config(args),
    )
    summary = anyio.run(lambda: run_job(job, progress=not args.no_progress))
    return summary.exit_code


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


COMMANDS: Final = {"run": command_run, "demo": command_demo, "simulate": command_simulate}


def describe_unknown(arguments: Sequence[str]) -> str:
    """Name unknown options without echoing values, which may be secrets pasted on argv."""
    options = [arg.split("=", 1)[0] for arg in arguments if arg.startswith("-")]
    shown = " ".join(options) if options else f"{len(arguments)} extra value(s)"
    return f"unrecognized arguments: {shown} (values not shown; tokens come from the environment)"


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """One clear line on stderr, then exit."""
    sys.stderr.write(f"batcher: error: {message}\n")
    raise SystemExit(code)


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
        fail(str(exc))
    except BaseExceptionGroup as group:
        error = first_batcher_error(group)
        if error is None:
            raise
        fail(str(error))
    except KeyboardInterrupt:
        fail("interrupted", 130)
