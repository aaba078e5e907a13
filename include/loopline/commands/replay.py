"""``loopline replay quarantine|dead-letters <pipeline>``: quarantined files back to landing
(``--validate``: through the gate at once), dead letters back to the input topic, through the
same library functions as the ``<pipeline>.replay`` DAG, recorded with ``cli:<user>@<host>`` as
the run. Exits 1 when something was refused (or, validated at once, quarantined again).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI imports this module to build its parser: these load on use
    from loopline.spec import PipelineSpec
    from loopline.storage.objects import ObjectStore

WHAT = ("quarantine", "dead-letters")


def add_replay_parser(commands: argparse._SubParsersAction) -> None:
    replay = commands.add_parser(
        "replay",
        help="quarantined files back to landing (validated again), or dead letters back to "
        "the input topic; keys already validated or scored are reported, not done twice",
    )
    replay.add_argument("what", choices=WHAT)
    replay.add_argument("pipeline", help="pipeline name")
    replay.add_argument(
        "targets",
        nargs="*",
        help="quarantine: keys, s3:// URIs or prefixes under the quarantine prefix",
    )
    replay.add_argument(
        "--validate", action="store_true", help="quarantine: validate each file now"
    )
    replay.add_argument(
        "--max", type=int, default=1000, dest="max_events", help="dead-letters: at most N"
    )
    replay.add_argument(
        "--force",
        action="store_true",
        help="dead-letters: replay events already scored, and letters a replay settled",
    )
    replay.add_argument(
        "--from",
        dest="offsets",
        action="append",
        default=[],
        metavar="PARTITION:OFFSET",
        help="dead-letters: start this partition there (repeatable; others: the start)",
    )
    replay.add_argument(
        "--max-scan",
        type=int,
        default=1_000_000,
        help="dead-letters: predictions read at most to find scored events",
    )
    replay.add_argument("--bootstrap", help="dead-letters: the broker (default: the stack's)")


def replay_quarantine(
    args: argparse.Namespace, spec: PipelineSpec, store: ObjectStore, suite_path: Path
) -> int:
    from loopline.commands.consumers import cli_run
    from loopline.validation.replay import replay_quarantined

    if not args.targets:
        raise SystemExit(
            f"name the quarantined files: keys or prefixes under {spec.data.quarantine_prefix}"
        )
    suite = None
    if args.validate:
        from loopline.validation.suites import load_suite

        suite = load_suite(suite_path)
    run = cli_run(spec, "replay")
    replay = replay_quarantined(store, spec, args.targets, run, validate_with=suite)
    for replayed in replay.files:
        print(replayed.summary())
    settled = [f for f in replay.requeued if f.validation and f.validation["passed"]]
    pending = len(replay.requeued) - len(settled) if args.validate else 0
    print(
        f"{len(replay.requeued)} requeued, {len(replay.refused)} refused"
        + (f", {len(settled)} passed validation now" if args.validate else "")
        + f" (run {run.run_id})"
    )
    return 1 if replay.refused or pending or not replay.files else 0


def replay_dead_letters(args: argparse.Namespace, spec: PipelineSpec, store: ObjectStore,
                        bootstrap: str) -> int:  # fmt: skip
    from loopline.commands.consumers import cli_run
    from loopline.records import RecordStore
    from loopline.streaming import replay

    if spec.streaming is None:
        raise SystemExit(f"{spec.name} has no streaming section: it has no dead letters")
    if args.max_events < 1 or args.max_scan < 1:
        raise SystemExit("replay --max and --max-scan must be 1 or more")
    run = cli_run(spec, "replay")
    outcome = replay.replay_dead_letters(
        bootstrap,
        spec,
        run,
        RecordStore(store, spec.data.bucket),
        max_events=args.max_events,
        start_offsets=start_offsets(args.offsets),
        force=args.force,
        max_scan=args.max_scan,
    )
    print(outcome.summary())
    for reason in outcome.reasons():
        print(f"  {reason}")
    print(f"(run {run.run_id})")
    return 1 if outcome.refused else 0


def start_offsets(given: list[str]) -> dict[int, int]:
    """``--from PARTITION:OFFSET`` values as {partition: offset}; SystemExit naming a bad one."""
    offsets: dict[int, int] = {}
    for text in given:
        partition, _, offset = text.partition(":")
        try:
            offsets[int(partition)] = int(offset)
        except ValueError:
            raise SystemExit(f"--from {text!r}: expected PARTITION:OFFSET, e.g. 0:1200") from None
        if offsets[int(partition)] < 0 or int(partition) < 0:
            raise SystemExit(f"--from {text!r}: partition and offset are 0 or more")
    return offsets
