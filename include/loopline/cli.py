"""The ``loopline`` command: the local stack, pipeline specs, suites and the model registry."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="loopline", description=__doc__)
    parser.add_argument(
        "--project",
        type=Path,
        default=Path.cwd(),
        help="project root (default: the current folder)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    stack = commands.add_parser("stack", help="the embedded local stack")
    stack.add_argument("action", choices=["up", "down", "status"])
    stack.add_argument("--no-demo-data", action="store_true", help="do not land a first demo batch")

    spec = commands.add_parser("spec", help="pipeline specs")
    spec.add_argument("action", choices=["check"])
    spec.add_argument(
        "paths",
        nargs="*",
        type=Path,
        help="spec files (default: every spec under include/pipelines)",
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
        "when LOOPLINE_S3=aws)",
    )
    models.add_argument("action", choices=["list", "show", "promote", "rollback"])
    models.add_argument("pipeline", help="pipeline (= model) name")
    models.add_argument("version", nargs="?", help="show/promote: a version number or an alias")
    models.add_argument("--reason", default="", help="promote/rollback: why (kept in history)")

    args = parser.parse_args(argv)
    if args.command == "stack":
        return _stack(args)
    if args.command == "models":
        from loopline.registry.cli import run_models_command

        return run_models_command(args)
    if args.command == "suite":
        return _profile_suite(args)
    return _check_specs(args)


def _profile_suite(args: argparse.Namespace) -> int:
    from loopline.plan import ProjectPaths
    from loopline.spec import load_spec
    from loopline.validation.profiling import profile_suite, write_suite
    from loopline.validation.reading import UnreadableFile, read_batch

    paths = ProjectPaths.beside(args.project / "include" / "pipelines")
    spec = load_spec(paths.pipelines / f"{args.pipeline}.yaml")
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
    else:
        for name, pid in local.status().items():
            print(f"{name:24} {'running (pid ' + str(pid) + ')' if pid else 'stopped'}")
    return 0


def _check_specs(args: argparse.Namespace) -> int:
    from loopline.plan import ProjectPaths, plan_pipeline
    from loopline.spec import SpecError, load_spec
    from loopline.spec.loader import spec_files

    folder = args.project / "include" / "pipelines"
    paths = args.paths or spec_files(folder)
    failed = 0
    for path in paths:
        try:
            spec = load_spec(path)
        except SpecError as error:
            failed += 1
            print(f"FAIL {error}")
            continue
        project = ProjectPaths.beside(Path(path).parent)
        if not project.suite_file(spec).is_file():
            failed += 1
            print(f"FAIL {path}: data.expectation_suite: no suite file {project.suite_file(spec)}")
            continue
        dags = ", ".join(plan.dag_id for plan in plan_pipeline(spec, project))
        print(f"ok   {path}: pipeline {spec.name} -> {dags}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
