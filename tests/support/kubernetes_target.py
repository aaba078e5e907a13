"""The demo pipeline as a Kubernetes deployment sees it: its spec and the consumer image a
cluster would run it from (unit and component Kubernetes tests render and apply the same)."""

from __future__ import annotations

from loopline.spec import load_spec
from loopline.spec.sections import KubernetesTarget
from loopline.streaming.kubernetes import ConsumerImage

from support.paths import PIPELINES

SPEC = load_spec(PIPELINES / "card_fraud.yaml")
IMAGE = ConsumerImage(
    target=KubernetesTarget(image="registry.example/loopline:1.2", s3_secret="loopline-s3"),
    spec_path="/usr/local/airflow/include/pipelines/card_fraud.yaml",
    bootstrap="kafka:9092",
)
