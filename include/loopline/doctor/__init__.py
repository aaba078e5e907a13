"""`loopline doctor`: checks of the environment the loop needs, each a plain function that
returns a `CheckResult` (ok, PROBLEM with its fix, or skipped with why).

A dev tool beside the stack, but below it: it takes its targets (endpoints, credentials) as
values, so it imports neither the stack nor Airflow, and heavy libraries only in a child
process (TensorFlow) or when a check runs (boto3, kafka-python, httpx).
"""

from loopline.doctor.checks import check_services_and_specs, run_checks
from loopline.doctor.results import CheckResult, Status, exit_code, format_json, format_text
from loopline.doctor.targets import AirflowTarget, DoctorTargets

__all__ = [
    "AirflowTarget",
    "CheckResult",
    "DoctorTargets",
    "Status",
    "check_services_and_specs",
    "exit_code",
    "format_json",
    "format_text",
    "run_checks",
]
