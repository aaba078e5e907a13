"""``loopline records <pipeline>``: what each stage of a pipeline decided, one line each."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from loopline.records import RecordStage, RecordStore

if TYPE_CHECKING:
    from loopline.spec import PipelineSpec
    from loopline.storage.objects import ObjectStore


def print_records(args: argparse.Namespace, spec: PipelineSpec, store: ObjectStore) -> int:
    stage = RecordStage(args.stage) if args.stage else None
    found = list(RecordStore(store, spec.data.bucket).records(spec.name, stage, args.run))
    if not found:
        print(f"{spec.name}: no records yet")
        return 0
    print(f"{'ended (UTC)':19}  {'stage':13}  {'verdict':12}  {'subject':28}  run")
    for record in found:
        print(
            f"{record.ended_at:%Y-%m-%d %H:%M:%S}  {record.stage:13}  {record.verdict:12}  "
            f"{record.subject[:28]:28}  {record.run_id}"
        )
        for reason in record.reasons[:3]:
            print(f"{'':19}  - {reason}")
    return 0
