"""Registered versions and their judgements without TensorFlow: placeholder artifacts, and
judgement records written by the judge's own `record_judgement` from the real gates
(`decide`) on measurements given as numbers. For the unit tier's manual promotion and
serving checks, on the real S3 server."""

from __future__ import annotations

from pathlib import Path

from loopline.promotion.gates import Measurement, decide
from loopline.promotion.judge import Judgement, record_judgement
from loopline.records import RunContext
from loopline.registry import CHAMPION, ModelRegistry
from loopline.spec import PipelineSpec, load_spec
from loopline.storage.objects import ObjectStore

from support.paths import PIPELINES

SPEC = load_spec(PIPELINES / "card_fraud.yaml")
SCHEMA = [{"name": "amount", "type": "float32"}]


def empty_registry(s3) -> ModelRegistry:
    store = ObjectStore(s3.client())
    store.ensure_bucket(SPEC.data.bucket)
    return ModelRegistry(store, SPEC.data.bucket)


def placeholder_artifacts(parent: Path, content: str) -> Path:
    """A folder of the files a version holds (model.keras, saved_model/...), not a model."""
    folder = parent / content
    (folder / "saved_model" / "variables").mkdir(parents=True)
    (folder / "model.keras").write_text(f"weights of {content}")
    (folder / "saved_model" / "saved_model.pb").write_text(f"graph of {content}")
    (folder / "saved_model" / "variables" / "variables.index").write_text(content)
    return folder


def register(registry: ModelRegistry, tmp_path: Path) -> int:
    folder = tmp_path / f"v{len(registry.versions(SPEC.name)) + 1}"
    folder.mkdir()
    (folder / "model.keras").write_text(folder.name)
    return registry.register(SPEC.name, folder, metrics={}, input_schema=SCHEMA).version


def measured(auc: float) -> Measurement:
    return Measurement({"auc": auc, "logloss": 0.3, "accuracy": 0.9}, 5.0, 1.0, SCHEMA)


def judge_as(
    registry: ModelRegistry, version: int, auc: float, run_id: str, spec: PipelineSpec = SPEC
) -> Judgement:
    """Judge `version` as if it measured `auc` against the champion's 0.90, as the train DAG
    does, and record it."""
    champion = registry.alias(spec.name, CHAMPION)
    incumbent = measured(0.90) if champion is not None else None
    decision = decide(measured(auc), incumbent, spec.promotion)
    judgement = Judgement(version=version, champion=champion, decision=decision)
    run = RunContext(spec.name, run_id, dag_id=f"{spec.name}.train", task_id="judge")
    record_judgement(registry, judgement, measured(auc), incumbent, run)
    return judgement


def crown(registry: ModelRegistry, version: int) -> None:
    """Make `version` champion as the train DAG's promote task would."""
    registry.move_alias(
        SPEC.name,
        CHAMPION,
        version,
        expected=registry.alias(SPEC.name, CHAMPION),
        action="promote",
        reason="beat champion",
        by="airflow:card_fraud.train/test",
    )


def promote_in_turn(registry: ModelRegistry, tmp_path: Path, versions: int) -> None:
    """Register placeholder versions 1..n and promote each in turn."""
    for version in range(1, versions + 1):
        folder = tmp_path / f"v{version}"
        folder.mkdir()
        (folder / "model.keras").write_text(f"v{version}")
        registry.register("card_fraud", folder, metrics={}, input_schema=[])
        registry.move_alias(
            "card_fraud",
            CHAMPION,
            version,
            expected=version - 1 or None,
            action="promote",
            reason="test",
            by="test",
        )
