"""A validation run's verdict: what its files' outcomes add up to, and whether it fails.

A quarantined file fails the run when the spec says so (``validation.fail_run_on_invalid``);
a file that could not be validated at all (its task failed) always does, since it stays in
landing for the next run. A row-level split does not: its good rows moved on, as asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loopline.records import ObjectRef, RecordStage, RecordStore, RunContext, StageRecord
from loopline.storage.objects import ObjectStore
from loopline.validation.gate import GateResult

EVIDENCE_FILES = 5  # failed files a debug bundle shows


class RunDidNotPass(Exception):
    """A validation run that fails, with the files that failed it as debug evidence."""

    def __init__(self, message: str, debug_evidence: dict[str, Any]) -> None:
        super().__init__(message)
        self.debug_evidence = debug_evidence


@dataclass(frozen=True)
class RunVerdict:
    files: int
    passed: list[GateResult]  # moved on whole
    split: list[GateResult]  # good rows moved on, bad rows quarantined
    quarantined: list[GateResult]
    unchecked: list[str]  # listed, but its validation task failed
    problems: list[str]  # each a reason to fail the run; none: the run succeeds

    @property
    def counts(self) -> dict[str, int]:
        return {
            "files": self.files,
            "passed": len(self.passed),
            "split": len(self.split),
            "quarantined": len(self.quarantined),
            "unchecked": len(self.unchecked),
            "rows_rejected": sum(r.rejected_rows for r in self.split + self.quarantined),
        }

    def failure_message(self) -> str:
        return f"{len(self.problems)} of {self.files} file(s) did not pass:\n" + "\n".join(
            self.problems
        )

    def failure(self, store: ObjectStore, bucket: str) -> RunDidNotPass:
        """The run's failure, carrying the files that failed it for the debug bundle: where
        each went, why, its report, and its first rows (`sample_of_object`)."""
        from loopline.records.debug import sample_of_object

        failed = self.quarantined if self.problems else []
        files = [
            {
                "landed_as": result.source,
                "now_at": result.destination,
                "reasons": result.reasons[:EVIDENCE_FILES],
                "report": result.report_key,
                "first_rows": sample_of_object(store, bucket, result.destination),
            }
            for result in failed[:EVIDENCE_FILES]
        ]
        evidence = {"files": files, "not_validated": self.unchecked[:EVIDENCE_FILES]}
        return RunDidNotPass(self.failure_message(), evidence)

    def record(self, run: RunContext, bucket: str) -> StageRecord:
        outcomes = self.passed + self.split + self.quarantined
        return run.record(
            RecordStage.VALIDATION,
            "failed" if self.problems else "passed",
            inputs=[ObjectRef(uri=f"s3://{bucket}/{r.source}", sha256=r.sha256) for r in outcomes],
            outputs=[ObjectRef(uri=f"s3://{bucket}/{r.destination}") for r in outcomes],
            reasons=[p.strip() for p in self.problems],
            numbers=self.counts,
            payload={"unchecked": self.unchecked, "results": [r.to_dict() for r in outcomes]},
        )


def run_verdict(keys: list[str], results: list[GateResult], fail_on_invalid: bool) -> RunVerdict:
    """Judge a run that listed `keys` and got `results` (one per file whose task ended)."""
    quarantined = [r for r in results if not r.passed]
    split = [r for r in results if r.split]
    passed = [r for r in results if r.passed and not r.split]
    unchecked = sorted(set(keys) - {r.source for r in results})
    problems = []
    if fail_on_invalid:
        problems += [
            f"  {r.source} -> {r.destination}: {'; '.join(r.reasons)}" for r in quarantined
        ]
    problems += [
        f"  {key}: not validated (its task failed); it stays in landing" for key in unchecked
    ]
    return RunVerdict(len(keys), passed, split, quarantined, unchecked, problems)


def judge_run(
    store: ObjectStore,
    bucket: str,
    keys: list[str],
    results: list[GateResult],
    fail_on_invalid: bool,
    run: RunContext,
) -> RunVerdict:
    """Judge the run (`run_verdict`) and record the verdict, whoever judges it (the DAG's
    verdict task, a replay, a benchmark)."""
    verdict = run_verdict(keys, results, fail_on_invalid)
    RecordStore(store, bucket).write(verdict.record(run, bucket))
    return verdict
