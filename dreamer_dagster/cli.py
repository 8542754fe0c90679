"""The ``dreamer`` command (also ``python -m dreamer_dagster``).

``dreamer verify -f definitions.py`` checks the output folder against the
declarations without running a model (see :mod:`~dreamer_dagster.verify`);
it exits 1 when something drifted. Each subcommand is one ``add_<name>``
function registering its parser and one ``run_<name>`` function.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dagster as dg

__all__ = ["load_definitions", "main"]


def load_definitions(path: str | Path, attribute: str | None = None) -> dg.Definitions:
    """The ``dg.Definitions`` of a Python file (its ``attribute``, else its only or ``defs`` one)."""
    file = Path(path).resolve()
    if not file.is_file():
        raise FileNotFoundError(f"No definitions file {str(file)!r}. Fix: pass -f path/to/definitions.py.")
    spec = importlib.util.spec_from_file_location(f"_dreamer_definitions_{file.stem}", file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(file.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(file.parent))
    if attribute is not None:
        found = getattr(module, attribute, None)
        if not isinstance(found, dg.Definitions):
            raise ValueError(f"{file} has no dg.Definitions named {attribute!r}.")
        return found
    candidates = {name: value for name, value in vars(module).items() if isinstance(value, dg.Definitions)}
    if "defs" in candidates:
        return candidates["defs"]
    if len(candidates) == 1:
        return next(iter(candidates.values()))
    raise ValueError(
        f"{file} defines {len(candidates)} dg.Definitions ({sorted(candidates)}). Fix: name one with -a."
    )


def add_verify(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="check the output folder against the declarations (no model runs)",
        description=(
            "Check each finished step folder against its declaration: the fingerprint, the data "
            "version of _dataset / _model, and the data card's upstream steps. Exits 1 on drift."
        ),
    )
    parser.add_argument("-f", "--python-file", required=True, help="the definitions file")
    parser.add_argument("-a", "--attribute", default=None, help="the dg.Definitions variable to use")
    parser.add_argument("--output-folder", default=None, help="check this folder instead")
    parser.set_defaults(run=run_verify)


def run_verify(args: argparse.Namespace) -> int:
    from .verify import verify_definitions

    defs = load_definitions(args.python_file, args.attribute)
    report = verify_definitions(defs, args.output_folder)
    for line in report.lines():
        print(line)
    return 1 if report.drifted else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dreamer", description="dreamer_dagster's command line.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_verify(subparsers)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (FileNotFoundError, ValueError) as error:
        print(f"dreamer {args.command}: {error}", file=sys.stderr)
        return 2
