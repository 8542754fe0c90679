"""docs/parity.md against DataDreamer 0.46's source: every public class, method and property of
its ``llms``, ``embedders``, ``retrievers``, ``task_models`` and ``trainers`` packages has a row,
every name of those packages imports from the matching ``dreamer_dagster`` package, and every
row of the models sections names a test that exists (a row marked "same" one at least), or,
marked "not here", the reason.

The member list is read from DataDreamer's wheel with ``ast`` (nothing of it is imported): for
each class in a package's ``__all__``, its constructor and the public methods and properties of
its class and its DataDreamer bases (``LLMAPI``, ``_Cachable``...). A row covers:

- ``Class(...)`` or a bare ``Class``: the constructor (a row whose status is "not available"
  covers every member of the class);
- ``Class.member``, and bare ``member`` names after it in the same first cell;
- ``Base.member`` with "every subclass" in its first cell: that member on every class whose
  DataDreamer bases include ``Base``.
"""

from __future__ import annotations

import ast
import importlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.datadreamer_wheel import datadreamer_source, public_names

PACKAGES = ("llms", "embedders", "retrievers", "task_models", "trainers")
PARITY = Path(__file__).resolve().parents[1] / "docs" / "parity.md"
TESTS = Path(__file__).resolve().parent

_MODELS_START, _MODELS_END = "<!-- parity:models -->", "<!-- /parity:models -->"
_TEST_REF = re.compile(r"`?(tests/[\w/]+\.py)(?:::(\w+))?")


@dataclass
class DDClass:
    name: str
    path: str
    bases: tuple[str, ...]
    members: set[str] = field(default_factory=set)


def _datadreamer_classes(root: Path) -> dict[str, list[DDClass]]:
    found: dict[str, list[DDClass]] = {}
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if "tests" in relative.parts:
            continue
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if not isinstance(node, ast.ClassDef):
                continue
            bases = tuple(ast.unparse(b).split(".")[-1].split("[")[0] for b in node.bases)
            cls = DDClass(node.name, str(relative), bases)
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and not item.name.startswith(
                    "_"
                ):
                    cls.members.add(item.name)
            found.setdefault(node.name, []).append(cls)
    return found


def _lineage(name: str, package: str, classes: dict[str, list[DDClass]]) -> list[DDClass]:
    """The class and its DataDreamer bases (depth first), each once."""
    candidates = classes.get(name, [])
    if not candidates:
        return []
    cls = next((c for c in candidates if c.path.startswith(f"{package}/")), candidates[0])
    out = [cls]
    for base in cls.bases:
        out += [b for b in _lineage(base, package, classes) if b not in out]
    return out


def datadreamer_members() -> dict[str, dict[str, tuple[list[str], set[str]]]]:
    """``{package: {class: (its lineage's names, its public members)}}`` from the wheel."""
    root = datadreamer_source() / "datadreamer"
    classes = _datadreamer_classes(root)
    out: dict[str, dict[str, tuple[list[str], set[str]]]] = {}
    for package in PACKAGES:
        out[package] = {}
        for name in public_names(root, package):
            lineage = _lineage(name, package, classes)
            members = set().union(*(c.members for c in lineage)) if lineage else set()
            out[package][name] = ([c.name for c in lineage], members)
    return out


@dataclass(frozen=True)
class Row:
    cells: tuple[str, ...]
    line: int

    @property
    def status(self) -> str:
        return self.cells[2].strip().strip("*").lower() if len(self.cells) > 2 else ""


def table_rows(text: str) -> list[Row]:
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("|") and not re.match(r"^\|[-| ]+\|$", line):
            cells = tuple(cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1])
            rows.append(Row(cells, number))
    return rows


def covered(rows: list[Row], public: set[str]) -> tuple[set[tuple[str, str]], set[str], set[str]]:
    """``(named members, constructors named, classes marked not available)`` of the first cells."""
    members: set[tuple[str, str]] = set()
    constructors: set[str] = set()
    unavailable: set[str] = set()
    for row in rows:
        current = None
        for span in re.findall(r"`([^`]+)`", row.cells[0]):
            if match := re.match(r"^(\w+)\.(\w+)", span):
                current = match.group(1)
                members.add((current, match.group(2)))
                if "every subclass" in row.cells[0]:
                    members.add((current, "*" + match.group(2)))
            elif (match := re.match(r"^(\w+)(\(|$)", span)) and match.group(1) in public:
                current = match.group(1)
                constructors.add(current)
                if row.status.startswith("not available"):
                    unavailable.add(current)
            elif re.fullmatch(r"\w+", span) and current is not None:
                members.add((current, span))
                if "every subclass" in row.cells[0]:
                    members.add((current, "*" + span))
    return members, constructors, unavailable


def missing_rows(package: str, classes: dict[str, tuple[list[str], set[str]]], text: str) -> list[str]:
    members, constructors, unavailable = covered(table_rows(text), set(classes))
    missing = []
    for name, (lineage, names) in sorted(classes.items()):
        if name in unavailable:
            continue
        if name not in constructors:
            missing.append(f"{name}(...)")
        for member in sorted(names):
            if (name, member) in members or any((base, "*" + member) in members for base in lineage):
                continue
            missing.append(f"{name}.{member}")
    return missing


def _cases() -> list:
    try:
        found = datadreamer_members()
    except pytest.skip.Exception as skipped:  # no PyPI: one skipped test says why
        return [pytest.param(None, None, marks=pytest.mark.skip(reason=str(skipped)))]
    return [pytest.param(package, found[package], id=package) for package in PACKAGES]


@pytest.mark.parametrize(("package", "classes"), _cases())
def test_every_public_member_has_a_row(package: str, classes: dict) -> None:
    missing = missing_rows(package, classes, PARITY.read_text(encoding="utf-8"))
    assert not missing, f"docs/parity.md has no row for DataDreamer's {package}: {', '.join(missing)}"


@pytest.mark.parametrize(("package", "classes"), _cases())
def test_every_name_imports_from_the_matching_package(package: str, classes: dict) -> None:
    for name in classes:
        scope: dict = {}
        exec(f"from dreamer_dagster.{package} import {name}", scope)  # the import a ported script makes
        assert scope[name] is getattr(importlib.import_module(f"dreamer_dagster.{package}"), name)
        assert name in importlib.import_module(f"dreamer_dagster.{package}").__all__


def models_section(text: str) -> str:
    assert _MODELS_START in text and _MODELS_END in text, "docs/parity.md lost its models markers"
    return text.split(_MODELS_START, 1)[1].split(_MODELS_END, 1)[0]


def test_every_models_row_names_a_test_that_exists_or_a_reason() -> None:
    problems = []
    text = PARITY.read_text(encoding="utf-8")
    offset = text[: text.index(_MODELS_START)].count("\n")
    for row in table_rows(models_section(text)):
        row = Row(row.cells, row.line + offset)
        if row.cells[0] in ("DataDreamer item",) or len(row.cells) < 4:
            continue
        refs = _TEST_REF.findall(row.cells[-1])
        for file, name in refs:
            path = TESTS.parent / file
            if not path.exists():
                problems.append(f"line {row.line}: {file} does not exist")
            elif name and not re.search(rf"^(async )?def {name}\(", path.read_text(encoding="utf-8"), re.M):
                problems.append(f"line {row.line}: {file} has no test {name}")
        if row.status.startswith("not here"):
            if len(row.status.removeprefix("not here").strip(" :")) < 20:
                problems.append(f"line {row.line}: a 'not here' row needs its reason in its status")
        elif not any(name for _, name in refs):
            problems.append(
                f"line {row.line}: status {row.status!r} names no test (tests/FILE.py::test_NAME)"
            )
    assert not problems, "\n".join(problems)


def test_the_row_rules_catch_a_missing_member() -> None:
    """The coverage rules themselves, on a made-up package."""
    classes = {"Base": (["Base"], {"run", "count"}), "Child": (["Child", "Base"], {"run", "count", "own"})}
    text = (
        "| item | here | status | backed by |\n|---|---|---|---|\n"
        "| `Base(a, b)`, `Child(a)` | x | same | t |\n"
        "| `Base.run` (every subclass) | x | same | t |\n"
        "| `Base.count` / `run` | x | same | t |\n"
        "| `Child.own` | x | same | t |\n"
    )
    assert missing_rows("p", classes, text) == ["Child.count"]
    assert missing_rows("p", classes, text + "| `Child.count` | x | same | t |\n") == []
    gone = "| `Child` | — | not available: reason | t |\n"
    assert missing_rows("p", classes, text.replace("| `Child.own` | x | same | t |\n", "") + gone) == []
