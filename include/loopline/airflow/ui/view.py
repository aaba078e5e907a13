"""The Loopline view's server side: a FastAPI app the Airflow api-server mounts (``plugins/
loopline_view.py``), with the JSON the view draws and the reports it links to.

Airflow does not authenticate a plugin's FastAPI app (apache/airflow#72655): every route here
declares its own dependency. Each one needs a logged-in user (401 without one), and a
pipeline's data needs read access to every DAG of that pipeline, as the auth manager decides
(403 otherwise; such a pipeline is not listed). The view triggers nothing itself: its rollback
button calls Airflow's own REST API, which applies Airflow's permissions.

Reports are HTML written from data (Evidently's, Great Expectations'): they are sent as
downloads under a ``sandbox`` Content-Security-Policy, so none runs in the UI's origin.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Response, status

if TYPE_CHECKING:
    from airflow.api_fastapi.auth.managers.models.base_user import BaseUser

    from loopline.plan.check import PlannedPipeline
    from loopline.storage.objects import ObjectStore

STATIC = Path(__file__).with_name("static")
BUNDLE = "loopline-view.js"
PIPELINES_TTL_SECONDS = 30.0  # a new or edited spec shows within this


class Pipelines:
    """The pipelines of a folder, as the DAG files plan them (re-read every 30 s at most)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._read_at = float("-inf")
        self._planned: dict[str, PlannedPipeline] = {}

    def all(self) -> dict[str, PlannedPipeline]:
        with self._lock:
            if time.monotonic() - self._read_at >= PIPELINES_TTL_SECONDS:
                from loopline.plan.check import check_pipelines

                check = check_pipelines(self.folder)
                self._planned = {p.spec.name: p for p in check.pipelines}
                self._read_at = time.monotonic()
            return self._planned


def _current_user() -> Callable[..., Any]:
    from airflow.api_fastapi.core_api.security import get_user

    return get_user


def may_read(user: BaseUser, pipeline: PlannedPipeline) -> bool:
    """Whether `user` may read every DAG of `pipeline` (its data is theirs to see)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails

    manager = get_auth_manager()
    return all(
        manager.is_authorized_dag(method="GET", details=DagDetails(id=plan.dag_id), user=user)
        for plan in pipeline.dags
    )


def create_app(
    folder: Path,
    store: Callable[[], ObjectStore],
    user: Callable[..., Any] | None = None,
    authorize: Callable[[Any, PlannedPipeline], bool] = may_read,
) -> FastAPI:
    """The view's app: the pipelines in `folder`, their data in `store()`'s buckets. `user`
    is the dependency that authenticates a request (default: Airflow's own ``get_user``),
    `authorize` whether a user may read a pipeline (default: the auth manager's answer for
    each of its DAGs)."""
    pipelines = Pipelines(folder)
    # A default, not an Annotated alias: this module's annotations are strings (postponed),
    # which FastAPI resolves in the module's globals, where a local alias is not.
    logged_in = Depends(user or _current_user())
    app = FastAPI(title="Loopline view", docs_url=None, redoc_url=None, openapi_url=None)

    def readable(name: str, who: Any) -> PlannedPipeline:
        pipeline = pipelines.all().get(name)
        if pipeline is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no pipeline named {name!r}")
        if not authorize(who, pipeline):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "Forbidden")
        return pipeline

    @app.get("/api/pipelines")
    def list_pipelines(who: Any = logged_in) -> list[dict[str, Any]]:
        """The pipelines the user may read, each with its DAG ids by stage."""
        return [
            {"name": name, "dags": {str(plan.stage): plan.dag_id for plan in pipeline.dags}}
            for name, pipeline in sorted(pipelines.all().items())
            if authorize(who, pipeline)
        ]

    @app.get("/api/pipelines/{name}")
    def overview(name: str, who: Any = logged_in) -> dict[str, Any]:
        from loopline.overview import pipeline_overview

        pipeline = readable(name, who)
        seen = pipeline_overview(pipeline.spec, store())
        dags = {str(plan.stage): plan.dag_id for plan in pipeline.dags}
        return {**seen.model_dump(mode="json"), "dags": dags}

    @app.get("/api/pipelines/{name}/reports/{stage}/{run_id}")
    def report(
        name: str,
        stage: str,
        run_id: str,
        subject: Annotated[str, Query(max_length=1024)] = "run",
        who: Any = logged_in,
    ) -> Response:
        from loopline.overview import ReportNotFound, read_report

        pipeline = readable(name, who)
        try:
            found = read_report(store(), pipeline.spec, stage, run_id, subject)
        except ReportNotFound as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
        headers = {
            "Content-Disposition": f'attachment; filename="{_safe_filename(found.filename)}"',
            "Content-Security-Policy": "sandbox",  # opened anyway: no script, no origin
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
        }
        if found.encoding:
            headers["Content-Encoding"] = found.encoding
        return Response(found.body, media_type=found.content_type, headers=headers)

    @app.get(f"/static/{BUNDLE}")
    def bundle(who: Any = logged_in) -> Response:
        """The view's script (the UI imports it with the session cookie): nothing here is
        for anonymous callers, the script included."""
        return Response((STATIC / BUNDLE).read_bytes(), media_type="text/javascript")

    return app


def _safe_filename(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:200]
