"""The ``loopline`` command: the local stack, specs and suites, the registry, and what the loop
recorded (records, drift, traces, debug bundles, cost), the streams and their consumers."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from loopline.runtime.files import state_dir

if TYPE_CHECKING:
    from loopline.spec import PipelineSpec
    from loopline.storage.objects import ObjectStore


# Commands that read or change one pipeline's state on S3: the function each runs, called
# with the parsed arguments, the pipeline's spec and the object store (`object_store_for_cli`).
# Imported on use: the parser itself stays light.
PIPELINE_STORE_COMMANDS = {
    "models": ("loopline.commands.models", "run_models_command"),
    "records": ("loopline.commands.records", "print_records"),
    "drift": ("loopline.commands.drift", "print_drift_history"),
    "debug": ("loopline.commands.debug", "print_debug"),
    "cost": ("loopline.commands.cost", "print_cost"),
}


def main(argv: list[str] | None = None) -> int:
    """Run one command; S3 that cannot be reached or refuses the credentials is a message
    saying what to check, not a botocore traceback."""
    try:
        return _main(argv)
    except Exception as exc:
        if not type(exc).__module__.startswith(("botocore", "boto3")):
            raise
        print(
            f"error: S3 answered {type(exc).__name__}: {exc}\n"
            "The commands use the local stack's S3 when one was started in this project "
            "(make run), else AWS's default credential chain (LOOPLINE_S3_MODE=aws forces "
            "it). `loopline doctor` checks which one is set up and what is wrong.",
            file=sys.stderr,
        )
        return 2


def _prediction_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """How `trace` and `explain` find one prediction: by key or event id, in the batch output
    of the last days or the output topic."""
    parser.add_argument("pipeline", help="pipeline name")
    parser.add_argument("id", help="the row's key (data.key) or the event id")
    parser.add_argument("--source", choices=["any", "batch", "stream"], default="any")
    parser.add_argument("--days", type=int, default=30, help="batch output searched (days)")
    parser.add_argument(
        "--max-records", type=int, default=1_000_000, help="stream output records read at most"
    )
    parser.add_argument("--bootstrap", help="the broker (default: the local stack's)")
    parser.add_argument("--json", action="store_true", help=f"{what} as JSON")


def _main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="loopline", description=__doc__)
    parser.add_argument(
        "--project",
        type=Path,
        default=Path.cwd(),
        help="project root (default: the current folder)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    stack = commands.add_parser("stack", help="the embedded local stack")
    stack.add_argument("action", choices=["up", "down", "status", "snapshot"])
    stack.add_argument("--no-demo-data", action="store_true", help="do not land a first demo batch")
    stack.add_argument(
        "--allow-deletes",
        action="store_true",
        help="snapshot: save even if buckets or most objects were deleted (refused otherwise)",
    )

    specs = commands.add_parser("spec", help="pipeline specs")
    specs.add_argument("action", choices=["check", "schema"])
    specs.add_argument(
        "paths",
        nargs="*",
        type=Path,
        help="check: spec files (default: every spec under include/pipelines)",
    )
    specs.add_argument(
        "--output",
        type=Path,
        help="schema: where to write the JSON Schema (default: include/pipeline.schema.json)",
    )

    suite = commands.add_parser("suite", help="expectation suites")
    suite.add_argument("action", choices=["profile"])
    suite.add_argument("pipeline", help="pipeline name (its spec gives columns and key)")
    suite.add_argument("data", type=Path, help="a trusted file: .parquet, .csv or .jsonl")
    suite.add_argument("--output", type=Path, help="default: the spec's suite file")
    suite.add_argument("--force", action="store_true", help="replace an existing suite")

    models = commands.add_parser(
        "models",
        help="the model registry on S3 (the local stack's, or AWS's default credential chain "
        "when LOOPLINE_S3_MODE=aws)",
    )
    models.add_argument("action", choices=["list", "show", "promote", "rollback", "shadow"])
    models.add_argument("pipeline", help="pipeline (= model) name")
    models.add_argument(
        "version",
        nargs="?",
        help="show/promote/shadow: a version number or an alias (shadow: the challenger)",
    )
    models.add_argument(
        "--days", type=int, default=7, help="shadow: the days of live traffic compared"
    )
    models.add_argument("--reason", default="", help="promote/rollback: why (kept in history)")
    models.add_argument(
        "--force",
        action="store_true",
        help="promote: override failed checks (needs --reason; recorded as forced)",
    )

    records = commands.add_parser(
        "records", help="what each stage decided: the pipeline's records, oldest first"
    )
    records.add_argument("pipeline", help="pipeline name")
    records.add_argument("--stage", help="only this stage (validation, training, promotion...)")
    records.add_argument("--run", help="only this run id")

    debug = commands.add_parser(
        "debug",
        help="what a failed task left: its debug bundle (error, input sample, spec, log); "
        "without a run, the pipeline's latest failures",
    )
    debug.add_argument("pipeline", help="pipeline name")
    debug.add_argument("run", nargs="?", help="the run id, as the Airflow UI shows it")
    debug.add_argument("--json", action="store_true", help="the bundles as stored (JSON)")
    debug.add_argument("--spec", action="store_true", help="print the spec the run used too")

    trace = commands.add_parser(
        "trace",
        help="where one prediction came from: model version, training run and snapshot, landed "
        "file and validation (batch) or topic/partition/offset (stream), drift audits",
    )
    _prediction_arguments(trace, "the trace")

    explain = commands.add_parser(
        "explain",
        help="why one prediction scored what it did: per-feature attributions (SHAP) from the "
        "version that made it, adding up to the score",
    )
    _prediction_arguments(explain, "the explanation")
    explain.add_argument(
        "--background", type=int, default=100, help="holdout rows the base value averages"
    )

    cost = commands.add_parser(
        "cost",
        help="what the pipeline's tasks cost: per stage, model version and run; rows/s; "
        "core-hours a day",
    )
    cost.add_argument("pipeline", help="pipeline name")

    drift = commands.add_parser(
        "drift", help="drift audits: each audit's verdict, decision and what retraining came to"
    )
    drift.add_argument("action", choices=["history"])
    drift.add_argument("pipeline", help="pipeline name")
    drift.add_argument("--feature", help="one feature's (or the label's) score over the audits")

    doctor = commands.add_parser(
        "doctor", help="check the environment the loop needs; print each problem with its fix"
    )
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    doctor.add_argument("--bootstrap", help="the broker (default: the local stack's)")
    doctor.add_argument("--timeout", type=float, default=5.0, help="seconds per network call")

    reproduce = commands.add_parser(
        "reproduce",
        help="retrain a version from its recorded snapshot (checked by sha256), settings and "
        "seed; register it as a new version (no alias moves) and compare the holdout metrics",
    )
    reproduce.add_argument("pipeline", help="pipeline (= model) name")
    reproduce.add_argument("version", help="a version number or an alias")
    reproduce.add_argument(
        "--tolerance", type=float, help="largest |difference| per metric (default: 1e-6)"
    )

    from loopline.commands.consumers import ACTIONS as CONSUMER_ACTIONS
    from loopline.commands.stream import TOPICS as STREAM_TOPICS  # light: kafka loads on use

    stream = commands.add_parser(
        "stream",
        help="watch (tail) or feed (produce) a pipeline's Kafka topics; ask its online endpoint "
        "(infer); deploy, roll, scale, stop its consumers or show their status (as the "
        "stream_deploy DAG does, recorded)",
    )
    stream.add_argument("action", choices=["tail", "produce", "infer", *CONSUMER_ACTIONS])
    stream.add_argument("pipeline", help="pipeline name")
    stream.add_argument("--topic", choices=STREAM_TOPICS, default="output")
    stream.add_argument("--from-beginning", action="store_true", help="tail: from the start")
    stream.add_argument(
        "-n",
        "--count",
        type=int,
        help="tail: stop after N; produce, infer: N generated events (the demo feed's for "
        "card_fraud, synthetic values of each feature's declared type for other pipelines)",
    )
    stream.add_argument("--idle", type=float, help="tail: stop after this many idle seconds")
    stream.add_argument(
        "--file",
        help="produce: JSON lines to send ('-': stdin), each object keyed by its data.key "
        "field (else its event_id)",
    )
    stream.add_argument("--rate", type=float, help="produce: events per second (default: flat out)")
    stream.add_argument("--seed", type=int, default=7, help="produce: generated events' seed")
    stream.add_argument("--bootstrap", help="default: the local stack's broker")
    stream.add_argument(
        "--url", help="infer: the endpoint (default: streaming.serve's host and http_port)"
    )
    stream.add_argument(
        "--print-request",
        action="store_true",
        help="infer: print the v2 request (for curl) instead of sending it",
    )
    stream.add_argument(
        "--version",
        help="deploy/roll/scale: 'champion' (default) or a version that passed its judgement; "
        "shadow: the challenger to score in shadow ('none' stops it)",
    )
    stream.add_argument(
        "--share", type=float, help="shadow: of events and requests (default: promotion.shadow's)"
    )
    stream.add_argument(
        "--replicas",
        type=int,
        help="deploy/scale: how many (default: as many as run, at least replicas.min); kept "
        "within replicas.min..min(replicas.max, partitions)",
    )

    from loopline.commands.replay import add_replay_parser  # light: work loads on use

    add_replay_parser(commands)

    args = parser.parse_args(argv)
    if args.command == "stack":
        return _stack(args)
    if args.command == "doctor":
        from loopline.commands.doctor import run_doctor
        from loopline.stack.doctor import doctor_targets

        aws = _s3_mode_is_aws()
        pipelines = pipelines_dir(args.project)
        targets = doctor_targets(
            args.project, pipelines, bootstrap=args.bootstrap, aws=aws, timeout=args.timeout
        )
        return run_doctor(args, targets)
    if args.command in PIPELINE_STORE_COMMANDS:  # one pipeline's state on S3
        module, function = PIPELINE_STORE_COMMANDS[args.command]
        command = getattr(importlib.import_module(module), function)
        spec = _load_pipeline(args.project, args.pipeline)
        return int(command(args, spec, object_store_for_cli(args.project)))
    if args.command == "trace":
        from loopline.commands.trace import print_trace

        spec = _load_pipeline(args.project, args.pipeline)
        if args.days < 1 or args.max_records < 1:
            parser.error("trace --days and --max-records must be 1 or more")
        bootstrap = args.bootstrap or _optional_bootstrap(args.project)
        return print_trace(args, spec, object_store_for_cli(args.project), bootstrap)
    if args.command == "explain":
        from loopline.commands.explain import print_explanation

        spec = _load_pipeline(args.project, args.pipeline)
        if min(args.days, args.max_records, args.background) < 1:
            parser.error("explain --days, --max-records and --background must be 1 or more")
        bootstrap = args.bootstrap or _optional_bootstrap(args.project)
        return print_explanation(args, spec, object_store_for_cli(args.project), bootstrap)
    if args.command == "reproduce":
        from loopline.commands.reproduce import run_reproduce_command

        spec_path = _spec_path(args.project, args.pipeline)
        return run_reproduce_command(args, spec_path, object_store_for_cli(args.project))
    if args.command == "stream":
        from loopline.commands import stream as streams

        spec = _load_pipeline(args.project, args.pipeline)
        if args.action == "infer":
            if args.count is not None and args.count < 1:
                parser.error(f"stream infer --count must be 1 or more, not {args.count}")
            return streams.infer(args, spec)
        bootstrap = args.bootstrap or _local_bootstrap(args.project)
        if args.action in CONSUMER_ACTIONS:
            shadow_ok = args.version == "none" or (args.version or "").isdigit()
            if args.action == "shadow" and not shadow_ok:
                parser.error("stream shadow needs --version N (or --version none to stop it)")
            if args.share is not None and not 0 < args.share <= 1:
                parser.error(f"--share must be in (0, 1], not {args.share}")
            return _consumer_action(args, spec, bootstrap)
        if args.action == "produce" and not (args.file or args.count):
            parser.error("stream produce needs --file or --count")
        if args.action == "produce" and not args.file and args.count < 1:
            parser.error(f"stream produce --count must be 1 or more, not {args.count}")
        return (streams.tail if args.action == "tail" else streams.produce)(args, spec, bootstrap)
    if args.command == "replay":
        from loopline.commands import replay

        spec = _load_pipeline(args.project, args.pipeline)
        store = object_store_for_cli(args.project)
        if args.what == "quarantine":
            from loopline.plan import ProjectPaths

            suite_file = ProjectPaths.beside(pipelines_dir(args.project)).suite_file(spec)
            return replay.replay_quarantine(args, spec, store, suite_file)
        bootstrap = args.bootstrap or _local_bootstrap(args.project)
        return replay.replay_dead_letters(args, spec, store, bootstrap)
    if args.command == "suite":
        return _profile_suite(args)
    if args.action == "schema":
        return _write_spec_schema(args)
    return _check_specs(args)


def object_store_for_cli(project: Path) -> ObjectStore:
    """The S3 that commands use: the local stack's when one was started for `project`, else
    AWS's default credential chain (which honours AWS_ENDPOINT_URL for MinIO and the like).

    LOOPLINE_S3_MODE=aws forces the latter.
    """
    from loopline.storage.objects import ObjectStore

    force_aws = _s3_mode_is_aws()  # a wrong setting is refused before any client is built
    state = state_dir(project)
    if not force_aws and (state / "stack.json").exists():
        from loopline.stack.config import load_config
        from loopline.stack.local import LocalStack

        return ObjectStore(LocalStack(load_config(project, state)).s3_client())
    import boto3

    return ObjectStore(boto3.client("s3"))


def _consumer_action(args: argparse.Namespace, spec: PipelineSpec, bootstrap: str) -> int:
    from loopline.commands.consumers import open_consumers, run_consumer_action

    if args.replicas is not None and args.replicas < 0:
        raise SystemExit(f"--replicas must be 0 or more, not {args.replicas}")
    spec_path = _spec_path(args.project, args.pipeline)
    store = object_store_for_cli(args.project)
    consumers = open_consumers(
        spec,
        spec_path,
        store,
        bootstrap,
        _s3_settings_for_replicas(args.project),
        state_dir(args.project),
    )
    return run_consumer_action(args, consumers)


def _s3_settings_for_replicas(project: Path) -> str:
    """What local replicas read the registry with (they get no AWS_* variable: their
    environment is an allowlist): the local stack's S3 as its aws_default connection says,
    or, with LOOPLINE_S3_MODE=aws, what AWS's default chain resolves to now."""
    from loopline.storage.settings import S3Settings

    state = state_dir(project)
    if not _s3_mode_is_aws() and (state / "stack.json").exists():
        from loopline.stack.config import S3_ACCESS_KEY, S3_SECRET_KEY, load_config

        endpoint = load_config(project, state).s3_endpoint
        return S3Settings(endpoint, S3_ACCESS_KEY, S3_SECRET_KEY).to_json()
    import boto3

    session = boto3.Session()
    found = session.get_credentials()
    if found is None:
        raise SystemExit("no AWS credentials found (AWS's default chain): replicas need them")
    credentials = found.get_frozen_credentials()
    return S3Settings(
        endpoint_url=os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"),
        access_key=credentials.access_key,
        secret_key=credentials.secret_key,
        region=session.region_name or "us-east-1",
        session_token=credentials.token,
    ).to_json()


def _optional_bootstrap(project: Path) -> str | None:
    """The local stack's broker, or $LOOPLINE_KAFKA_BOOTSTRAP; None without either."""
    try:
        return _local_bootstrap(project)
    except SystemExit:
        return None


def _local_bootstrap(project: Path) -> str:
    """The local stack's broker, or $LOOPLINE_KAFKA_BOOTSTRAP."""
    if bootstrap := os.environ.get("LOOPLINE_KAFKA_BOOTSTRAP"):
        return bootstrap
    state = state_dir(project)
    if not (state / "stack.json").exists():
        raise SystemExit("no local stack here: start one (make run) or give --bootstrap")
    from loopline.stack.config import load_config

    return load_config(project, state).kafka_bootstrap


def _s3_mode_is_aws() -> bool:
    """LOOPLINE_S3_MODE=aws: AWS's default credential chain, even where a stack was started.
    (LOOPLINE_S3 has one meaning: the JSON S3 settings of the batch job and the replicas.)"""
    if os.environ.get("LOOPLINE_S3", "").strip() == "aws":
        raise SystemExit(
            "LOOPLINE_S3=aws is no longer read: LOOPLINE_S3 holds the S3 settings (JSON) of the "
            "batch job and the streaming replicas. For AWS's default credential chain set "
            "LOOPLINE_S3_MODE=aws (and unset LOOPLINE_S3)"
        )
    mode = os.environ.get("LOOPLINE_S3_MODE", "").strip()
    if mode not in ("", "aws"):
        raise SystemExit(
            f"LOOPLINE_S3_MODE={mode!r}: its one value is 'aws' (AWS's default credential "
            "chain); unset, the commands use the local stack's S3 when one was started here"
        )
    return mode == "aws"


def _profile_suite(args: argparse.Namespace) -> int:
    from loopline.data.reading import UnreadableFile, read_batch
    from loopline.plan import ProjectPaths
    from loopline.validation.profiling import profile_suite, write_suite

    paths = ProjectPaths.beside(pipelines_dir(args.project))
    spec = _load_pipeline(args.project, args.pipeline)
    try:
        table = read_batch(args.data.read_bytes(), args.data.name, spec.data.columns)
    except UnreadableFile as exc:
        print(f"cannot profile {args.data}: {exc.kind}: {exc.reason}")
        return 1
    document = profile_suite(table, spec.data, spec.data.expectation_suite, source=str(args.data))
    try:
        path = write_suite(document, args.output or paths.suite_file(spec), overwrite=args.force)
    except FileExistsError as exc:
        print(exc)
        return 1
    print(
        f"wrote {len(document['expectations'])} expectations from {table.num_rows} rows "
        f"to {path}; review it before use"
    )
    return 0


def _stack(args: argparse.Namespace) -> int:
    from loopline.stack.config import load_config
    from loopline.stack.local import LocalStack

    local = LocalStack(load_config(args.project))
    if args.action == "up":
        local.up(seed_demo_data=not args.no_demo_data)
    elif args.action == "down":
        local.down()
    elif args.action == "snapshot":
        from loopline.stack.s3_snapshot import DeletesRefused

        try:
            local.snapshot(allow_deletes=args.allow_deletes)
        except DeletesRefused as refused:
            print(refused, file=sys.stderr)
            return 1
    else:
        for name, pid in local.status().items():
            print(f"{name:24} {'running (pid ' + str(pid) + ')' if pid else 'stopped'}")
        for name, address in local.addresses().items():
            print(f"{name + ' at':24} {address}")
    return 0


def _check_specs(args: argparse.Namespace) -> int:
    """The check the DAG files run (``loopline.plan.check``): load, suite, plan."""
    from loopline.plan.check import check_pipelines

    check = check_pipelines(pipelines_dir(args.project), args.paths or None)
    for pipeline in check.pipelines:
        dags = ", ".join(plan.dag_id for plan in pipeline.dags)
        print(f"ok   {pipeline.path}: pipeline {pipeline.spec.name} -> {dags}")
    for error in check.errors:
        print(f"FAIL {error}")
    return 1 if check.errors else 0


def _load_pipeline(project: Path, name: str) -> PipelineSpec:
    """A pipeline's spec by name, from the folder the DAG files read, whatever its suffix."""
    from loopline.spec import load_spec

    return load_spec(_spec_path(project, name))


def _spec_path(project: Path, name: str) -> Path:
    """A pipeline's spec file by name, in the folder the DAG files read."""
    from loopline.plan import ProjectPaths

    return ProjectPaths.beside(pipelines_dir(project)).spec_file(name)


def _write_spec_schema(args: argparse.Namespace) -> int:
    """The spec's JSON Schema, for editors (see the README); beside, not among, the specs."""
    import json

    from loopline.spec.loader import spec_json_schema

    output = args.output or args.project / "include" / "pipeline.schema.json"
    output.write_text(json.dumps(spec_json_schema(), indent=2) + "\n")
    print(f"wrote the pipeline spec's JSON Schema to {output}")
    return 0


def pipelines_dir(project: Path) -> Path:
    """The spec folder: ``$LOOPLINE_PIPELINES_DIR``, as the DAG files read it, else the
    project's ``include/pipelines``."""
    from loopline.spec import pipelines_folder

    return pipelines_folder(project / "include" / "pipelines")


if __name__ == "__main__":
    sys.exit(main())
