"""Child processes for the benchmarks: the server, and clients measured with ``os.wait4``."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Self

import orjson

POLL_S = 0.02


@dataclass(frozen=True, slots=True, kw_only=True)
class Measure:
    """One child's run: CPU (user+system), peak RSS, wall time, rows done."""

    cpu_s: float
    maxrss_kib: int
    wall_s: float
    rows: int
    ok: bool
    stdout: str = ""
    stderr: str = ""

    def with_rows(self, rows: int) -> Measure:
        """The same run, with the rows counted elsewhere (a results file)."""
        return replace(self, rows=rows)

    def __str__(self) -> str:
        per_row = self.cpu_s / self.rows * 1e6 if self.rows else float("nan")
        state = "ok" if self.ok else f"FAILED {self.stderr.strip()[-400:]}"
        return (
            f"{self.rows:,} rows, cpu {self.cpu_s:.2f} s ({per_row:.1f} µs/row), "
            f"wall {self.wall_s:.2f} s, rss {self.maxrss_kib / 1024:.1f} MiB, {state}"
        )


def _pin(cpu: int | None) -> None:
    if cpu is not None and len(os.sched_getaffinity(0)) >= 2:
        os.sched_setaffinity(0, {cpu})


def run_child(
    argv: list[str], *, cwd: Path, env: dict[str, str], cpu: int | None, timeout_s: float
) -> Measure:
    """Run ``argv`` pinned to ``cpu``; kill it past ``timeout_s``; rusage from ``wait4``."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        with open(os.devnull, "rb") as stdin:
            child = subprocess.Popen(
                argv,
                cwd=cwd,
                env={**os.environ, **env},
                stdin=stdin,
                stdout=out,
                stderr=err,
                preexec_fn=lambda: _pin(cpu),
            )
        status, usage, killed = _reap(child, started + timeout_s)
        wall_s = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    report = _last_json(stdout)
    return Measure(
        cpu_s=usage.ru_utime + usage.ru_stime,
        maxrss_kib=usage.ru_maxrss,
        wall_s=float(report.get("wall_s", wall_s)),  # type: ignore[arg-type]
        rows=int(report.get("ok", 0)),  # type: ignore[call-overload]
        ok=not killed and os.waitstatus_to_exitcode(status) in (0, 1),
        stdout=stdout.decode(errors="replace"),
        stderr=stderr.decode(errors="replace") + ("\n[killed past the deadline]" if killed else ""),
    )


def _reap(
    child: subprocess.Popen[bytes], deadline: float
) -> tuple[int, resource.struct_rusage, bool]:
    """Wait for ``child`` with ``os.wait4`` (its own rusage); kill it past ``deadline``."""
    killed = False
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
            return status, usage, killed
        if time.perf_counter() > deadline and not killed:
            child.kill()
            killed = True
        time.sleep(POLL_S)


def _last_json(stdout: bytes) -> dict[str, object]:
    lines = stdout.strip().splitlines()
    if not lines or not lines[-1].startswith(b"{"):
        return {}
    document = orjson.loads(lines[-1])
    return document if isinstance(document, dict) else {}


class ServerProcess:
    """:mod:`benchmarks.server` in its own process; stops when its stdin closes."""

    def __init__(self, *, cwd: Path, cpu: int | None) -> None:
        argv = [sys.executable, "-m", "benchmarks.server"]
        if cpu is not None:
            argv += ["--cpu", str(cpu)]
        self._argv, self._cwd = argv, cwd
        self._child: subprocess.Popen[bytes] | None = None
        self.url = ""

    def __enter__(self) -> Self:
        child = subprocess.Popen(
            self._argv, cwd=self._cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        self._child = child
        assert child.stdout is not None
        line = child.stdout.readline().decode()
        if not line.startswith("PORT "):
            child.kill()
            raise RuntimeError(f"the benchmark server did not start: {line!r}")
        self.url = f"http://127.0.0.1:{int(line.split()[1])}"
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        child, self._child = self._child, None
        if child is None:
            return
        assert child.stdin is not None
        child.stdin.close()
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
