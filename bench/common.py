"""What every benchmark reports: a candidate's time against an in-run baseline."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

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
