"""Every public signature of the five model packages against DataDreamer 0.46's source.

DataDreamer's wheel is parsed with ``ast`` (nothing of it is imported). For each class in
``__all__`` of its ``llms``, ``embedders``, ``retrievers``, ``task_models`` and ``trainers``
packages, and each public ``__init__`` / ``run`` / ``train*`` / ``publish_to_hf_hub`` /
``export_to_disk`` it has (its own or inherited), this project's same-named callable must
take DataDreamer's positional-or-keyword parameters first, in order, with the same names and
defaults; DataDreamer's keyword-only parameters by name; and whatever this project adds
after them, keyword-only (or through ``**kwargs``). A drift fails with a readable diff.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.datadreamer_wheel import datadreamer_source, public_names

PACKAGES = ("llms", "embedders", "retrievers", "task_models", "trainers")

# DataDreamer classes this project does not implement: present, but constructing one
# raises a clear error that names the class and what to use instead.
UNAVAILABLE = {"Petals", "CTransformers", "OpenAIAssistant"}

# DataDreamer's sentinel defaults and what stands for them here (documented in
# docs/parity.md, "DataDreamer's sentinel defaults").
SENTINELS: dict[str, tuple[Any, ...]] = {
    "DEFAULT": (None,),  # "the model's / library's own default": None here
    "AUTO": (None, "auto"),  # "decide from the model or the data": None or "auto" here
}

# A sentinel's equivalent for one parameter only: (parameter, sentinel) -> values here.
PARAMETER_SENTINELS: dict[tuple[str, str], tuple[Any, ...]] = {
    # fsdp=AUTO: FSDP when several devices are given, else nothing; fsdp=True here means the same
    ("fsdp", "AUTO"): (True,),
}

# Parameters DataDreamer requires that are optional here: every DataDreamer call still means
# the same; leaving one out is this project's addition (None: no validation split), or fails
# at declaration naming the argument (reward_model).
OPTIONAL_HERE: dict[str, str] = {
    "validation_*": "no validation split: trains without early stopping on a validation loss",
    "reward_model": "TrainHFPPO.train: fails at declaration naming reward_model when left out",
}

_BASE_API = (
    "an abstract base's constructor or abstract method: the subclass API, which differs from "
    "DataDreamer's (issue 16, 'the base Trainer has a different subclass API'); a ported script "
    "calls the concrete classes, whose signatures are checked here"
)
# Known drifts, each with its reason (and a docs/parity.md row), keyed by (class, method).
KNOWN_DRIFTS: dict[tuple[str, str], str] = {
    ("LLM", "__init__"): _BASE_API,
    ("Embedder", "__init__"): _BASE_API,
    ("Retriever", "__init__"): _BASE_API,
    ("TaskModel", "__init__"): _BASE_API,
    ("TaskModel", "run"): _BASE_API,
    ("TrainOpenAIFineTune", "train"): (
        "DataDreamer's **kwargs only enter its fingerprint (nothing reaches the API); here an "
        "unknown keyword raises TypeError naming it rather than being silently dropped"
    ),
}

_METHODS = ("__init__", "run", "publish_to_hf_hub", "export_to_disk")
_MISSING = object()


@dataclass(frozen=True)
class DDParam:
    name: str
    kind: str  # "positional" | "keyword" | "*args" | "**kwargs"
    default: ast.expr | None


@dataclass(frozen=True)
class DDClass:
    name: str
    module: str
    bases: tuple[str, ...]
    methods: dict[str, tuple[DDParam, ...]]


def _params(fn: ast.FunctionDef) -> tuple[DDParam, ...]:
    a = fn.args
    positional = list(a.posonlyargs) + list(a.args)
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(a.defaults)) + list(a.defaults)
    out = [DDParam(arg.arg, "positional", d) for arg, d in zip(positional, defaults)][1:]  # no self
    if a.vararg:
        out.append(DDParam(a.vararg.arg, "*args", None))
    out += [DDParam(arg.arg, "keyword", d) for arg, d in zip(a.kwonlyargs, a.kw_defaults)]
    if a.kwarg:
        out.append(DDParam(a.kwarg.arg, "**kwargs", None))
    return tuple(out)


def _wanted(name: str) -> bool:
    return name in _METHODS or (name.startswith("train") and not name.startswith("_"))


# DataDreamer's module-level constants used as defaults (``DEFAULT_BATCH_SIZE = 10``).
_CONSTANTS: dict[str, Any] = {}


def _classes(root: Path) -> dict[str, list[DDClass]]:
    """Every class of DataDreamer's package by name, with its own wanted methods."""
    found: dict[str, list[DDClass]] = {}
    for path in sorted(root.rglob("*.py")):
        if "tests" in path.relative_to(root).parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target = node.targets[0]
                if isinstance(target, ast.Name) and target.id.isupper():
                    with contextlib.suppress(ValueError):
                        _CONSTANTS[target.id] = ast.literal_eval(node.value)
            if not isinstance(node, ast.ClassDef):
                continue
            bases = tuple(ast.unparse(b).split(".")[-1].split("[")[0] for b in node.bases)
            methods = {
                item.name: _params(item)
                for item in node.body
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and _wanted(item.name)
            }
            module = ".".join(path.relative_to(root.parent).with_suffix("").parts)
            found.setdefault(node.name, []).append(DDClass(node.name, module, bases, methods))
    return found


def _resolved(name: str, classes: dict[str, list[DDClass]], package: str) -> dict[str, tuple]:
    """A class's wanted methods, inherited ones included (DataDreamer's MRO, by base name)."""
    candidates = classes.get(name, [])
    if not candidates:
        return {}
    cls = next((c for c in candidates if f".{package}." in f".{c.module}."), candidates[0])
    methods: dict[str, tuple] = {}
    for base in reversed(cls.bases):
        methods.update(_resolved(base, classes, package))
    methods.update(cls.methods)
    return methods


def _datadreamer() -> list[tuple[str, str, str, tuple[DDParam, ...]]]:
    root = datadreamer_source() / "datadreamer"
    classes = _classes(root)
    cases = []
    for package in PACKAGES:
        for name in public_names(root, package):
            for method, params in sorted(_resolved(name, classes, package).items()):
                cases.append((package, name, method, params))
    return cases


def _optional_here(name: str) -> bool:
    return name in OPTIONAL_HERE or any(
        key.endswith("*") and name.startswith(key[:-1]) for key in OPTIONAL_HERE
    )


def _default_ok(name: str, dd: ast.expr, ours: Any) -> tuple[bool, str]:
    text = ast.unparse(dd)
    if text in SENTINELS:
        allowed = PARAMETER_SENTINELS.get((name, text), SENTINELS[text])
        return any(ours is s or (ours == s and type(ours) is type(s)) for s in allowed), text
    try:
        value = _CONSTANTS[text] if text in _CONSTANTS else ast.literal_eval(dd)
    except ValueError:
        return ours is not inspect.Parameter.empty and repr(ours) == text, text
    return (ours == value and type(ours) is type(value)), text


def _drift(params: tuple[DDParam, ...], ours: inspect.Signature) -> list[str]:
    """The differences, one readable line each; none when the signature is DataDreamer's."""
    problems: list[str] = []
    here = [p for p in ours.parameters.values() if p.name not in ("self", "cls")]
    kinds = inspect.Parameter
    var_keyword = any(p.kind is kinds.VAR_KEYWORD for p in here)
    dd_positional = [p for p in params if p.kind == "positional"]
    for i, dd in enumerate(dd_positional):
        p = here[i] if i < len(here) else None
        if p is None or p.kind not in (kinds.POSITIONAL_OR_KEYWORD, kinds.POSITIONAL_ONLY):
            got = "nothing" if p is None else f"{p.name} ({p.kind.description})"
            problems.append(f"slot {i + 1}: DataDreamer has {dd.name!r}, here {got}")
            break
        if p.name != dd.name:
            problems.append(f"slot {i + 1}: DataDreamer has {dd.name!r}, here {p.name!r}")
            break
        if dd.default is None:
            if p.default is not kinds.empty and not _optional_here(dd.name):
                problems.append(f"{dd.name}: required in DataDreamer, here defaults to {p.default!r}")
        else:
            ok, text = _default_ok(dd.name, dd.default, p.default)
            if not ok:
                got = "no default" if p.default is kinds.empty else repr(p.default)
                problems.append(f"{dd.name}: DataDreamer's default is {text}, here {got}")
    if problems:
        return problems
    names = {p.name: p for p in here}
    for dd in params:
        if dd.kind == "keyword" and dd.name not in names and not var_keyword:
            problems.append(f"{dd.name}: DataDreamer's keyword-only parameter is missing here")
        if dd.kind == "**kwargs" and not var_keyword:
            problems.append(f"**{dd.name}: DataDreamer takes extra keyword arguments, here none")
    forwards = any(dd.kind == "*args" for dd in params)  # DataDreamer's *args: a member's run's slots
    for p in here[len(dd_positional) :]:
        if p.kind in (kinds.POSITIONAL_OR_KEYWORD, kinds.POSITIONAL_ONLY) and not forwards:
            problems.append(f"{p.name}: added here as positional slot; must be keyword-only")
    return problems


def _ours(package: str, name: str) -> Any:
    module = importlib.import_module(f"dreamer_dagster.{package}")
    return getattr(module, name, _MISSING)


def _cases() -> list[Any]:
    try:
        cases = _datadreamer()
    except pytest.skip.Exception as skipped:  # no PyPI: one skipped test says why
        return [pytest.param(None, None, None, None, marks=pytest.mark.skip(reason=str(skipped)))]
    return [pytest.param(*c, id=f"{c[1]}.{c[2]}") for c in cases]


def _unavailable_error(cls: Any, name: str) -> None:
    with pytest.raises(NotImplementedError) as raised:
        cls("some-model")
    message = str(raised.value)
    assert name in message and "Fix:" in message, f"{name}: its error must name it and the fix: {message!r}"


@pytest.mark.parametrize(("package", "name", "method", "params"), _cases())
def test_signature_is_datadreamers(package: str, name: str, method: str, params: tuple) -> None:
    ours = _ours(package, name)
    assert ours is not _MISSING, f"dreamer_dagster.{package} has no {name} (DataDreamer's {package}.{name})"
    if name in UNAVAILABLE:
        _unavailable_error(ours, name)
    target = ours.__init__ if method == "__init__" else getattr(ours, method, _MISSING)
    if target is _MISSING and (name, method) in KNOWN_DRIFTS:
        pytest.xfail(KNOWN_DRIFTS[(name, method)])
    assert target is not _MISSING, f"{name}.{method} is missing here (DataDreamer has it)"
    if name in UNAVAILABLE:
        return  # constructing it raises the clear error checked above; its signature is moot
    problems = _drift(params, inspect.signature(target))
    dd_text = ", ".join(
        ("*" if p.kind == "*args" else "**" if p.kind == "**kwargs" else "")
        + p.name
        + ("" if p.default is None else f"={ast.unparse(p.default)}")
        for p in params
    )
    if (name, method) in KNOWN_DRIFTS:
        assert problems, f"{name}.{method} is listed as a known drift but matches now: remove it"
        pytest.xfail(KNOWN_DRIFTS[(name, method)])
    assert not problems, (
        f"{name}.{method} differs from DataDreamer 0.46's:\n  DataDreamer: ({dd_text})\n"
        f"  here:        {inspect.signature(target)}\n  - " + "\n  - ".join(problems)
    )


def test_every_datadreamer_class_is_here() -> None:
    root = datadreamer_source() / "datadreamer"
    missing = [
        f"{package}.{name}"
        for package in PACKAGES
        for name in public_names(root, package)
        if _ours(package, name) is _MISSING
    ]
    assert not missing, f"DataDreamer classes missing here: {missing}"


def test_the_comparison_catches_a_drift() -> None:
    """The comparison itself: a swapped slot, a changed default and a positional extra."""
    fn = ast.parse("def f(self, a, b=1, c=DEFAULT, **kwargs): pass").body[0]
    params = _params(fn)

    def sig(src: str) -> inspect.Signature:
        scope: dict[str, Any] = {}
        exec(src, scope)
        return inspect.signature(scope["f"])

    assert _drift(params, sig("def f(self, a, b=1, c=None, *, extra=2, **kw): pass")) == []
    assert _drift(params, sig("def f(self, b=1, a=0, c=None, **kw): pass"))
    assert _drift(params, sig("def f(self, a, b=2, c=None, **kw): pass"))
    assert _drift(params, sig("def f(self, a, b=1, c=None, extra=2, **kw): pass"))
    assert _drift(params, sig("def f(self, a, b=1, c=None): pass"))
