"""The Loopline view in the Airflow UI: a "Loopline" page in the top navigation and a
"Loopline" tab on every pipeline DAG, showing the pipeline's models, decisions, data checks,
drift, deployments, cost and failures (``loopline.airflow.ui``).

The data comes from the view's own FastAPI app, mounted by the api-server at ``/loopline``;
every route of it asks for a logged-in user and for read access to the pipeline's DAGs.
"""

from functools import cache
from pathlib import Path

from airflow.plugins_manager import AirflowPlugin
from loopline.airflow.ui.view import BUNDLE, create_app
from loopline.spec import pipelines_folder

PIPELINES = pipelines_folder(Path(__file__).resolve().parents[1] / "include" / "pipelines")
# Relative to the UI's base URL, so a deployment under a path prefix finds it too.
BUNDLE_URL = f"loopline/static/{BUNDLE}"


@cache
def _store():  # the api-server's one connection to the object store
    from loopline.airflow.hooks import ObjectStoreHook

    return ObjectStoreHook(aws_conn_id="aws_default").store


class LooplineViewPlugin(AirflowPlugin):
    name = "loopline"
    fastapi_apps = [
        {"app": create_app(PIPELINES, _store), "url_prefix": "/loopline", "name": "Loopline view"}
    ]
    react_apps = [
        {
            "name": "Loopline",
            "bundle_url": BUNDLE_URL,
            "destination": "nav",
            "url_route": "loopline",
            "nav_top_level": True,
        },
        {
            "name": "Loopline pipeline",
            "bundle_url": BUNDLE_URL,
            "destination": "dag",
            "url_route": "loopline-pipeline",
        },
    ]
