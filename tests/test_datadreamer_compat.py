"""DataDreamer 0.46's own step tests, run against this project through the alias layer.

The eight files run in one pytest subprocess (tests/datadreamer_compat/run.py); the pass
count must not drop below the figure recorded in ``tests/datadreamer_compat/recorded.json``.
After a change that makes more tests pass, record the new figure (and the table in
docs/parity.md, "DataDreamer's test suite")::

    python -m tests.test_datadreamer_compat --record
"""

from __future__ import annotations

import ast
import sys

import pytest

from tests.datadreamer_compat.not_applicable import NOT_APPLICABLE
from tests.datadreamer_compat.run import FILES, HERE, REPO, Figures, read_recorded, run_suite, write_recorded
from tests.support.datadreamer_wheel import datadreamer_source

PARITY = REPO / "docs" / "parity.md"
BEGIN, END = "<!-- datadreamer-compat:figure -->", "<!-- /datadreamer-compat:figure -->"


def figure_table(figures: dict) -> str:
    """The markdown table of the recorded figure, per file and in all."""
    lines = ["| file | passed / applicable | not applicable |", "|---|---|---|"]
    for name in FILES:
        passed, applicable, skipped = figures["per_file"][name]
        lines.append(f"| `{name}` | {passed} / {applicable} | {skipped} |")
    total = figures["passed"], figures["applicable"]
    percent = 100 * total[0] / max(total[1], 1)
    skipped = sum(counts[2] for counts in figures["per_file"].values())
    lines.append(f"| **all** | **{total[0]} / {total[1]} ({percent:.1f} %)** | {skipped} |")
    return "\n".join(lines)


def _documented_table() -> str | None:
    text = PARITY.read_text()
    if BEGIN not in text or END not in text:
        return None
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip()


def record(figures: Figures) -> None:
    """Write the figure into recorded.json and the table into docs/parity.md."""
    write_recorded(figures)
    text = PARITY.read_text()
    table = figure_table(figures.as_json())
    if BEGIN not in text:
        raise SystemExit(f"{PARITY}: the markers {BEGIN} / {END} are missing from its last section.")
    head, rest = text.split(BEGIN, 1)
    PARITY.write_text(f"{head}{BEGIN}\n{table}\n{END}{rest.split(END, 1)[1]}")


@pytest.mark.slow
def test_datadreamer_suite_pass_count_holds() -> None:
    """The eight DataDreamer test files pass at least as many tests as recorded."""
    recorded = read_recorded()
    figures, output = run_suite(datadreamer_source())
    assert figures.applicable + sum(c[2] for c in figures.per_file.values()) > 0, output
    newly_failing = sorted(node for node in figures.failed if node not in set(recorded["failed"]))
    assert figures.passed >= recorded["passed"], (
        f"DataDreamer's tests: {figures.passed} / {figures.applicable} pass, below the recorded "
        f"{recorded['passed']} / {recorded['applicable']}. Newly failing: {newly_failing[:20]}\n{output}"
    )


def test_recorded_figure_is_documented() -> None:
    """docs/parity.md shows the figure recorded.json holds (``--record`` writes both)."""
    assert _documented_table() == figure_table(read_recorded())


def test_not_applicable_names_existing_tests() -> None:
    """Every not-applicable entry names a test of the eight files, with a reason."""
    tests = datadreamer_source() / "datadreamer" / "tests"
    names = set()
    for name in FILES:
        tree = ast.parse((tests / name).read_text())
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                names |= {
                    f"{name}::{node.name}::{f.name}" for f in node.body if isinstance(f, ast.FunctionDef)
                }
    assert not [key for key in NOT_APPLICABLE if key not in names]
    assert all(reason.strip() for reason in NOT_APPLICABLE.values())


def test_alias_layer_only_maps_names() -> None:
    """The alias package holds no behaviour: imports, ``__all__``, docstrings and
    ``missing(...)`` placeholders only (the one helper module, ``_missing.py``, aside)."""
    offenders = []
    for path in sorted((HERE / "alias").rglob("*.py")):
        if path.name == "_missing.py":
            continue
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
                continue  # a docstring
            if (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
            ):
                value = node.value
                if node.targets[0].id == "__all__" and isinstance(value, ast.List):
                    continue
                if isinstance(value, ast.Call) and getattr(value.func, "id", "") == "missing":
                    continue
            offenders.append(f"{path.relative_to(HERE)}:{node.lineno}")
    assert not offenders, f"the alias layer must only map names; behaviour at {offenders}"


if __name__ == "__main__":
    if sys.argv[1:] != ["--record"]:
        raise SystemExit("usage: python -m tests.test_datadreamer_compat --record")
    found, _ = run_suite(datadreamer_source())
    record(found)
    share = 100 * found.passed / max(found.applicable, 1)
    print(f"recorded: {found.passed} / {found.applicable} applicable DataDreamer tests pass ({share:.1f} %)")
