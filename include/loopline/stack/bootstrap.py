"""Demo bootstrap: a fresh stack lands a first demo batch and trains a first champion.

Both go through Airflow's REST API, the way a user would, so that `stack up` ends with data
to look at and a model that batch scoring can use.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
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
    # The batch each pipeline's first demo run landed (its file's name starts with it): the
    # first model trains once that batch is validated, not on whatever a scheduled demo run
    # landed meanwhile (5,000 rows: a first model on those alone missed the AUC threshold).
    first_batches: dict[str, str] = field(default_factory=dict)
    # (run id, task id) of each approval request already printed: said once, not every poll.
    approvals_announced: set[tuple[str, str]] = field(default_factory=set)

    def seed_demo_data(self, specs: Iterable[PipelineSpec]) -> None:
        """Land a first batch for each demo pipeline that has no data anywhere yet."""
        for spec in specs:
            if spec.demo is None:
                continue
            # Data and a champion: a restarted stack. Data alone may be a scheduled demo run
            # that landed while the stack came up (5,000 rows, too few for a first model).
            if self._has_data(spec) and self._has_champion(spec):
                echo(f"    {spec.name}: data already present")
                continue
            from loopline.demo.feed import safe_batch_id

            conf = {"rows": max(spec.demo.rows, FIRST_BATCH_ROWS)}
            run, run_id, state = self._run(spec, "demo_feed", conf)
            if state != "success":
                raise RuntimeError(f"{run} ended {state}; see the Airflow UI")
            self.first_batches[spec.name] = safe_batch_id(run_id)
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
            conf = {"reason": "first model, on the demo data"}
            run, _, state = self._run(spec, "train", conf, while_waiting=self._say_who_approves)
            version = registry.alias(spec.name, CHAMPION)
            if state != "success" or version is None:
                raise RuntimeError(
                    f"{run} ended {state} without a champion; see its judge task in the Airflow UI"
                )
            record = registry.get(spec.name, version)
            metrics = ", ".join(f"{k} {v:.3f}" for k, v in sorted(record.metrics.items()))
            echo(f"    {spec.name}: champion is version {version} ({metrics})")

    def _run(
        self,
        spec: PipelineSpec,
        stage: str,
        conf: dict[str, Any],
        while_waiting: Callable[[str, str], None] | None = None,
    ) -> tuple[str, str, str]:
        """Trigger the `stage` DAG of `spec` and wait; the run's name, id and end state."""
        dag_id = plan_dag_id(spec.name, stage)
        run_id = self.api.trigger(dag_id, conf)
        echo(f"    {spec.name}: triggered {dag_id} ({run_id}), waiting")
        poll = partial(while_waiting, dag_id, run_id) if while_waiting else None
        state = self.api.wait_for_run(dag_id, run_id, timeout=self.timeout, while_waiting=poll)
        return f"{dag_id} run {run_id}", run_id, state

    def _say_who_approves(self, dag_id: str, run_id: str) -> None:
        """With `promotion.require_approval` the first model waits for a person too: the
        stack does not answer for them (nor, under FAB, could it for a named approver). Say
        once who may, and where; the wait goes on until they have (LOOPLINE_BOOT_TIMEOUT)."""
        for request in self.api.pending_approvals(dag_id, run_id):
            task = request["task_instance"]["task_id"]
            if (run_id, task) in self.approvals_announced:
                continue
            self.approvals_announced.add((run_id, task))
            named = ", ".join(user["name"] for user in request["assigned_users"])
            echo(
                f"    {request['subject']} It waits for {named or 'anyone who may answer it'}: "
                f"the Airflow UI's Required actions, or PATCH /api/v2/dags/{dag_id}/dagRuns/"
                f'{run_id}/taskInstances/{task}/-1/hitlDetails {{"chosen_options": ["Approve"]}}'
            )

    def _has_champion(self, spec: PipelineSpec) -> bool:
        from loopline.registry import CHAMPION, ModelRegistry

        return ModelRegistry(self.store, spec.data.bucket).alias(spec.name, CHAMPION) is not None

    def _has_data(self, spec: PipelineSpec) -> bool:
        data = spec.data
        prefixes = (data.landing_prefix, data.validated_prefix, data.quarantine_prefix)
        return any(next(self.store.list_keys(data.bucket, p), None) for p in prefixes)

    def _wait_for_validated_data(self, spec: PipelineSpec) -> None:
        """The landed batch reaches training only once the validation gate has passed it:
        the first demo batch when this `up` landed one, else any validated data."""
        deadline = time.monotonic() + self.timeout
        batch = self.first_batches.get(spec.name)
        while not self._validated(spec, batch):
            if batch and self._quarantined(spec, batch):
                raise RuntimeError(
                    f"the first demo batch of {spec.name} ({batch}) was quarantined; see "
                    f"{plan_dag_id(spec.name, 'validate')} in the Airflow UI"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"no validated data for {spec.name} after {self.timeout}s; "
                    f"see {plan_dag_id(spec.name, 'validate')} in the Airflow UI"
                )
            time.sleep(2)

    def _validated(self, spec: PipelineSpec, batch: str | None) -> bool:
        return self._holds(spec.data.validated_prefix, spec, batch)

    def _quarantined(self, spec: PipelineSpec, batch: str) -> bool:
        return self._holds(spec.data.quarantine_prefix, spec, batch)

    def _holds(self, prefix: str, spec: PipelineSpec, batch: str | None) -> bool:
        """Whether `prefix` holds the batch's file (any object, with no batch)."""
        keys = self.store.list_keys(spec.data.bucket, prefix)
        if batch is None:
            return next(keys, None) is not None
        return any(key.rsplit("/", 1)[-1].startswith(batch + ".") for key in keys)
