"""The batch job in its two engines, spark-submit and a warm Spark Connect server, at 1M and
10M rows, each against its own pass-through floor and against the physical limit.

Data and model: as ``bench/batch_scoring.py`` (whose helpers this reuses): the demo schema as
250k-row Parquet objects on the local S3 server (moto) over ten days; a champion trained on
50k rows. Every run scores the same rows with the same model on ``local[2]`` (two cores), in
the same run of this benchmark.

Candidates:
- spark-submit job (``spark-submit --master local[2] job.py``), as in batch_scoring: JVM,
  SparkContext and Python worker start-up, model load, S3 reads, scoring, staged writes and
  the per-date commit, all in its time.
- Connect job, warm: a Spark Connect server on ``local[2]``, started once before timing; this
  process is the driver (``score_window`` with ``connect_opener``), timed around the whole
  call, session opening included. One untimed 1M-row run first loads the model into the
  warm session's Python workers (its time is printed as the cold first run). A last 1M-row
  run after 75 s idle shows what a run after a pause costs (Spark stops idle workers after a
  minute).

Baselines:
- each engine's pass-through floor (``--no-model`` / ``with_model=False``): the same reads,
  staged writes and commit with a null score. Goal: each engine's job >= 0.8x its own floor
  (throughput), at both sizes.
- spark-submit job at 1M rows. Goal: the warm Connect job >= 3x faster.
- physical limit: min(bare model, plain pyarrow S3 read), as batch_scoring measures them.
  Goal: the Connect job at 10M rows >= 0.4x (throughput).
Start-up of each run is estimated from the two sizes: whatever the 9M extra rows did not
cost, startup ~= t(1M) - (t(10M) - t(1M)) / 9; Connect runs also report their ``session_s``.
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.batch_scoring import (
    DAYS,
    ROWS_PER_OBJECT,
    SIZES,
    _bare_inference_rate,
    _loopline_job,
    _marked,
    _raw_read_rate,
    scoring_world,
    window_end,
)
from bench.common import Comparison

NAME = "batch_engines"
IDLE_PAUSE_S = 75
SERVER_MASTER = "local[2]"  # the same cores as the spark-submit runs
SERVER_START_TIMEOUT_S = 180

Landed = tuple[Any, Path, list[str]]  # spec, spec file, object keys (from _land)


@dataclass(frozen=True)
class Run:
    """One run of the job: its wall time and the summary it returned."""

    seconds: float
    summary: dict[str, Any]


@dataclass(frozen=True)
class Engine:
    """One engine's runs by size: the job (with the model) and its pass-through floor."""

    name: str
    job: dict[int, Run]
    floor: dict[int, Run]


def run() -> list[Comparison]:
    warnings.filterwarnings("ignore")
    with scoring_world() as world:
        submit = _submit_engine(world.specs, world.settings)
        connect, cold = _connect_engine(world.specs, world.settings, world.work)
        bare = _bare_inference_rate(world.model_dir, world.specs)
        read = _raw_read_rate(world.store, world.specs, world.settings)
    for engine in (submit, connect):
        _print_startup(engine)
    return _report(submit, connect, cold, bare, read)


def _label(rows: int) -> str:
    return f"{rows / 1_000_000:g}M"


# ---- spark-submit --------------------------------------------------------------------------


def _submit_engine(specs: dict[int, Landed], settings: Any) -> Engine:
    from loopline.batch import job

    runs: dict[str, dict[int, Run]] = {"job": {}, "floor": {}}
    for rows, landed in specs.items():
        measured = _loopline_job(landed, settings)
        runs["job"][rows] = Run(measured.seconds, _marked(measured.output, job.RESULT_MARKER))
        floor = _loopline_job(landed, settings, with_model=False)
        runs["floor"][rows] = Run(floor.seconds, _marked(floor.output, job.RESULT_MARKER))
    return Engine("spark-submit", runs["job"], runs["floor"])


# ---- Spark Connect -------------------------------------------------------------------------


def _connect_engine(specs: dict[int, Landed], settings: Any, work: Path) -> tuple[Engine, Run]:
    """Warm-up, then the job and the floor at every size, on one server; and the warm-up."""
    small = SIZES[0]
    with _connect_server(work) as url:
        cold = _connect_run(specs[small], settings, url, "cold-first-run", with_model=True)
        job = {rows: _connect_run(specs[rows], settings, url, "job", True) for rows in SIZES}
        floor = {rows: _connect_run(specs[rows], settings, url, "floor", False) for rows in SIZES}
        # Spark stops Python workers idle for a minute (PythonWorkerFactory): what a run after
        # a pause (an hourly or daily schedule) costs on the same server.
        time.sleep(IDLE_PAUSE_S)
        _connect_run(specs[small], settings, url, f"job after {IDLE_PAUSE_S} s idle", True)
    return Engine("connect", job, floor), cold


@contextmanager
def _connect_server(work: Path) -> Iterator[str]:
    """A Spark Connect server on loopback and ``local[2]``, its output in a log file; its URL."""
    from loopline.batch.connect import client_url, server_argv, server_env
    from loopline.runtime.environment import child_environment
    from loopline.stack.config import HOST, free_port

    port, token = free_port(), secrets.token_urlsafe(24)
    log = work / "spark-connect.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            server_argv(HOST, port, master=SERVER_MASTER),
            env=child_environment(server_env(token)),
            stdout=output,
            stderr=output,
        )
    try:
        started = time.perf_counter()
        _wait_until_listening(process, HOST, port, log)
        print(
            f"   Connect server on {SERVER_MASTER} listening after "
            f"{time.perf_counter() - started:.1f} s"
        )
        yield client_url(HOST, port, token)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_listening(process: subprocess.Popen, host: str, port: int, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the Spark Connect server exited:\n{log.read_text()[-3000:]}")
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex((host, port)) == 0:
                return
        time.sleep(0.3)
    raise TimeoutError(
        f"the Spark Connect server did not listen on {port} in {SERVER_START_TIMEOUT_S} s:\n"
        f"{log.read_text()[-3000:]}"
    )


def _connect_run(landed: Landed, settings: Any, url: str, kind: str, with_model: bool) -> Run:
    """One job over Connect in this process, timed around the whole call."""
    from loopline.batch.job import ScoreRequest, connect_opener, score_window

    _, spec_path, keys = landed
    rows = len(keys) * ROWS_PER_OBJECT
    request = ScoreRequest(
        spec=str(spec_path),
        run_id=f"bench-connect__{rows}__{kind}",
        window_end=window_end(),
        window_days=DAYS + 2,
        with_model=with_model,
    )
    started = time.perf_counter()
    summary = score_window(request, settings, connect_opener(url))
    seconds = time.perf_counter() - started
    assert summary["rows"] == rows, summary
    print(
        f"   connect {kind}, {rows:,} rows: {seconds:.1f} s (session {summary['session_s']} s, "
        f"{summary['objects_on_warm_workers']}/{summary['objects']} objects on warm workers, "
        f"{summary['python_workers']} Python workers)"
    )
    return Run(seconds, summary)


# ---- start-up ------------------------------------------------------------------------------


def _startup(runs: dict[int, Run]) -> float:
    """What the extra rows between the two sizes did not cost: t(small) - small * (marginal
    seconds per row); with 1M and 10M, t(1M) - (t(10M) - t(1M)) / 9."""
    small, large = SIZES
    per_row = (runs[large].seconds - runs[small].seconds) / (large - small)
    return runs[small].seconds - small * per_row


def _print_startup(engine: Engine) -> None:
    for kind, runs in (("job", engine.job), ("floor", engine.floor)):
        startup = _startup(runs)
        shares = "; ".join(
            f"{_label(rows)}: {startup / run.seconds:.0%} of {run.seconds:.1f} s, "
            f"session_s {run.summary.get('session_s', '?')}"
            for rows, run in runs.items()
        )
        print(f"   start-up, {engine.name} {kind}: ~{startup:.1f} s ({shares})")


# ---- report --------------------------------------------------------------------------------


def _report(
    submit: Engine, connect: Engine, cold: Run, bare: float, read: float
) -> list[Comparison]:
    return [
        _speedup(submit, connect, cold),
        _against_limit(submit, connect, bare, read),
        *(_against_floor(engine, rows) for engine in (submit, connect) for rows in SIZES),
    ]


def _rate(run: Run, rows: int) -> float:
    return rows / run.seconds


def _speedup(submit: Engine, connect: Engine, cold: Run) -> Comparison:
    small = SIZES[0]
    slow, fast = submit.job[small], connect.job[small]
    return Comparison(
        NAME,
        f"connect job, warm @{_label(small)}",
        f"spark-submit job @{_label(small)}",
        [fast.seconds],
        [slow.seconds],
        f"speed-up {slow.seconds / fast.seconds:.2f}x (goal >= 3); connect "
        f"{_rate(fast, small):,.0f} rows/s, spark-submit {_rate(slow, small):,.0f} rows/s; "
        f"cold first Connect run {cold.seconds:.1f} s",
    )


def _against_limit(submit: Engine, connect: Engine, bare: float, read: float) -> Comparison:
    large, limit = SIZES[1], min(bare, read)
    ours, theirs = _rate(connect.job[large], large), _rate(submit.job[large], large)
    return Comparison(
        NAME,
        f"connect job @{_label(large)} (s per 1M rows)",
        "physical limit",
        [connect.job[large].seconds * 1_000_000 / large],
        [1_000_000 / limit],
        f"connect {ours:,.0f} rows/s; limit {limit:,.0f} = min(bare model {bare:,.0f}, S3 read "
        f"{read:,.0f}); throughput ratio {ours / limit:.2f} (goal >= 0.4); spark-submit "
        f"{theirs:,.0f} rows/s, ratio {theirs / limit:.2f}",
    )


def _against_floor(engine: Engine, rows: int) -> Comparison:
    job, floor = engine.job[rows], engine.floor[rows]
    return Comparison(
        NAME,
        f"{engine.name} job @{_label(rows)}",
        f"{engine.name} floor @{_label(rows)}",
        [job.seconds],
        [floor.seconds],
        f"throughput ratio {floor.seconds / job.seconds:.2f} (goal >= 0.8); job "
        f"{_rate(job, rows):,.0f} rows/s, floor {_rate(floor, rows):,.0f} rows/s",
    )
