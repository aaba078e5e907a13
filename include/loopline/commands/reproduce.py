"""``loopline reproduce <pipeline> <version>``: retrain a version from its record, compare."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING

from loopline.registry import ModelRegistry, RegistryError
from loopline.spec.loader import load_spec_version
from loopline.training.reproduce import (
    DEFAULT_TOLERANCE,
    Reproduction,
    ReproductionRefused,
    reproduce_version,
    reproduction_run,
)

if TYPE_CHECKING:
    from loopline.storage.objects import ObjectStore


def run_reproduce_command(args: argparse.Namespace, spec_path: Path, store: ObjectStore) -> int:
    """Reproduce `args.version` (a number or an alias) of the pipeline whose spec is at
    `spec_path`, in `store`; print the new version, each metric and the verdict. 0 when it
    reproduced within the tolerance, 1 when it differs or was refused."""
    spec, sha256 = load_spec_version(spec_path)
    tolerance = DEFAULT_TOLERANCE if args.tolerance is None else args.tolerance
    registry = ModelRegistry(store, spec.data.bucket)
    try:
        version = registry.resolve(spec.name, args.version)
        run = reproduction_run(spec.name, version, spec_sha256=sha256)
        print(f"reproducing {spec.name} version {version} (run {run.run_id})", flush=True)
        result = reproduce_version(store, registry, spec, version, run=run, tolerance=tolerance)
    except (RegistryError, ReproductionRefused) as error:
        print(f"error: {error}")
        return 1
    print(describe(result))
    return 0 if result.within_tolerance else 1


def describe(result: Reproduction) -> str:
    """The report: the new version, each metric original vs reproduced, the verdict."""
    lines = [
        f"registered {result.pipeline} version {result.reproduced} (reproduces version "
        f"{result.original}; no alias moved), trained on {result.device} in "
        f"{result.seconds:.1f} s from {result.objects_verified} verified object(s)",
        f"{'metric':10}  {'original':>14}  {'reproduced':>14}  {'difference':>11}",
    ]
    for metric in result.metrics:
        reproduced = "missing" if math.isnan(metric.reproduced) else f"{metric.reproduced:.10f}"
        lines.append(
            f"{metric.name:10}  {metric.original:>14.10f}  {reproduced:>14}  "
            f"{metric.difference:>+11.2e}"
        )
    lines += [f"warning: {warning}" for warning in result.warnings]
    verdict = (
        "reproduced within tolerance" if result.within_tolerance else "DIFFERS beyond the tolerance"
    )
    lines.append(f"{verdict} ({result.tolerance:g} per metric)")
    return "\n".join(lines)


__all__ = ["describe", "run_reproduce_command"]
