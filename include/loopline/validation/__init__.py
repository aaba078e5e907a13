"""The data validation gate: read a landed file, check it with Great Expectations, report.

This slice holds the library: suites kept as JSON files, strict reading of Parquet, CSV and
JSON Lines against the spec's columns (a file whose bytes contradict its extension, an empty
or corrupt file, a wrong type all become readable reasons), and a typed report of the run.
Routing on S3 and the DAG build on it.
"""
