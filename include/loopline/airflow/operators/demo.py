"""Operator that lands a synthetic demo batch on S3."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from airflow.sdk import Context

from loopline.airflow.lineage import NOTHING, TaskLineage, s3_object
from loopline.airflow.operators.base import ObjectStoreOperator, announce


class LandDemoBatchOperator(ObjectStoreOperator):
    """Generate one seeded batch for a pipeline and write it create-only to its landing prefix.

    :param batch: the batch's knobs (rows, file_format, seed, mean_shift, drifted_features,
        new_category_share, label_shift); templated, usually from the run's Params.
    :param aws_conn_id: connection to S3 or an S3-compatible server.
    """

    template_fields = ("batch",)
    ui_color = "#d7ecfb"

    def __init__(
        self,
        *,
        pipeline: str,
        bucket: str,
        landing_prefix: str,
        batch: dict[str, Any],
        base_seed: int = 7,
        fraud_rate: float = 0.05,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self.bucket = bucket
        self.landing_prefix = landing_prefix
        self.batch = batch
        self.base_seed = base_seed
        self.fraud_rate = fraud_rate

    def execute(self, context: Context) -> dict[str, Any]:
        from loopline.demo.feed import FeedTarget, land_batch, request_from_params, safe_batch_id

        request = request_from_params(
            self.batch,
            batch_id=safe_batch_id(context["run_id"]),
            base_seed=self.base_seed,
            fraud_rate=self.fraud_rate,
            logical_date=context.get("logical_date") or context["dag_run"].run_after,
        )
        self.log.info("Landing batch %s: %s", request.batch_id, request)
        target = FeedTarget(self.pipeline, self.bucket, self.landing_prefix)
        landed = land_batch(self.store, target, request)
        announce(
            context, self.outlets, {"key": landed.key, "rows": landed.rows, "sha256": landed.sha256}
        )
        return asdict(landed)

    def lineage(self, run_id: str | None, outcome: Any) -> TaskLineage:
        """The landed object (its key is known once landed)."""
        if outcome is None:
            return NOTHING
        return TaskLineage.of(outputs=[s3_object(self.bucket, outcome["key"])])
