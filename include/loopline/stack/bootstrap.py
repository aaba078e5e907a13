"""Demo bootstrap: a fresh stack lands a first demo batch and trains a first champion.

Both go through Airflow's REST API, the way a user would, so that `stack up` ends with data
to look at and a model that batch scoring can use.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loopline.plan import dag_id as plan_dag_id
from loopline.stack.airflow_api import AirflowApi
from loopline.stack.console import echo

if TYPE_CHECKING:
    from loopline.spec import PipelineSpec
    from loopline.storage.objects import ObjectStore

# A first batch large enough to train a first model that passes the thresholds.
FIRST_BATCH_ROWS = 20_000


@dataclass
class DemoBootstrap:
    api: AirflowApi
    store: ObjectStore
    timeout: float

    def seed_demo_data(self, specs: Iterable[PipelineSpec]) -> None:
        """Land a first batch for each demo pipeline that has no data anywhere yet."""
        for spec in specs:
            if spec.demo is None:
                continue
            if self._has_data(spec):
                echo(f"    {spec.name}: data already present")
                continue
            conf = {"rows": max(spec.demo.rows, FIRST_BATCH_ROWS)}
            run, state = self._run(spec, "demo_feed", conf)
            if state != "success":
                raise RuntimeError(f"{run} ended {state}; see the Airflow UI")
            echo(
                f"    {spec.name}: landed a batch in s3://{spec.data.bucket}/"
                f"{spec.data.landing_prefix}"
            )

    def ensure_champions(self, specs: Iterable[PipelineSpec]) -> None:
        """Train a first model where a demo pipeline has none, so that scoring has one."""
        from loopline.registry import CHAMPION, ModelRegistry

        for spec in specs:
            if spec.demo is None:
                continue
            registry = ModelRegistry(self.store, spec.data.bucket)
            if (version := registry.alias(spec.name, CHAMPION)) is not None:
                echo(f"    {spec.name}: champion is version {version}")
                continue
            self._wait_for_validated_data(spec)
            run, state = self._run(spec, "train", {"reason": "first model, on the demo data"})
            version = registry.alias(spec.name, CHAMPION)
            if state != "success" or version is None:
                raise RuntimeError(
                    f"{run} ended {state} without a champion; see its judge task in the Airflow UI"
                )
            record = registry.get(spec.name, version)
            metrics = ", ".join(f"{k} {v:.3f}" for k, v in sorted(record.metrics.items()))
            echo(f"    {spec.name}: champion is version {version} ({metrics})")

    def _run(self, spec: PipelineSpec, stage: str, conf: dict[str, Any]) -> tuple[str, str]:
        """Trigger the `stage` DAG of `spec` and wait; return the run's name and end state."""
        dag_id = plan_dag_id(spec.name, stage)
        run_id = self.api.trigger(dag_id, conf)
        echo(f"    {spec.name}: triggered {dag_id} ({run_id}), waiting")
        state = self.api.wait_for_run(dag_id, run_id, timeout=self.timeout)
        return f"{dag_id} run {run_id}", state

    def _has_data(self, spec: PipelineSpec) -> bool:
        data = spec.data
        prefixes = (data.landing_prefix, data.validated_prefix, data.quarantine_prefix)
        return any(next(self.store.list_keys(data.bucket, p), None) for p in prefixes)

    def _wait_for_validated_data(self, spec: PipelineSpec) -> None:
        """The landed batch reaches training only once the validation gate has passed it."""
        data, deadline = spec.data, time.monotonic() + self.timeout
        while next(self.store.list_keys(data.bucket, data.validated_prefix), None) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"no validated data for {spec.name} after {self.timeout}s; "
                    f"see {plan_dag_id(spec.name, 'validate')} in the Airflow UI"
                )
            time.sleep(2)
