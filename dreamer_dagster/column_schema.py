"""Column types and column lineage as Dagster shows them (``dagster/column_schema``,
``dagster/column_lineage``), in plain type names: ``string``, ``int64``, ``float32[384]``,
``list<string>``, ``struct``.

Before any run (on the asset spec) they come from the declaration: a column a step
passes through (an input column it writes back, a column an operation keeps or
renames) has its upstream column's type and lineage; a column a step makes has the
type its step class gives it (``prompts`` and ``generations`` are strings...) and is
fed by every column input of the step; a ``DataSource`` over in-memory data types
its columns from the first values (at most :data:`SNIFF_ROWS` rows), an
``HFDatasetDataSource`` from its saved features. Data files are never read for
types at load time (a JSON or CSV source's types show after its first run, as
``unknown`` before). On each materialization the types come from the written
dataset's features (:func:`plain_types`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import dagster as dg

if TYPE_CHECKING:
    from .steps.step import Step

__all__ = [
    "UNKNOWN",
    "column_lineage",
    "declared_schema",
    "plain_type",
    "plain_types",
    "spec_column_metadata",
    "table_schema",
]

UNKNOWN = "unknown"
#: How many rows of in-memory data are looked at to type a column at declaration.
SNIFF_ROWS = 100

#: The types of the columns steps make (by internal output name).
MADE_COLUMN_TYPES = {
    "prompts": "string",
    "generations": "string",
    "judge_prompts": "string",
    "judge_generations": "string",
    "scores": "float64",
    "similarities": "float64",
    "embeddings": "list<float32>",
    "results": "struct",
    "attributes": "struct",
    "export": "string",
    "result": "string",
}

#: A column: its name, plain type, and the (upstream step, column) pairs that feed it.
Column = tuple[str, str, list[tuple[Any, str]]]


# -- plain type names -------------------------------------------------------------------


def plain_type(feature: Any) -> str:
    """A ``datasets`` feature (object, its ``repr`` as step.json keeps it, or its
    ``to_dict()`` JSON form) as a plain type name."""
    if isinstance(feature, Mapping):
        return _from_json(feature)
    if isinstance(feature, list):
        return f"list<{plain_type(feature[0])}>" if feature else "list"
    text = feature if isinstance(feature, str) else repr(feature)
    try:
        value, rest = _parse(text.strip(), 0)
    except (ValueError, IndexError):
        return text
    return value if rest == len(text.strip()) else text


def plain_types(schema: Mapping[str, Any]) -> dict[str, str]:
    """``{column: plain type}`` from ``{column: feature}`` (or step.json's ``schema``)."""
    return {name: plain_type(feature) for name, feature in schema.items()}


def _from_json(feature: Mapping[str, Any]) -> str:
    kind = feature.get("_type")
    if kind is None:
        return "struct"
    if kind == "Value":
        return _dtype(str(feature.get("dtype")))
    if kind in ("List", "LargeList", "Sequence"):
        return _list_of(plain_type(feature.get("feature")), feature.get("length", -1))
    if kind == "ClassLabel":
        return "int64"
    if "dtype" in feature and "shape" in feature:
        return f"{_dtype(str(feature['dtype']))}[{','.join(str(n) for n in feature['shape'])}]"
    return str(kind).lower()


def _dtype(dtype: str) -> str:
    return {"large_string": "string", "double": "float64", "float": "float32"}.get(dtype, dtype)


def _list_of(inner: str, length: Any) -> str:
    if isinstance(length, int) and length >= 0:
        return f"{inner}[{length}]"
    return f"list<{inner}>"


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _parse(text: str, at: int) -> tuple[str, int]:
    """One feature repr from ``text[at:]``: (plain type, index after it)."""
    if text[at] == "{":
        return "struct", _skip_brackets(text, at)
    if text[at] == "[":
        end = _skip_brackets(text, at)
        inner = text[at + 1 : end - 1].strip()
        return (f"list<{plain_type(inner)}>" if inner else "list"), end
    match = _NAME.match(text, at)
    if match is None:
        raise ValueError(text)
    name, end = match.group(), match.end()
    if end >= len(text) or text[end] != "(":
        return name.lower(), end
    close = _skip_brackets(text, end)
    args = text[end + 1 : close - 1]
    if name == "Value":
        dtype = re.match(r"\s*(?:dtype=)?'([^']+)'", args)
        return _dtype(dtype.group(1) if dtype else UNKNOWN), close
    if name in ("List", "LargeList", "Sequence"):
        inner_at = end + 1
        while text[inner_at] == " ":
            inner_at += 1
        if text.startswith("feature=", inner_at):
            inner_at += len("feature=")
        inner, after = _parse(text, inner_at)
        length = re.search(r"length=(-?\d+)", text[after:close])
        return _list_of(inner, int(length.group(1)) if length else -1), close
    if name == "ClassLabel":
        return "int64", close
    shape = re.search(r"shape=\(([^)]*)\)", args)
    dtype = re.search(r"dtype='([^']+)'", args)
    if shape and dtype:
        dims = ",".join(part.strip() for part in shape.group(1).split(",") if part.strip())
        return f"{_dtype(dtype.group(1))}[{dims}]", close
    return name.lower(), close


def _skip_brackets(text: str, at: int) -> int:
    """The index after the bracket group opening at ``text[at]`` (quotes respected)."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    stack: list[str] = []
    quote = None
    for index in range(at, len(text)):
        char = text[index]
        if quote:
            if char == quote and text[index - 1] != "\\":
                quote = None
        elif char in "'\"":
            quote = char
        elif char in pairs:
            stack.append(pairs[char])
        elif stack and char == stack[-1]:
            stack.pop()
            if not stack:
                return index + 1
    raise ValueError(text)


def python_type(value: Any) -> str:
    """The plain type Arrow infers for one Python value (``unknown`` for None)."""
    if value is None:
        return UNKNOWN
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bytes):
        return "binary"
    if isinstance(value, Mapping):
        return "struct"
    if isinstance(value, (list, tuple)):
        inner = next((python_type(item) for item in value if item is not None), UNKNOWN)
        return f"list<{inner}>"
    return UNKNOWN


# -- at declaration ---------------------------------------------------------------------


def declared_schema(step: Step) -> list[Column] | None:
    """The step's output columns known at declaration: (name, plain type, feeding columns);
    None when only the data knows its columns. Computed once per step."""
    cached = step.__dict__.get("_declared_column_schema", False)
    if cached is not False:
        return cached
    try:
        columns = _declared(step)
    except Exception:  # noqa: BLE001 - metadata is best effort; it never fails a declaration
        columns = None
    step.__dict__["_declared_column_schema"] = columns
    return columns


def _declared(step: Step) -> list[Column] | None:
    names = step.output_columns
    internal = step.declared_columns()
    if not names or internal is None:
        return None
    sources = [ref.step for ref in step.inputs.values()] + list(step.source_steps())
    if not sources:  # a data source, or a step that makes all its rows (DataFromPrompt)
        types = _source_types(step)
        made = {} if ".data_sources." in type(step).__module__ else MADE_COLUMN_TYPES
        return [
            (name, types.get(name) or made.get(inner, UNKNOWN), [])
            for inner, name in zip(internal, names, strict=True)
        ]
    renamed = _renamed_from(step)
    is_map = type(step).__name__ == "Map"
    all_inputs = [(ref.step, ref.column) for ref in step.inputs.values()]
    columns: list[Column] = []
    for inner, name in zip(internal, names, strict=True):
        if inner in step.inputs:  # an input column written back
            ref = step.inputs[inner]
            columns.append((name, _type_of(ref.step, ref.column), [(ref.step, ref.column)]))
            continue
        if is_map:
            feeding = [(source, column) for source in step.source_steps() for column in _names(source)]
            columns.append((name, UNKNOWN, feeding))
            continue
        if inner in MADE_COLUMN_TYPES and (step.inputs or inner in ("export", "result")):
            columns.append((name, MADE_COLUMN_TYPES[inner], list(all_inputs)))
            continue
        wanted = renamed.get(inner, inner)
        feeding = [(source, wanted) for source in sources if wanted in _names(source)]
        kind = _type_of(*feeding[0]) if feeding else MADE_COLUMN_TYPES.get(inner, UNKNOWN)
        columns.append((name, kind, feeding or list(all_inputs)))
    return columns


def _names(step: Step) -> list[str]:
    return list(step.output_columns or [])


def _type_of(step: Step, column: str) -> str:
    for name, kind, _ in declared_schema(step) or []:
        if name == column:
            return kind
    return UNKNOWN


def _renamed_from(step: Step) -> dict[str, str]:
    """An operation's new column name -> the source column it was (``rename_columns``)."""
    renames = type(step).__name__ in ("RenameColumns", "RenameColumn")  # rename_columns / rename_column
    mapping = step.args.get("column_mapping") if renames else None
    return {new: old for old, new in mapping.items()} if isinstance(mapping, Mapping) else {}


def _source_types(step: Step) -> dict[str, str]:
    """A data source's column types, where cheap: in-memory data, saved features, text files."""
    kind = type(step).__name__
    if kind == "TextDataSource":
        return dict.fromkeys(_names(step), "string")
    if kind == "HFDatasetDataSource":
        features = step._info().get("features")
        return plain_types(features) if isinstance(features, Mapping) else {}
    data = step.args.get("data") if kind == "DataSource" else None
    if isinstance(data, Mapping):
        return {
            str(name): _first_type(values if isinstance(values, (list, tuple)) else [])
            for name, values in data.items()
        }
    if isinstance(data, list):
        rows = [row for row in data[:SNIFF_ROWS] if isinstance(row, Mapping)]
        return {name: _first_type([row.get(name) for row in rows]) for name in _names(step)}
    if type(data).__name__ == "Dataset" and getattr(data, "features", None) is not None:
        return plain_types(data.features)
    return {}


def _first_type(values: Any) -> str:
    for value in list(values[:SNIFF_ROWS]):
        if value is not None:
            return python_type(value)
    return UNKNOWN


def table_schema(types: Mapping[str, str]) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(name=name, type=kind) for name, kind in types.items()])


def column_lineage(step: Step, asset_keys: Mapping[int, dg.AssetKey]) -> dg.TableColumnLineage | None:
    """Each output column's feeding upstream columns (``asset_keys``: ``id(step)`` ->
    asset key of each upstream step); None when nothing is known."""
    columns = declared_schema(step)
    if not columns:
        return None
    deps_by_column = {
        name: [
            dg.TableColumnDep(asset_key=asset_keys[id(source)], column_name=column)
            for source, column in feeding
            if id(source) in asset_keys
        ]
        for name, _, feeding in columns
    }
    deps_by_column = {name: deps for name, deps in deps_by_column.items() if deps}
    return dg.TableColumnLineage(deps_by_column=deps_by_column) if deps_by_column else None


def spec_column_metadata(step: Step, upstream_keys: Mapping[int, dg.AssetKey]) -> dict[str, Any]:
    """``dagster/column_schema`` and ``dagster/column_lineage`` for the step's asset spec."""
    from .metadata import COLUMN_LINEAGE, COLUMN_SCHEMA

    columns = declared_schema(step)
    if not columns:
        return {}
    metadata: dict[str, Any] = {COLUMN_SCHEMA: table_schema({name: kind for name, kind, _ in columns})}
    lineage = column_lineage(step, upstream_keys)
    if lineage is not None:
        metadata[COLUMN_LINEAGE] = lineage
    return metadata
