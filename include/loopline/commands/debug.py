"""``loopline debug <pipeline> [run]``: what a failed task left behind, from the run id the UI
shows. Without a run: the pipeline's latest failures, one line each."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI imports this module to build its parser: these load on use
    from loopline.records.debug import DebugBundle
    from loopline.spec import PipelineSpec
    from loopline.storage.objects import ObjectStore

LATEST = 20  # failures listed without a run
TRACEBACK_LINES = 30  # of a bundle's traceback, printed


def print_debug(args: argparse.Namespace, spec: PipelineSpec, store: ObjectStore) -> int:
    from loopline.records.debug import read_bundles

    if not args.run:
        return _list_failures(spec, store)
    bundles = read_bundles(store, spec.data.bucket, spec.name, args.run)
    if not bundles:
        print(f"{spec.name}: no debug bundle for run {args.run!r}")
        _list_failures(spec, store)
        return 1
    for bundle in bundles:
        if args.json:
            print(bundle.model_dump_json(indent=2))
        else:
            print(describe(bundle, with_spec=args.spec))
    return 0


def describe(bundle: DebugBundle, with_spec: bool = False) -> str:
    """A bundle as a person reads it: what failed, where, with what, and where the log is."""
    task = bundle.task_id if bundle.map_index is None else f"{bundle.task_id}[{bundle.map_index}]"
    lines = [
        f"== {bundle.dag_id} {bundle.run_id}: {task} try {bundle.try_number} {bundle.state} "
        f"at {bundle.created_at:%Y-%m-%d %H:%M:%S} UTC",
        f"error: {bundle.error.type}: {bundle.error.message}",
        *(f"  caused by {cause}" for cause in _new_causes(bundle)),
        f"model version: {bundle.model_version or '-'}",
        f"spec: {bundle.spec_path} sha256 {bundle.spec.sha256[:12] if bundle.spec else '?'} "
        f"({bundle.spec_note}); code {bundle.code_version}",
        f"log: {bundle.log.ui_url or '-'}",
        f"     REST GET {bundle.log.api_path or '-'}",
        f"     file {bundle.log.file or '-'}",
    ]
    if bundle.sample:
        lines += ["input (a sample, secrets redacted):", _indented(bundle.sample)]
    lines += ["arguments:", _indented(bundle.arguments)]
    if bundle.cut:
        lines.append(f"cut to stay within bounds: {', '.join(bundle.cut)}")
    traceback = bundle.error.traceback.rstrip().splitlines()
    shown = traceback[-TRACEBACK_LINES:]
    cut = (
        f", its last {len(shown)} of {len(traceback)} lines (--json: all)"
        if len(shown) < len(traceback)
        else ""
    )
    lines += [f"traceback{cut}:", _indented_text("\n".join(shown))]
    if with_spec and bundle.spec:
        lines += ["spec:", _indented(bundle.spec.spec)]
    return "\n".join(lines)


def _new_causes(bundle: DebugBundle) -> list[str]:
    """The causes, each named by its type; the message again only where it says more."""
    causes = []
    for cause in bundle.error.chain:
        name, _, message = cause.partition(": ")
        causes.append(name if message == bundle.error.message else cause)
    return causes


def _list_failures(spec: PipelineSpec, store: ObjectStore) -> int:
    from loopline.records import RecordStage, RecordStore

    failures = list(RecordStore(store, spec.data.bucket).records(spec.name, RecordStage.FAILURE))
    if not failures:
        print(f"{spec.name}: no failed task has been recorded")
        return 0
    print(f"{spec.name}: the latest {min(LATEST, len(failures))} failed tries, newest last")
    for record in failures[-LATEST:]:
        reason = (record.reasons[0] if record.reasons else record.verdict).splitlines()[0]
        print(
            f"  {record.ended_at:%Y-%m-%d %H:%M:%S}  {record.dag_id}  {record.run_id}  "
            f"{record.subject}  {record.verdict}: {reason[:120]}"
        )
    print(f"details: loopline debug {spec.name} '<run id>'")
    return 0


def _indented(value: object) -> str:
    return _indented_text(json.dumps(value, indent=2, sort_keys=True, default=str))


def _indented_text(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.rstrip().splitlines())


__all__ = ["describe", "print_debug"]
