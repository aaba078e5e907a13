"""Hooks: an Airflow connection turned into the object a stage library works with."""

from loopline.airflow.hooks.kafka import KafkaBootstrapHook
from loopline.airflow.hooks.kubernetes import KubernetesApiHook
from loopline.airflow.hooks.object_store import ObjectStoreHook

__all__ = ["KafkaBootstrapHook", "KubernetesApiHook", "ObjectStoreHook"]
