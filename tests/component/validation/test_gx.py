"""Great Expectations runs without burying the task log in its own chatter."""

from __future__ import annotations

import subprocess
import sys

from support.paths import PIPELINES

CODE = f"""
import logging
logging.basicConfig(level=logging.INFO)  # what a task's log shows
from loopline.demo.card_transactions import generate
from loopline.spec import load_spec
from loopline.validation.report import validate_table
from loopline.validation.suites import load_suite
spec = load_spec({str(PIPELINES / "card_fraud.yaml")!r})
suite = load_suite({str(PIPELINES.parent / "expectations" / "card_fraud.json")!r})
report = validate_table(generate(500, seed=1), "a.parquet", suite)
print("VERDICT", report.success)
"""


def test_a_validation_logs_no_third_party_noise() -> None:
    result = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "VERDICT True" in result.stdout
    output = result.stdout + result.stderr
    assert "Skipping registering function" not in output
    assert "Multiple declarations of metric" not in output
    assert "Calculating Metrics" not in output
    assert len(output.splitlines()) < 20, output[-3000:]
