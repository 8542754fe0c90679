"""DataDreamer 0.46's wheel, the yardstick: fetched from PyPI at test time, never vendored.

``datadreamer_source()`` downloads ``datadreamer.dev==0.46.0`` once with
``pip download --no-deps`` into the virtualenv (``<sys.prefix>/datadreamer-wheel/``),
unpacks it beside (``<sys.prefix>/datadreamer-0.46.0/``) and returns that folder: it holds
the ``datadreamer`` package source, and its test suite under ``datadreamer/tests/``.
Nothing of it is imported: its source is read (signatures) and its tests run through the
alias layer. Without PyPI the test skips as a missing service (a failure under CI).
"""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.support.services import skip_missing_service

__all__ = ["DATADREAMER_VERSION", "datadreamer_source", "public_names"]

DATADREAMER_VERSION = "0.46.0"
_WHEEL = f"datadreamer_dev-{DATADREAMER_VERSION}-py3-none-any.whl"


def datadreamer_source() -> Path:
    """The unpacked wheel: a folder with ``datadreamer/`` (source and ``tests/``)."""
    root = Path(sys.prefix)
    target = root / f"datadreamer-{DATADREAMER_VERSION}"
    if (target / "datadreamer" / "__init__.py").exists():
        return target
    wheels = root / "datadreamer-wheel"
    wheel = wheels / _WHEEL
    if not wheel.exists():
        wheels.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(wheels)]
            + [f"datadreamer.dev=={DATADREAMER_VERSION}"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0 or not wheel.exists():
            skip_missing_service(
                f"DataDreamer {DATADREAMER_VERSION}'s wheel from PyPI ({done.stderr.strip()[-300:]})",
                "pip must reach PyPI: pip download --no-deps datadreamer.dev==0.46.0",
            )
    partial = target.with_name(target.name + ".partial")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(partial)
    partial.rename(target)  # whole or not at all: a killed unpack is never taken for a finished one
    return target


def public_names(root: Path, package: str) -> list[str]:
    """The ``__all__`` of DataDreamer's ``<package>/__init__.py`` under ``root``, read with ``ast``."""
    tree = ast.parse((root / package / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in node.targets):
            return [ast.literal_eval(e) for e in node.value.elts]
    raise AssertionError(f"no __all__ in DataDreamer's {package}/__init__.py")
