"""What every benchmark reports: a candidate's time against an in-run baseline."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


@dataclass(frozen=True)
class Comparison:
    benchmark: str
    candidate: str
    baseline: str
    candidate_seconds: list[float]
    baseline_seconds: list[float]
    note: str = ""

    @property
    def ratio(self) -> float:
        """Candidate median over baseline median: how many baselines the candidate costs."""
        return statistics.median(self.candidate_seconds) / statistics.median(self.baseline_seconds)

    def line(self) -> str:
        c_ms = statistics.median(self.candidate_seconds) * 1000
        b_ms = statistics.median(self.baseline_seconds) * 1000
        return (
            f"{self.benchmark:14} {self.candidate:32} {c_ms:9.1f} ms  vs "
            f"{self.baseline:24} {b_ms:8.1f} ms  ratio {self.ratio:6.2f}  {self.note}"
        )


def save(name: str, comparisons: list[Comparison]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = [{**asdict(c), "ratio": c.ratio} for c in comparisons]
    path.write_text(json.dumps(payload, indent=2))
    return path


@dataclass(frozen=True)
class Measured:
    """A command run to completion: its wall time and its process tree's peak memory."""

    seconds: float
    peak_rss_bytes: int
    output: str

    @property
    def peak_mib(self) -> float:
        return self.peak_rss_bytes / 2**20


def run_measured(command: list[str], env: dict[str, str], timeout: float) -> Measured:
    """Run `command`, sampling the summed RSS of it and all its descendants every 50 ms (forked
    workers' shared pages count once per process: an upper bound, the same for every job)."""
    import subprocess
    import tempfile
    import threading
    import time

    import psutil

    peak, done = [0], threading.Event()
    with tempfile.TemporaryFile() as log:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        watched = psutil.Process(process.pid)

        def sample() -> None:
            while not done.wait(0.05):
                try:
                    tree = [watched, *watched.children(recursive=True)]
                    peak[0] = max(peak[0], sum(_rss(member) for member in tree))
                except psutil.NoSuchProcess:
                    return

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            returncode = process.wait(timeout=timeout)
        finally:
            seconds = time.perf_counter() - started
            done.set()
            sampler.join()
            if process.poll() is None:
                process.kill()
        log.seek(0)
        output = log.read().decode(errors="replace")
    if returncode != 0:
        raise RuntimeError(f"{command[:3]} failed ({returncode}):\n{output[-3000:]}")
    return Measured(seconds, peak[0], output)


def _rss(process: Any) -> int:
    import psutil

    try:
        return process.memory_info().rss
    except psutil.NoSuchProcess:  # it ended between listing and reading
        return 0


_MODELS: dict[str, Any] = {}


def local_model(model_dir: str) -> Any:
    """A saved model as a compiled function, loaded once per process (per Spark worker)."""
    if model_dir not in _MODELS:
        from loopline.serving.artifacts import compiled, load_model

        _MODELS[model_dir] = compiled(load_model(model_dir))
    return _MODELS[model_dir]
