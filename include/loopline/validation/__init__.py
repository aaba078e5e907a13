"""The data validation gate: read a landed file, check it with Great Expectations, route it to
validated/ or quarantine/ with its report, and judge the run.

Suites are JSON files reviewed like code (``suites``); reading is strict (``loopline.data``);
``gate`` routes one file; ``verdict`` decides what a run's outcomes mean; every outcome is a
record (``loopline.records``).
"""
