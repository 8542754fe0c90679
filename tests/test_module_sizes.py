"""Every module of ``dreamer_dagster/`` stays at most 500 lines, unless CONTRIBUTING.md's
"Modules over 500 lines" section names it and says why (a line ``- `path`: why``).

A module grows past the limit by accretion; splitting it by concept (a room a concept,
see the rooms table) is the fix. The list may hold only real exceptions: a module named
there that is no longer over the limit, or that does not exist, fails too, so the list
never outlives its reason.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "dreamer_dagster"
CONTRIBUTING = ROOT / "CONTRIBUTING.md"
LIMIT = 500
SECTION = "## Modules over 500 lines"


def module_lines() -> dict[str, int]:
    """``dreamer_dagster/...py`` (relative to the repository) -> its number of lines."""
    return {
        path.relative_to(ROOT).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for path in sorted(PACKAGE.rglob("*.py"))
        if "__pycache__" not in path.parts
    }


def allowed_exceptions(text: str) -> dict[str, str]:
    """The modules CONTRIBUTING.md's section lists, with the reason each line gives."""
    if SECTION not in text:
        return {}
    body = text.split(SECTION, 1)[1]
    body = re.split(r"^## ", body, maxsplit=1, flags=re.M)[0]
    found = {}
    for match in re.finditer(r"^- `([^`]+\.py)`\s*[:\u2014-]\s*(.*)$", body, re.M):
        found[match.group(1)] = match.group(2).strip()
    return found


def test_contributing_has_the_section():
    assert SECTION in CONTRIBUTING.read_text(encoding="utf-8"), (
        f"CONTRIBUTING.md has no {SECTION!r} section (it lists the exceptions, or says there are none)."
    )


def test_no_module_over_the_limit_without_a_reason():
    exceptions = allowed_exceptions(CONTRIBUTING.read_text(encoding="utf-8"))
    over = {path: count for path, count in module_lines().items() if count > LIMIT}
    unexplained = {path: count for path, count in over.items() if not exceptions.get(path)}
    assert not unexplained, (
        f"modules over {LIMIT} lines: {unexplained}. Fix: split each by concept into rooms of its "
        f"own (re-export the public names from where they were), or add a line "
        f"'- `<path>`: <why>' under {SECTION!r} in CONTRIBUTING.md."
    )


def test_every_listed_module_is_still_over_the_limit():
    exceptions = allowed_exceptions(CONTRIBUTING.read_text(encoding="utf-8"))
    lines = module_lines()
    stale = {path: lines.get(path) for path in exceptions if lines.get(path, 0) <= LIMIT}
    assert not stale, (
        f"CONTRIBUTING.md lists {stale} under {SECTION!r}, but they are not over {LIMIT} lines "
        "(or do not exist). Fix: remove their lines."
    )


def test_the_reader_of_the_list():
    text = f"intro\n{SECTION}\n\n- `dreamer_dagster/a.py`: one generated table\n- none\n\n## Next\n- `dreamer_dagster/b.py`: x\n"
    assert allowed_exceptions(text) == {"dreamer_dagster/a.py": "one generated table"}
    assert allowed_exceptions("no section") == {}
