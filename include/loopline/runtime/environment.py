"""The environment Loopline gives the processes it starts: an allowlist, never a copy.

Airflow keeps its master secrets in the environment of every task (``AIRFLOW__CORE__FERNET_KEY``,
``AIRFLOW__API_AUTH__JWT_SECRET``, ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN``). Streaming replicas
and Spark drivers outlive or leave the task, parse untrusted input and load models, so they
get only what they need to run: the names and prefixes below, plus what the caller adds.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

ALLOWED_NAMES = frozenset(
    {
        "PATH",
        "HOME",
        "LANG",
        "TZ",
        "TMPDIR",
        "PYTHONPATH",
        "VIRTUAL_ENV",
        "JAVA_HOME",
        # Which Keras backend loads the models, and XLA's tuning: runtime knobs, no secrets.
        "KERAS_BACKEND",
        "XLA_FLAGS",
    }
)
ALLOWED_PREFIXES = (
    "LC_",  # locale
    "LOOPLINE_",
    "SPARK_",
    "PYSPARK_",
    "TF_",
    "CUDA_",
    "NVIDIA_",
    "OPENBLAS_",
    "OMP_",
    "MKL_",
    "AWS_",  # S3 credentials (session token included), region, endpoint, CA bundle
)
# Matched by a prefix above, but a secret the children never need: the stack's database URL
# (it may hold a PostgreSQL password).
DENIED_NAMES = frozenset({"LOOPLINE_DATABASE_URL"})


def allowed(name: str) -> bool:
    if name in DENIED_NAMES:
        return False
    return name in ALLOWED_NAMES or name.startswith(ALLOWED_PREFIXES)


def child_environment(
    extra: Mapping[str, str] | None = None, parent: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The allowed variables of `parent` (default: this process's environment), then `extra`
    (which the caller chose, so it is not filtered)."""
    source = os.environ if parent is None else parent
    env = {name: value for name, value in source.items() if allowed(name)}
    env.update(extra or {})
    return env
