"""Structured output: a JSON schema (dict) or a pydantic model class as ``response_format``.

Backends with native support (OpenAI's ``json_schema`` response format) send the
schema; the others get an instruction appended to the prompt. Either way the
output is parsed and validated here, fully: a pydantic class validates with the
class itself (``model_validate_json``: every field constraint and validator), a
schema dict with ``jsonschema`` (the schema's own draft, formats included). A
schema that is itself invalid (``{"type": "objekt"}``) is refused by
:func:`check` when the step is declared. A result is the validated JSON text,
or None where no JSON value in the output validates (``LLM.run`` first asks
again, ``response_format_retries`` times).
"""

from __future__ import annotations

import json
from typing import Any

from ..fingerprint import canonical

__all__ = ["check", "identity", "instruction", "name_of", "parse", "schema_of", "validate"]


def schema_of(response_format: Any) -> dict:
    """The JSON schema of a pydantic model class, a schema dict, or an OpenAI-style
    ``{"type": "json_schema", "json_schema": {"schema": ...}}`` dict."""
    if _is_pydantic(response_format):
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


def check(response_format: Any) -> None:
    """Raise ``ValueError`` (saying what is wrong) unless ``response_format`` is a pydantic
    class or a valid JSON schema; ``TypeError`` for anything else."""
    schema = schema_of(response_format)
    if _is_pydantic(response_format):
        return
    from jsonschema.exceptions import SchemaError

    try:
        _validator_class(schema).check_schema(schema)
    except SchemaError as error:
        where = "/".join(str(part) for part in error.absolute_path) or "the top level"
        raise ValueError(f"not a valid JSON schema: {error.message} (at {where}).") from None


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
            value, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            position = start + 1
            continue
        checked = _check(text[start:end], value, response_format)
        if checked is not None:
            return checked
        position = start + 1


def _check(raw: str, value: Any, response_format: Any) -> str | None:
    if _is_pydantic(response_format):
        try:
            return response_format.model_validate_json(raw).model_dump_json()
        except Exception:  # a pydantic ValidationError: counted by the caller
            return None
    if validate(value, schema_of(response_format)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return None


def validate(value: Any, schema: dict) -> bool:
    """Whether ``value`` is valid under ``schema`` (every keyword of its JSON Schema draft)."""
    return _validator(json.dumps(schema, sort_keys=True)).is_valid(value)


def _is_pydantic(response_format: Any) -> bool:
    return isinstance(response_format, type) and hasattr(response_format, "model_validate_json")


def _validator_class(schema: dict) -> Any:
    from jsonschema.validators import Draft202012Validator, validator_for

    return validator_for(schema, default=Draft202012Validator)


_VALIDATORS: dict[str, Any] = {}


def _validator(schema_text: str) -> Any:
    validator = _VALIDATORS.get(schema_text)
    if validator is None:
        schema = json.loads(schema_text)
        cls = _validator_class(schema)
        validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
        _VALIDATORS[schema_text] = validator
    return validator
