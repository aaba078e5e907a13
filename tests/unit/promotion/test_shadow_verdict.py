"""The shadow verdict on paired scores: pending below min_pairs, then each check with its
numbers (tests/component/promotion runs it from a real prediction log and promotes by it)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from loopline.promotion.shadow import decide_shadow
from loopline.spec.sections import ShadowSpec

RULES = ShadowSpec(min_pairs=100, min_agreement=0.9, max_score_shift=0.05, max_p99_ratio=1.5)


def pairs(ours: np.ndarray, theirs: np.ndarray, ms_c: float = 2.0, ms_s: float = 2.0) -> pa.Table:
    n = len(ours)
    return pa.table({"score_c": ours.astype(np.float32), "score_s": theirs.astype(np.float32),
                     "latency_ms_c": np.full(n, ms_c, np.float32),
                     "latency_ms_s": np.full(n, ms_s, np.float32)})  # fmt: skip


SCORES = np.random.default_rng(3).uniform(0, 1, 400)


def test_too_few_pairs_is_pending_not_a_failure() -> None:
    verdict = decide_shadow(2, 1, pairs(SCORES[:99], SCORES[:99]), RULES)
    assert verdict.verdict == "pending" and verdict.pairs == 99
    assert "a verdict needs 100" in verdict.reasons[0]


def test_a_challenger_that_agrees_passes_with_its_numbers() -> None:
    verdict = decide_shadow(2, 1, pairs(SCORES, SCORES + 0.01), RULES)
    assert verdict.verdict == "pass", verdict.reasons
    assert verdict.numbers["score_shift"] == pytest.approx(0.01, abs=1e-4)
    assert verdict.numbers["agreement"] >= 0.97 and verdict.numbers["p99_ratio"] == 1.0
    assert all(reason.startswith("ok: ") for reason in verdict.reasons)


@pytest.mark.parametrize(
    ("theirs", "ms_s", "failed"),
    [
        (1 - SCORES, 2.0, ["agreement"]),  # the same distribution, every decision flipped
        (0.6 * SCORES + 0.2, 2.0, ["score shift"]),  # the same decisions, squeezed scores
        (SCORES, 4.0, ["p99 per call"]),
        (np.where(np.arange(400) < 4, np.nan, SCORES), 2.0, ["errors on 1.00% of events"]),
    ],
)
def test_each_check_fails_on_its_own(theirs: np.ndarray, ms_s: float, failed: list[str]) -> None:
    verdict = decide_shadow(2, 1, pairs(SCORES, theirs, ms_s=ms_s), RULES)
    assert verdict.verdict == "fail"
    failures = [reason for reason in verdict.reasons if reason.startswith("FAILED: ")]
    assert len(failures) == len(failed)
    for text in failed:
        assert any(text in reason for reason in failures), (text, failures)
