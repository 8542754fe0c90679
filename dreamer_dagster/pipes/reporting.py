"""Dagster metadata in the form Dagster Pipes carries (``{"raw_value": ..., "type": ...}``).

The worker reports a step's materialization metadata and its check results through
Pipes; the orchestrator turns each value back into the same ``dg.MetadataValue``
(``metadata_value_from_external``), so a step run out of process shows exactly the
metadata of one run in process.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg

__all__ = ["to_pipes_metadata", "to_pipes_value"]


def to_pipes_metadata(metadata: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each value of ``metadata`` as a Pipes metadata value."""
    return {key: to_pipes_value(value) for key, value in metadata.items()}


def to_pipes_value(value: Any) -> dict[str, Any]:
    """One metadata value (a ``dg.MetadataValue`` or a plain value Dagster accepts) in Pipes
    form; TypeError for one Pipes cannot carry."""
    if isinstance(value, dg.TableSchema):
        value = dg.MetadataValue.table_schema(value)
    elif isinstance(value, dg.TableColumnLineage):
        value = dg.MetadataValue.column_lineage(value)
    if not isinstance(value, dg.MetadataValue):
        return _plain(value)
    for kind, typed in _TYPES:
        if isinstance(value, typed):
            return {"type": kind, "raw_value": _RAW.get(kind, _value)(value)}
    raise TypeError(f"{type(value).__name__} metadata cannot be reported through Dagster Pipes.")


def _plain(value: Any) -> dict[str, Any]:
    if value is None:
        return {"type": "null", "raw_value": None}
    if isinstance(value, bool):
        return {"type": "bool", "raw_value": value}
    if isinstance(value, int):
        return {"type": "int", "raw_value": value}
    if isinstance(value, float):
        return {"type": "float", "raw_value": value}
    if isinstance(value, str):
        return {"type": "text", "raw_value": value}
    if isinstance(value, (Mapping, list, tuple)):
        return {"type": "json", "raw_value": value}
    raise TypeError(f"{type(value).__name__} metadata cannot be reported through Dagster Pipes.")


def _value(value: Any) -> Any:
    return value.value


def _columns(schema: dg.TableSchema) -> list[dict[str, Any]]:
    columns = []
    for column in schema.columns:
        entry: dict[str, Any] = {"name": column.name, "type": column.type}
        if column.description is not None:
            entry["description"] = column.description
        if column.tags:
            entry["tags"] = dict(column.tags)
        constraints = column.constraints
        if constraints is not None and (not constraints.nullable or constraints.unique or constraints.other):
            entry["constraints"] = {
                "nullable": constraints.nullable,
                "unique": constraints.unique,
                "other": list(constraints.other),
            }
        columns.append(entry)
    return columns


def _table(value: Any) -> dict[str, Any]:
    return {"records": [dict(record.data) for record in value.records], "schema": _columns(value.schema)}


def _lineage(value: Any) -> dict[str, Any]:
    return {
        "deps_by_column": {
            column: [{"asset_key": list(dep.asset_key.path), "column_name": dep.column_name} for dep in deps]
            for column, deps in value.column_lineage.deps_by_column.items()
        }
    }


_TYPES: tuple[tuple[str, type], ...] = (
    ("md", dg.MarkdownMetadataValue),
    ("path", dg.PathMetadataValue),
    ("notebook", dg.NotebookMetadataValue),
    ("url", dg.UrlMetadataValue),
    ("text", dg.TextMetadataValue),
    ("json", dg.JsonMetadataValue),
    ("bool", dg.BoolMetadataValue),
    ("int", dg.IntMetadataValue),
    ("float", dg.FloatMetadataValue),
    ("timestamp", dg.TimestampMetadataValue),
    ("null", dg.NullMetadataValue),
    ("dagster_run", dg.DagsterRunMetadataValue),
    ("asset", dg.DagsterAssetMetadataValue),
    ("table", dg.TableMetadataValue),
    ("table_schema", dg.TableSchemaMetadataValue),
    ("table_column_lineage", dg.TableColumnLineageMetadataValue),
)

_RAW = {
    "table": _table,
    "table_schema": lambda value: {"columns": _columns(value.schema)},
    "table_column_lineage": _lineage,
    "asset": lambda value: value.asset_key.to_user_string(),
    "dagster_run": lambda value: value.run_id,
    "null": lambda value: None,
}
