"""The one fingerprint function: a stable hash of anything a step is declared with.

``canonical(obj)`` turns a value into plain JSON data (dicts, lists, strings,
numbers) that does not depend on the process, the machine or memory addresses;
``fingerprint(obj)`` hashes that. The same canonical form is what ``step.json``
shows as a step's args, so what is hashed is what is documented.

What each kind of value contributes:

- plain data: itself (dict keys sorted; tuples as lists; floats by ``repr``);
  a dict with a key that is not a string is a sorted list of ``[key, value]``
  pairs (``{1: x}`` and ``{"1": x}`` stay apart), and a dict shaped like one
  of the tagged forms below (``{"set": ...}``, ``{"file": ..., "sha256": ...}``)
  is wrapped as ``{"dict": ...}``, so no plain value encodes like another kind;
- objects with ``fingerprint_identity()`` (models, trainers, column references,
  deferred values, values read in a running script: ``sourced_values``): what that
  method returns; it never holds a secret (None: the object is described by its value);
- callables: their source text and the values they capture (closure cells,
  default arguments, plain-data globals they read), so editing a lambda or a
  captured threshold changes the fingerprint;
- ``pathlib.Path`` and ``DataFile``: the file's content hash, not only its path
  (cached by path and stat, across processes for large files: ``file_hashes``);
- pydantic models (classes): their JSON schema;
- ``datasets.Dataset``: a hash of its Arrow data and features;
- anything else is refused with a message naming where it was found.
"""

from __future__ import annotations

import dis
import hashlib
import inspect
import json
import math
import textwrap
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import file_hashes

__all__ = ["DataFile", "FingerprintError", "canonical", "fingerprint", "hash_file"]

FINGERPRINT_LENGTH = 16

# Functions written in C (len, str.upper, dict.get...): named, since they have no source.
_BUILTIN_CALLABLES = (
    types.BuiltinFunctionType,
    types.MethodDescriptorType,
    types.WrapperDescriptorType,
    types.ClassMethodDescriptorType,
    types.MethodWrapperType,
)


class FingerprintError(TypeError):
    """A value has no stable fingerprint."""


class DataFile:
    """A file whose *content* enters the fingerprint (data sources use it); ``sha256``
    is its content hash when already known."""

    def __init__(self, path: str | Path, sha256: str | None = None):
        self.path = Path(path)
        self.sha256 = sha256

    def fingerprint_identity(self) -> dict:
        return {"file": self.path.name, "sha256": self.sha256 or hash_file(self.path)}


# The key sets of the tagged forms ``canonical`` builds for values that are not
# plain data (and of the identities of steps, column references and deferred
# values); a plain dict with one of these key sets is wrapped as {"dict": ...}.
_TAG_KEYS = frozenset(
    frozenset(keys)
    for keys in (
        {"float"},
        {"bytes_sha256"},
        {"set"},
        {"file", "sha256"},
        {"path"},
        {"pydantic_schema"},
        {"dataset"},
        {"class"},
        {"module"},
        {"builtin"},
        {"peft_config"},
        {"quantization_config"},
        {"opaque"},
        {"dict"},
        {"dict_items"},
        {"callable_object", "source", "state"},
        {"method", "self", "function"},
        {"step"},
        {"step", "column"},
        {"step", "deferred"},
    )
)
# Exact types answered at once (a subclass may carry its source: a value read in a script).
_CARRIES_NO_SOURCE = frozenset({str, int})
_FUNCTION_KEYS = frozenset(
    {"function", "source", "bytecode", "consts", "defaults", "kwdefaults", "captured", "globals"}
)


def _looks_tagged(keys: frozenset) -> bool:
    return keys in _TAG_KEYS or ("function" in keys and keys <= _FUNCTION_KEYS)


# Content hashes by (path, inode, size, mtime, ctime): `dagster dev` re-declares
# every step on each reload, and a large data file should be read once, not on
# every reload; ``file_hashes`` keeps them between processes too.
_FILE_HASHES: dict[tuple, str] = {}


def hash_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """The SHA-256 of a file's content (remembered in this process and, for a large file,
    between processes: see :mod:`~dreamer_dagster.file_hashes`)."""
    resolved = Path(path).resolve()
    stat = resolved.stat()
    key = (str(resolved), stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    known = _FILE_HASHES.get(key) or file_hashes.lookup(resolved, stat)
    if known is None:
        known = _read_sha256(resolved, chunk_size)
        file_hashes.remember(resolved, stat, known)
    _FILE_HASHES[key] = known
    return known


def _read_sha256(path: Path, chunk_size: int) -> str:
    """Read the whole file: the SHA-256 of its content."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint(obj: Any) -> str:
    """A short stable hex hash of ``canonical(obj)``."""
    text = json.dumps(canonical(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:FINGERPRINT_LENGTH]


def canonical(obj: Any, where: str = "value") -> Any:  # noqa: C901 - one dispatch table
    """Plain, process-independent JSON data describing ``obj``."""
    if obj is None or isinstance(obj, bool):
        return obj
    if type(obj) in _CARRIES_NO_SOURCE:
        return obj
    if type(obj) is float:
        return _canonical_float(obj)
    identity = getattr(obj, "fingerprint_identity", None)
    if identity is not None and callable(identity) and not isinstance(obj, type):
        described = identity()  # None: a value read in a script, changed since: by its value
        if isinstance(described, Mapping) and all(isinstance(key, str) for key in described):
            # An object's own identity: a tagged form, never wrapped.
            return {key: canonical(value, f"{where}[{key!r}]") for key, value in described.items()}
        if described is not None:
            return canonical(described, where)
    if isinstance(obj, (str, int)):
        return obj
    if isinstance(obj, float):
        return _canonical_float(obj)
    if isinstance(obj, bytes):
        return {"bytes_sha256": hashlib.sha256(obj).hexdigest()}
    if isinstance(obj, Mapping):
        return _canonical_mapping(obj, where)
    if isinstance(obj, (list, tuple)):
        return [canonical(item, f"{where}[{i}]") for i, item in enumerate(obj)]
    if isinstance(obj, (set, frozenset)):
        items = [canonical(item, where) for item in obj]
        return {"set": sorted(items, key=lambda x: json.dumps(x, sort_keys=True))}
    if isinstance(obj, Path):
        if obj.is_file():
            return {"file": obj.name, "sha256": hash_file(obj)}
        return {"path": str(obj)}
    if _is_pydantic_model_class(obj):
        return {"pydantic_schema": obj.model_json_schema()}
    if _is_dataset(obj):
        return {"dataset": _hash_dataset(obj)}
    if isinstance(obj, type):
        return {"class": f"{obj.__module__}.{obj.__qualname__}"}
    if isinstance(obj, types.ModuleType):
        return {"module": obj.__name__}
    if isinstance(obj, (types.FunctionType, types.MethodType, *_BUILTIN_CALLABLES)):
        return _canonical_callable(obj, where)
    if hasattr(obj, "to_dict") and type(obj).__module__.startswith("peft"):
        from .library_defaults import normalize_peft_config

        return {"peft_config": canonical(normalize_peft_config(obj), where)}
    if (
        hasattr(obj, "to_dict")
        and hasattr(obj, "quant_method")
        and type(obj).__module__.startswith("transformers")
    ):
        from .library_defaults import normalize_quantization_config

        return {"quantization_config": canonical(normalize_quantization_config(obj), where)}
    if callable(obj) and hasattr(obj, "__dict__"):
        # A callable object: its class source plus its attributes.
        return {
            "callable_object": f"{type(obj).__module__}.{type(obj).__qualname__}",
            "source": _source_of(type(obj)),
            "state": canonical(vars(obj), f"{where}.__dict__"),
        }
    raise FingerprintError(
        f"{where}: a {type(obj).__module__}.{type(obj).__qualname__} has no stable fingerprint. "
        "Pass plain data (str, numbers, lists, dicts), a function, a file path, a model "
        "object from dreamer_dagster, or a column reference instead."
    )


def _canonical_float(obj: float) -> Any:
    if math.isnan(obj) or math.isinf(obj):
        return {"float": repr(obj)}
    return obj


def _canonical_mapping(obj: Mapping, where: str) -> Any:
    if all(isinstance(key, str) for key in obj):
        out = {key: canonical(value, f"{where}[{key!r}]") for key, value in obj.items()}
        return {"dict": out} if _looks_tagged(frozenset(out)) else out
    pairs = []
    for key, value in obj.items():
        if not isinstance(key, (str, int, float, bool, bytes, tuple, frozenset)) and key is not None:
            raise FingerprintError(f"{where}: dict key {key!r} is not a string or number.")
        pairs.append([canonical(key, f"{where} key"), canonical(value, f"{where}[{key!r}]")])
    pairs.sort(key=lambda pair: json.dumps(pair[0], sort_keys=True))
    return {"dict_items": pairs}


def _is_pydantic_model_class(obj: Any) -> bool:
    return isinstance(obj, type) and hasattr(obj, "model_json_schema") and hasattr(obj, "model_fields")


def _is_dataset(obj: Any) -> bool:
    return type(obj).__module__.startswith("datasets") and type(obj).__name__ in {
        "Dataset",
        "IterableDataset",
    }


def _hash_dataset(dataset: Any) -> str:
    if type(dataset).__name__ == "IterableDataset":
        return _hash_iterable_dataset(dataset)
    import pyarrow as pa

    digest = hashlib.sha256()
    digest.update(json.dumps(dataset.features.to_dict(), sort_keys=True).encode())
    table = dataset.with_format("arrow")[:] if dataset.num_rows else None
    if table is not None:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        digest.update(sink.getvalue().to_pybytes())
    return digest.hexdigest()[:FINGERPRINT_LENGTH]


def _hash_iterable_dataset(dataset: Any) -> str:
    """An ``IterableDataset`` made by ``IterableDataset.from_generator`` hashes as its generator
    (source and captured values) and ``gen_kwargs``, without running it; any other is read
    once and hashed by its rows (a streamed hub dataset: use ``HFHubDataSource(streaming=True)``)."""
    examples = getattr(dataset, "_ex_iterable", None)
    builder = getattr(getattr(examples, "generate_examples_fn", None), "__self__", None)
    config = getattr(builder, "config", None)
    generator = getattr(config, "generator", None)
    features = dataset.features.to_dict() if dataset.features is not None else None
    if type(examples).__name__ == "ExamplesIterable" and callable(generator):
        described = {
            "generator": _canonical_callable(generator, "IterableDataset generator"),
            "gen_kwargs": _captured_value(getattr(config, "gen_kwargs", None), "IterableDataset gen_kwargs"),
            "features": features,
        }
        text = json.dumps(described, sort_keys=True, separators=(",", ":"), default=repr)
        return hashlib.sha256(text.encode()).hexdigest()[:FINGERPRINT_LENGTH]
    digest = hashlib.sha256()
    _update_text(digest, json.dumps(features, sort_keys=True))
    for row in dataset:
        _update_text(digest, json.dumps(canonical(row, "IterableDataset row"), sort_keys=True))
    return digest.hexdigest()[:FINGERPRINT_LENGTH]


def _update_text(digest: Any, text: str) -> None:
    data = text.encode()
    digest.update(len(data).to_bytes(8, "big"))
    digest.update(data)


def _source_of(obj: Any) -> str | None:
    try:
        return textwrap.dedent(inspect.getsource(obj))
    except (OSError, TypeError):
        return None


def _canonical_callable(fn: Any, where: str) -> dict:
    if isinstance(fn, _BUILTIN_CALLABLES):
        owner = getattr(fn, "__objclass__", None)
        module = getattr(owner or fn, "__module__", None)
        return {"builtin": f"{module}.{fn.__qualname__}"}
    if isinstance(fn, types.MethodType):
        return {
            "method": fn.__func__.__qualname__,
            "self": canonical(fn.__self__, f"{where}.__self__"),
            "function": _canonical_callable(fn.__func__, where),
        }
    code = fn.__code__
    source = _source_of(fn)
    if source is not None and fn.__name__ == "<lambda>":
        source = _lambda_source(source, code)
    described: dict[str, Any] = {"function": fn.__qualname__}
    if source is not None:
        described["source"] = source
    else:
        described["bytecode"] = hashlib.sha256(code.co_code).hexdigest()
        described["consts"] = [repr(c) for c in code.co_consts if not isinstance(c, types.CodeType)]
    if fn.__defaults__:
        described["defaults"] = canonical(list(fn.__defaults__), f"{where} defaults")
    if fn.__kwdefaults__:
        described["kwdefaults"] = canonical(fn.__kwdefaults__, f"{where} defaults")
    if fn.__closure__:
        captured = {}
        for name, cell in zip(code.co_freevars, fn.__closure__):
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            captured[name] = _captured_value(value, f"{where} captured {name!r}")
        described["captured"] = captured
    globals_read = {}
    for name in _global_names(code):
        if name in fn.__globals__:
            value = fn.__globals__[name]
            if isinstance(value, (bool, int, float, str, tuple, list, dict, type(None))) and not hasattr(
                type(value), "fingerprint_identity"
            ):  # a global value read in a script is left out, as a global Deferred is
                globals_read[name] = _captured_value(value, f"{where} global {name!r}")
            elif isinstance(value, types.FunctionType):
                globals_read[name] = {"function": value.__qualname__, "source": _source_of(value)}
    if globals_read:
        described["globals"] = globals_read
    return described


def _captured_value(value: Any, where: str) -> Any:
    try:
        return canonical(value, where)
    except FingerprintError:
        # A captured object without a stable identity (a logger, a client...):
        # its type still enters the hash; its state cannot.
        return {"opaque": f"{type(value).__module__}.{type(value).__qualname__}"}


def _global_names(code: types.CodeType) -> list[str]:
    names = set()
    for instruction in dis.get_instructions(code):
        if instruction.opname in {"LOAD_GLOBAL", "LOAD_NAME"}:
            names.add(instruction.argval)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names.update(_global_names(const))
    return sorted(names)


def _lambda_source(source: str, code: types.CodeType) -> str:
    """The lambda's own text rather than the whole statement it sits in.

    ``inspect.getsource`` returns the full statement (a step declaration, say),
    which would tie the lambda's fingerprint to unrelated arguments beside it.
    Among the lambdas in that statement, the one with this code's parameter names
    is taken; if that is still ambiguous, the bytecode's constants and names
    tell them apart.
    """
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:
        tree = None
    params = list(code.co_varnames[: code.co_argcount + code.co_kwonlyargcount])
    matches = []
    if tree is not None:
        for node in ast.walk(tree):
            if isinstance(node, ast.Lambda):
                names = [a.arg for a in node.args.posonlyargs + node.args.args + node.args.kwonlyargs]
                if names == params:
                    matches.append(ast.get_source_segment(source, node) or "")
    if len(matches) == 1:
        return matches[0]
    extra = json.dumps(
        [repr(c) for c in code.co_consts if not isinstance(c, types.CodeType)] + list(code.co_names)
    )
    return "\n".join(matches or [source.strip()]) + "\n#" + extra
