"""Load ``airflow_settings.yaml`` (the Astro CLI's format) into a running Airflow via REST.

Values may refer to the local stack as ``${LOOPLINE_S3_ENDPOINT}`` and the like, so the file
stays true whatever ports the stack picked. Through REST rather than ``airflow connections
import`` because the stack fills those placeholders first and reports each setting applied.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from loopline.stack.airflow_api import AirflowApi

PLACEHOLDER = re.compile(r"\$\{([A-Z0-9_]+)\}")


class SettingsError(ValueError):
    pass


def read_settings(path: Path, values: Mapping[str, str]) -> dict[str, list[dict[str, Any]]]:
    """Parse the file, fill in ``${NAME}`` placeholders and check the entries' keys."""
    document = yaml.safe_load(path.read_text()) or {}
    airflow = _substitute(document.get("airflow") or {}, values, path)
    result = {}
    for section, required in (
        ("connections", "conn_id"),
        ("pools", "pool_name"),
        ("variables", "variable_name"),
    ):
        entries = airflow.get(section) or []
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict) or not entry.get(required):
                raise SettingsError(f"{path}: airflow.{section}[{index}] needs {required!r}")
        result[section] = entries
    return result


def apply_settings(api: AirflowApi, settings: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Create or update every connection, pool and variable; return what was done."""
    done = []
    for entry in settings["connections"]:
        body = _connection_body(entry)
        done.append(
            f"connection {body['connection_id']}: "
            f"{api.upsert('connections', body['connection_id'], body)}"
        )
    for entry in settings["pools"]:
        body = {
            "name": entry["pool_name"],
            "slots": int(entry.get("pool_slot", 1)),
            "description": entry.get("pool_description", ""),
            "include_deferred": bool(entry.get("pool_include_deferred", False)),
        }
        done.append(f"pool {body['name']}: {api.upsert('pools', body['name'], body)}")
    for entry in settings["variables"]:
        value = entry.get("variable_value", "")
        body = {
            "key": entry["variable_name"],
            "value": value if isinstance(value, str) else json.dumps(value),
        }
        done.append(f"variable {body['key']}: {api.upsert('variables', body['key'], body)}")
    return done


def _connection_body(entry: dict[str, Any]) -> dict[str, Any]:
    extra = entry.get("conn_extra")
    body = {
        "connection_id": entry["conn_id"],
        "conn_type": entry.get("conn_type") or "generic",
        "host": entry.get("conn_host"),
        "schema": entry.get("conn_schema"),
        "login": entry.get("conn_login"),
        "password": entry.get("conn_password"),
        "port": int(entry["conn_port"]) if entry.get("conn_port") else None,
        "extra": json.dumps(extra) if isinstance(extra, dict) else extra,
    }
    return {key: value for key, value in body.items() if value is not None}


def _substitute(node: Any, values: Mapping[str, str], path: Path) -> Any:
    if isinstance(node, dict):
        return {key: _substitute(value, values, path) for key, value in node.items()}
    if isinstance(node, list):
        return [_substitute(item, values, path) for item in node]
    if isinstance(node, str):

        def fill(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in values:
                raise SettingsError(
                    f"{path}: unknown placeholder ${{{name}}}; known: {', '.join(sorted(values))}"
                )
            return values[name]

        return PLACEHOLDER.sub(fill, node)
    return node
