"""`loopline doctor`: print each check as it finishes, each problem with its fix; exit 1 when
any check found a problem."""

from __future__ import annotations

import argparse

from loopline.doctor import DoctorTargets, exit_code, format_json, run_checks
from loopline.doctor.results import CheckResult, format_line, summary

NAME_WIDTH = 20  # the longest usual name ("<pipeline> champion"); longer ones push the detail


def run_doctor(args: argparse.Namespace, targets: DoctorTargets) -> int:
    results: list[CheckResult] = []
    for result in run_checks(targets):
        results.append(result)
        if not args.json:  # as it comes: the TensorFlow probe alone takes seconds
            print(format_line(result, NAME_WIDTH), flush=True)
    print(format_json(results) if args.json else summary(results))
    return exit_code(results)
