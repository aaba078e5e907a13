"""Templated operator arguments, typed: the one place a rendered value becomes a typed one.

An operator's run-time arguments are template fields (usually ``"{{ params.x }}"`` from the
trigger form, or an upstream task's output). Airflow renders them; `typed` then validates them
with the pydantic model that types that argument set (the same models type the trigger forms,
``loopline.plan``), so every task gets ints as ints, dates as datetimes, and a bad value fails
the task naming the argument, before any work.
"""

from __future__ import annotations

from typing import Any, TypeVar

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException
from pydantic import BaseModel, ValidationError

Arguments = TypeVar("Arguments", bound=BaseModel)

# A DAG that renders templates as strings (Airflow's default; Loopline's DAGs render native
# objects) turns an empty Param into "None" or "": both mean "not given".
_NOT_GIVEN = ("", "None")


def typed(operator: BaseOperator, model: type[Arguments]) -> Arguments:
    """The operator's arguments named by `model`'s fields, rendered and validated."""
    values = {
        name: value for name in model.model_fields if _given(value := getattr(operator, name, None))
    }  # an argument not given takes the model's default
    try:
        return model.model_validate(values)
    except ValidationError as exc:  # a retry renders the same values
        problems = "; ".join(
            f"{'.'.join(map(str, error['loc']))}={error.get('input')!r}: {error['msg']}"
            for error in exc.errors()
        )
        raise AirflowFailException(f"{operator.task_id}: invalid arguments: {problems}") from exc


def _given(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and value.strip() in _NOT_GIVEN)
