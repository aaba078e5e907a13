"""Run parameters as typed models: each task's arguments, and each DAG's trigger form.

A task's run-time arguments are one pydantic model (e.g. ``SnapshotArguments``); a DAG's form
is the union of its tasks' models (``class TrainParams(TrainArguments, SnapshotArguments)``).
The model gives each parameter its type, bounds, title, description and form section; its
JSON Schema becomes Airflow Params (Airflow validates them and draws the trigger form), and the
same model types the values the task receives (``loopline.airflow.operators.arguments.typed``).
Bounds that the spec also has are read from the spec's own model (``bounds``), never copied.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

import annotated_types
from pydantic import BaseModel, Field, WithJsonSchema

from loopline.plan.vocabulary import ParamPlan

_FORM_KEYS = ("default", "title", "description", "section")


def bounds(model: type[BaseModel], name: str) -> dict[str, Any]:
    """The numeric bounds of `model.name` as Field keyword arguments (ge, le, gt, lt)."""
    found: dict[str, Any] = {}
    for constraint in model.model_fields[name].metadata:
        for key in ("ge", "le", "gt", "lt"):
            if isinstance(constraint, getattr(annotated_types, key.capitalize())):
                found[key] = getattr(constraint, key)
    if not found:
        raise ValueError(f"{model.__name__}.{name} has no bounds to take")
    return found


def reason_field(description: str, section: str) -> Any:
    """A free-text "why this run" parameter, kept with what the run decides."""
    return Field(
        min_length=1,
        max_length=500,
        title="Reason",
        description=description,
        json_schema_extra={"section": section},
    )


WINDOW_END_PATTERN = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?$"


# A datetime for the task; for the form a date or date-time string, or empty (JSON Schema's
# "date-time" format would refuse a bare date, and the form would draw a picker needing a time).
_WINDOW_END_FORM = {"anyOf": [{"type": "string", "pattern": WINDOW_END_PATTERN}, {"type": "null"}]}
WindowEnd = Annotated[datetime | None, WithJsonSchema(_WINDOW_END_FORM)]


def window_end_field(description: str, section: str) -> Any:
    """An optional end of the run's data window (a backfill); empty: when the run was due."""
    return Field(
        title="Window end (backfill)",
        description=description,
        json_schema_extra={"section": section},
    )


def params_from_model(
    model: type[BaseModel], defaults: Mapping[str, Any] | None = None
) -> tuple[ParamPlan, ...]:
    """One ParamPlan per field of `model`, in field order; `defaults` override the model's."""
    schema = _json_schema(model)
    definitions = schema.get("$defs", {})
    plans = []
    for name, prop in schema["properties"].items():
        field = model.model_fields[name]
        default = (defaults or {}).get(name, field.default)
        plans.append(
            ParamPlan(
                name=name,
                default=default.value if hasattr(default, "value") else default,
                schema=_plain_schema(prop, definitions),
                title=prop.get("title", name),
                description=prop.get("description", ""),
                section=prop.get("section", "Run parameters"),
            )
        )
    return tuple(plans)


@functools.cache
def _json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """Generated once per model (a few milliseconds), however many specs use it."""
    return model.model_json_schema()


def _plain_schema(prop: Mapping[str, Any], definitions: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON Schema of one parameter as Airflow's form reads it: references inlined,
    ``anyOf`` of plain types as a type list ("null" first), form keys left out."""
    schema = {k: v for k, v in prop.items() if k not in _FORM_KEYS}
    if ref := schema.pop("$ref", None):
        target = definitions[ref.rsplit("/", 1)[-1]]
        schema = {**{k: v for k, v in target.items() if k != "title"}, **schema}
    alternatives = schema.get("anyOf", [])
    simple = all(isinstance(a.get("type"), str) for a in alternatives)
    typed = [a for a in alternatives if a.get("type") != "null"]
    if alternatives and simple and (len(typed) == 1 or all(set(a) == {"type"} for a in typed)):
        # "null, or a string matching ..." reads as one schema: {"type": ["null", "string"], ...}
        schema.pop("anyOf")
        schema.update({k: v for a in typed for k, v in a.items() if k != "type"})
        schema["type"] = sorted((a["type"] for a in alternatives), key=lambda t: t != "null")
    return schema
