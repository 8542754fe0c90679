"""The ``dreamer`` command (also ``python -m dreamer_dagster``).

::

    dreamer materialize -f definitions.py --stale             # run what is unsynced or missing
    dreamer materialize -f definitions.py --stale --dry-run   # only say what would run, and why
    dreamer verify -f definitions.py                          # check the output folder, run nothing

``materialize`` loads the definitions file, asks the Dagster instance
(``DAGSTER_HOME``) which steps are stale and why (see
:mod:`~dreamer_dagster.staleness`), prints them, and leaves the run to
Dagster: ``dagster asset materialize -f FILE --select <those steps>``, with
the file's executor, pools and retry policies.

``verify`` checks the output folder against the declarations without
running a model (see :mod:`~dreamer_dagster.verify`); it exits 1 when
something drifted.

Each subcommand is one ``add_<name>(subparsers)`` function registering its
parser (``set_defaults(run=run_<name>)``) and one ``run_<name>(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import dagster as dg

from . import metadata as keys
from .staleness import StepStatus, stale_statuses
from .stop_signals import forward_signals

__all__ = ["load_definitions", "main"]


class CommandError(ValueError):
    """A command cannot go on; the message says why and what to do."""


# -- loading a definitions file ---------------------------------------------------------


def load_module(path: str | Path) -> ModuleType:
    """Import a definitions file as Dagster's ``-f`` does (its folder on ``sys.path``)."""
    file = Path(path).resolve()
    if not file.is_file():
        raise FileNotFoundError(f"No definitions file {str(file)!r}. Fix: pass -f path/to/definitions.py.")
    folder = str(file.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    name = f"__dreamer_definitions_{file.stem}__"
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise CommandError(f"{path}: not a Python file.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def find_definitions(module: ModuleType, attribute: str | None = None) -> tuple[str, dg.Definitions]:
    """The module's ``dg.Definitions`` (``attribute``, else ``defs``, else the only one) and its name."""
    if attribute is not None:
        value = getattr(module, attribute, None)
        if not isinstance(value, dg.Definitions):
            raise CommandError(f"{module.__file__} has no dg.Definitions named {attribute!r}.")
        return attribute, value
    found = {name: value for name, value in vars(module).items() if isinstance(value, dg.Definitions)}
    if "defs" in found:
        return "defs", found["defs"]
    if len(found) == 1:
        return next(iter(found.items()))
    if not found:
        raise CommandError(
            f"{module.__file__} holds no dg.Definitions. Fix: end it with `defs = pipeline.definitions()`."
        )
    raise CommandError(
        f"{module.__file__} defines {len(found)} dg.Definitions ({sorted(found)}). Fix: name one with -a."
    )


def load_definitions(path: str | Path, attribute: str | None = None) -> dg.Definitions:
    """The ``dg.Definitions`` of a Python file (its ``attribute``, else its ``defs`` or only one)."""
    return find_definitions(load_module(path), attribute)[1]


def instance_from_environment() -> dg.DagsterInstance:
    if not os.environ.get("DAGSTER_HOME"):
        raise CommandError(
            "DAGSTER_HOME is not set, so there is no run history to tell what is stale. Fix: "
            "export DAGSTER_HOME=/path/to/dagster_home (the folder `dagster dev` uses)."
        )
    return dg.DagsterInstance.get()


# -- materialize ------------------------------------------------------------------------


def add_materialize(subparsers: Any) -> None:
    help_text = "Materialize a pipeline's steps through Dagster (--stale: only what is unsynced or missing)."
    parser = subparsers.add_parser("materialize", help=help_text, description=help_text)
    parser.set_defaults(run=run_materialize)
    parser.add_argument("-f", "--python-file", required=True, help="The definitions file (as `dagster -f`).")
    parser.add_argument("-a", "--attribute", help="The dg.Definitions to use when the file holds several.")
    parser.add_argument(
        "--stale",
        action="store_true",
        help="Only the steps that are unsynced (changed code or upstream data) or never materialized.",
    )
    parser.add_argument("--dry-run", action="store_true", help="Print what would run, and why; run nothing.")
    parser.add_argument(
        "--select", help="Comma-separated asset keys to consider (default: every step of the definitions)."
    )


def run_materialize(args: argparse.Namespace) -> int:
    module = load_module(args.python_file)
    attribute, definitions = find_definitions(module, args.attribute)
    instance = instance_from_environment()
    keys = None
    if args.select:
        keys = [dg.AssetKey.from_user_string(key.strip()) for key in args.select.split(",") if key.strip()]
    statuses = stale_statuses(definitions, instance, keys)
    chosen = [status for status in statuses if status.needs_run] if args.stale else statuses
    output_folder = _output_folder(definitions)
    steps = _steps_by_key(module, definitions)
    _print_plan(chosen, statuses, args, steps, output_folder)
    if args.dry_run or not chosen:
        return 0
    command = [sys.executable, "-m", "dagster", "asset", "materialize", "-f", str(Path(args.python_file))]
    command += ["-a", attribute, "--select", ",".join(status.key.to_user_string() for status in chosen)]
    print(f"Running: {' '.join(command[1:])}", flush=True)
    process = subprocess.Popen(command)
    with forward_signals(process):  # SIGTERM / SIGINT stop the run, not just this process
        return process.wait()


def _print_plan(
    chosen: list[StepStatus],
    statuses: list[StepStatus],
    args: argparse.Namespace,
    steps: dict[dg.AssetKey, Any],
    output_folder: str | None,
) -> None:
    verb = "Would run" if args.dry_run else "Running"
    if not chosen:
        print(f"Nothing to run: all {len(statuses)} steps are in sync.")
        return
    scope = "stale or never materialized" if args.stale else "selected"
    print(f"{verb} {len(chosen)} of {len(statuses)} steps ({scope}):")
    width = max(len(status.key.to_user_string()) for status in chosen)
    for status in chosen:
        why = "; ".join(status.causes) if status.causes else "in sync (selected)"
        estimate = _estimate_columns(steps.get(status.key), output_folder)
        print(f"  {status.key.to_user_string():<{width}}  {status.status:<7}  {why}{estimate}")


def _estimate_columns(step: Any, output_folder: str | None) -> str:
    """A dry run's estimate of a step (:func:`~dreamer_dagster.cost.estimate_step`, offline):
    the prompts the model cache does not hold and their estimated USD, ``null`` where not
    known, with the reason."""
    from .cost import estimate_step

    if step is None or output_folder is None:
        return ""
    estimate = estimate_step(step, output_folder)
    prompts = "null" if estimate.uncached_prompts is None else estimate.uncached_prompts
    usd = "null" if estimate.estimated_usd is None else f"{estimate.estimated_usd:.4f}"
    note = f" ({estimate.note})" if estimate.note else ""
    return f"  [uncached prompts: {prompts}, est. USD: {usd}{note}]"


def _output_folder(definitions: dg.Definitions) -> str | None:
    from .io_manager import DreamerIOManager

    for resource in (definitions.resources or {}).values():
        if isinstance(resource, DreamerIOManager):
            return resource.output_folder
    return None


def _steps_by_key(module: ModuleType, definitions: dg.Definitions) -> dict[dg.AssetKey, Any]:
    """The file's steps by asset key (for the estimate columns)."""
    from .definitions import all_steps
    from .pipeline import Pipeline
    from .steps.step import Step

    declared: list[Step] = []
    for value in vars(module).values():
        if isinstance(value, Pipeline):
            declared.extend(value.steps)
        elif isinstance(value, Step) and getattr(value, "_declared", False):
            declared.append(value)
    by_folder = {step.folder: step for step in all_steps(declared)} if declared else {}
    found = {}
    for spec in definitions.resolve_all_asset_specs():
        folder = (spec.metadata or {}).get(keys.FOLDER)
        folder = getattr(folder, "value", folder)
        if folder in by_folder:
            found[spec.key] = by_folder[folder]
    return found


# -- verify ------------------------------------------------------------------------------


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


# -- the command line -------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dreamer", description="dreamer_dagster's command line.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_materialize(subparsers)
    add_verify(subparsers)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (FileNotFoundError, ValueError) as error:  # CommandError too
        print(f"dreamer {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
