"""Structured output: a JSON schema (dict) or a pydantic model class as ``response_format``.

Backends with native support (OpenAI's ``json_schema`` response format) send the
schema; the others get an instruction appended to the prompt. Either way the
output is parsed and validated here: a result is the validated JSON text, or
None where the output did not parse or validate.
"""

from __future__ import annotations

import json
from typing import Any

from ..fingerprint import canonical

__all__ = ["identity", "instruction", "name_of", "parse", "schema_of", "validate"]


def schema_of(response_format: Any) -> dict:
    """The JSON schema of a pydantic model class, a schema dict, or an OpenAI-style
    ``{"type": "json_schema", "json_schema": {"schema": ...}}`` dict."""
    if isinstance(response_format, type) and hasattr(response_format, "model_json_schema"):
        return response_format.model_json_schema()
    if isinstance(response_format, dict):
        if response_format.get("type") == "json_schema" and "json_schema" in response_format:
            return dict(response_format["json_schema"].get("schema", {}))
        if response_format.get("type") == "json_object":
            return {"type": "object"}
        return response_format
    raise TypeError(
        f"response_format must be a JSON schema dict or a pydantic model class, not {type(response_format).__name__}."
    )


def name_of(response_format: Any) -> str:
    if isinstance(response_format, type):
        return response_format.__name__
    return str(schema_of(response_format).get("title") or "response")


def identity(response_format: Any) -> Any:
    """What enters the cache key and the fingerprint: the schema itself."""
    return canonical({"name": name_of(response_format), "schema": schema_of(response_format)})


def instruction(response_format: Any) -> str:
    schema = json.dumps(schema_of(response_format), sort_keys=True)
    return f"\n\nRespond only with a JSON object that follows this JSON schema:\n{schema}"


def parse(text: str | None, response_format: Any) -> str | None:
    """The first JSON value in ``text`` that validates, as compact JSON text; None if none does."""
    if text is None:
        return None
    decoder = json.JSONDecoder()
    position = 0
    while True:
        starts = [p for p in (text.find("{", position), text.find("[", position)) if p >= 0]
        if not starts:
            return None
        start = min(starts)
        try:
            value, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            position = start + 1
            continue
        checked = _check(value, response_format)
        if checked is not None:
            return checked
        position = start + 1


def _check(value: Any, response_format: Any) -> str | None:
    if isinstance(response_format, type) and hasattr(response_format, "model_validate"):
        try:
            return response_format.model_validate(value).model_dump_json()
        except Exception:  # a pydantic ValidationError: counted by the caller
            return None
    if validate(value, schema_of(response_format)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return None


_TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


def validate(value: Any, schema: dict, definitions: dict | None = None) -> bool:  # noqa: C901
    """Whether ``value`` fits ``schema`` (the JSON-schema subset structured output uses:
    type, properties, required, additionalProperties, items, enum, const, anyOf, $ref)."""
    definitions = (
        definitions if definitions is not None else schema.get("$defs", schema.get("definitions", {}))
    )
    if "$ref" in schema:
        target = definitions.get(schema["$ref"].rsplit("/", 1)[-1])
        return target is not None and validate(value, target, definitions)
    if "anyOf" in schema or "oneOf" in schema:
        options = schema.get("anyOf") or schema.get("oneOf") or []
        return any(validate(value, option, definitions) for option in options)
    if "enum" in schema and value not in schema["enum"]:
        return False
    if "const" in schema and value != schema["const"]:
        return False
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_is_type(value, kind) for kind in kinds):
            return False
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        if any(name not in value for name in schema.get("required", [])):
            return False
        if schema.get("additionalProperties") is False and any(name not in properties for name in value):
            return False
        for name, item in value.items():
            if name in properties and not validate(item, properties[name], definitions):
                return False
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return all(validate(item, schema["items"], definitions) for item in value)
    return True


def _is_type(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    expected = _TYPES.get(kind)
    return True if expected is None else isinstance(value, expected)
