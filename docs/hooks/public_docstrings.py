"""MkDocs hook: a warning for each public class or function without a docstring.

"Public" is each name in ``__all__`` of ``dreamer_dagster`` and of its public subpackages
(:data:`PACKAGES`). ``mkdocs build --strict`` (``make docs``, ``make test``) turns each
warning into a failed build, so a public item cannot ship undocumented.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import sys
from pathlib import Path
from typing import Any

__all__ = ["PACKAGES", "missing_docstrings", "on_pre_build", "packages_without_a_page"]

# The packages whose ``__all__`` is the public API (each has a page under docs/reference/api/).
PACKAGES = (
    "dreamer_dagster",
    "dreamer_dagster.steps",
    "dreamer_dagster.steps.prompt",
    "dreamer_dagster.llms",
    "dreamer_dagster.embedders",
    "dreamer_dagster.retrievers",
    "dreamer_dagster.task_models",
    "dreamer_dagster.trainers",
    "dreamer_dagster.testing",
    "dreamer_dagster.components",
    "dreamer_dagster.pipes",
)

log = logging.getLogger("mkdocs.hooks.public_docstrings")


def _own_docstring(obj: Any) -> str | None:
    """The docstring written on ``obj`` itself (a class does not count its base's)."""
    if inspect.isclass(obj):
        return obj.__dict__.get("__doc__")
    return getattr(obj, "__doc__", None)


def missing_docstrings(packages: tuple[str, ...] = PACKAGES) -> list[str]:
    """``package.name`` of each public class or function that has no docstring of its own."""
    missing = []
    for package in packages:
        module = importlib.import_module(package)
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isroutine(obj)):
                continue  # constants (``__version__``) and instances carry no docstring
            doc = _own_docstring(obj)
            if not (doc and doc.strip()):
                missing.append(f"{package}.{name}")
    return missing


def packages_without_a_page(docs_dir: Path, packages: tuple[str, ...] = PACKAGES) -> list[str]:
    """Each public package that no page under ``reference/api/`` renders (``::: package``)."""
    pages = "\n".join(p.read_text(encoding="utf-8") for p in (docs_dir / "reference" / "api").glob("*.md"))
    rendered = {line.strip()[4:].strip() for line in pages.splitlines() if line.strip().startswith("::: ")}
    return [package for package in packages if package not in rendered]


def on_pre_build(config: Any, **kwargs: Any) -> None:
    """Log one warning per public item without a docstring, and per public package without
    a reference page (``--strict`` fails the build)."""
    root = str(Path(config["config_file_path"]).resolve().parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    for package in packages_without_a_page(Path(config["docs_dir"])):
        log.warning(
            "%s is a public package but no page under docs/reference/api/ renders it: add one "
            "with '::: %s' and put it in mkdocs.yml's nav.",
            package,
            package,
        )
    for name in missing_docstrings():
        log.warning(
            "%s is public (in __all__) but has no docstring: add one saying what it does and what it writes.",
            name,
        )
