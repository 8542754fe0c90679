"""The external side of a step run through Dagster Pipes: ``python -m dreamer_dagster.pipes.worker``.

It reads the launch spec from the Pipes ``extras`` (see :mod:`~dreamer_dagster.pipes.launch`),
imports the module that declared the step (the same user code as the orchestrator's),
finds the step by key and checks its fingerprint, loads its inputs from the output folder,
runs it with the in-process code (``run_staged``) and commits its folder with the IO
manager's ``commit_staged`` (step.json last), then reports the materialization (metadata
and data version), the selected checks' results and its log lines through Pipes.

A SIGTERM or SIGINT (the orchestrator's client forwards a run's termination) stops the
step as in process: the answers received are in the model cache, a trainer saves a
checkpoint, and the process exits ``128 + signum``. A failure a retry can fix exits
:data:`~dreamer_dagster.pipes.launch.RETRYABLE_EXIT_CODE`.
"""

from __future__ import annotations

import importlib
import importlib.util
import signal
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["find_step", "main", "run_spec"]


class _Stopped(KeyboardInterrupt):
    """SIGTERM, raised where the step runs as SIGINT is (answers kept, checkpoint saved)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def main(argv: Iterable[str] | None = None) -> int:
    """Run the step the Pipes context names; the process's exit code."""
    from dagster_pipes import open_dagster_pipes

    from .launch import PIPES_EXTRA, RETRYABLE_EXIT_CODE

    stopped: dict[str, int] = {}

    def stop(signum: int, frame: Any) -> None:
        stopped.setdefault("signum", signum)
        raise _Stopped(signum)

    args = list(sys.argv[1:] if argv is None else argv)
    options: dict[str, Any] = {}
    if "--s3-messages" in args:  # EMR: messages through S3 (the client's PipesS3MessageReader)
        import boto3
        from dagster_pipes import PipesS3MessageWriter

        options["message_writer"] = PipesS3MessageWriter(client=boto3.client("s3"))
    signal.signal(signal.SIGTERM, stop)
    try:
        with open_dagster_pipes(**options) as pipes:
            run_spec(pipes.get_extra(PIPES_EXTRA), pipes)
    except KeyboardInterrupt:
        return 128 + stopped.get("signum", signal.SIGINT)
    except Exception as error:
        from ..errors import is_retryable, is_transient

        print(f"[dreamer_dagster pipes worker] {type(error).__name__}: {error}", file=sys.stderr)
        return RETRYABLE_EXIT_CODE if is_retryable(error) and is_transient(error) else 1
    return 0


def run_spec(spec: Mapping[str, Any], pipes: Any) -> dict:
    """Run the step of ``spec``, commit it, report it through ``pipes``; its step.json record."""
    import dagster as dg

    from .. import metadata as keys
    from ..checks import check_results
    from ..io_manager import DreamerIOManager, StagedStep, load_finished
    from ..metadata import step_metadata
    from ..output_folder import OutputFolder
    from ..steps.asset_factory import run_staged
    from .reporting import to_pipes_metadata

    step = find_step(spec)
    config = spec["output_folder"]
    output = OutputFolder(
        config["path"],
        config.get("storage_options") or None,
        config.get("local_folder"),
        config.get("lease_seconds"),
    )
    step_folder = output.step(step.folder)
    upstream = {
        parent.key: load_finished(output.step(parent.folder), parent.fingerprint)
        for parent in step.upstream()
    }
    pipes.log.info(
        f"Step {step.name!r} is running in a Dagster Pipes process (fingerprint {step.fingerprint})."
    )
    record, staged = run_staged(step, output, step_folder, upstream, pipes.log, (), spec.get("run_id"))
    DreamerIOManager.commit_staged(StagedStep(step_folder, staged, record))
    record = step_folder.step_json() or record
    metadata = step_metadata(step_folder, record)  # as the in-process asset body records it
    metadata.update(keys.openai_usage(step.models(), record.get("stats") or {}))
    pipes.report_asset_materialization(
        metadata=to_pipes_metadata(metadata),
        data_version=record.get("data_version"),
        asset_key=spec.get("asset_key"),
    )
    asset_key = dg.AssetKey.from_user_string(spec["asset_key"])
    selected = [dg.AssetCheckKey(asset_key, name) for name in spec.get("checks") or ()]
    for result in check_results(step, asset_key, record, selected):
        pipes.report_asset_check(
            check_name=result.check_name,
            passed=result.passed,
            severity=result.severity.value,
            metadata=to_pipes_metadata(result.metadata or {}),
            asset_key=spec["asset_key"],
        )
    return record


def find_step(spec: Mapping[str, Any]) -> Any:
    """The step the spec names, declared by importing its module as the orchestrator did;
    an error naming the fix when this process's code declares it otherwise or not at all."""
    from .launch import remembered_step

    module = _import(spec)
    key, fingerprint = spec["key"], spec["fingerprint"]
    step = remembered_step(key, fingerprint)
    if step is not None:
        return step
    found = [step for step in _steps_in(module) if step.key == key]
    for step in found:
        if step.fingerprint == fingerprint:
            return step
    where = spec.get("module") or spec.get("file")
    if found:
        raise RuntimeError(
            f"Step {spec['step']!r}: the code in this process ({where}) declares it with fingerprint "
            f"{found[0].fingerprint}, but the orchestrator ran fingerprint {fingerprint}. Fix: run "
            "the external process on the same code as the orchestrator (the same image or checkout)."
        )
    raise RuntimeError(
        f"Step {spec['step']!r}: importing {where} declares no step with key {key!r}. Fix: declare "
        "the step at the module's top level (or build its definitions there), so that importing "
        "the module declares it, and run the external process on the same code."
    )


def _import(spec: Mapping[str, Any]) -> ModuleType | None:
    """The declaring module, imported by name where that works (the orchestrator's roots
    on ``sys.path``), else from its file."""
    for root in reversed(spec.get("sys_path") or []):
        if Path(root).is_dir() and root not in sys.path:
            sys.path.insert(0, root)
    name, file = spec.get("module"), spec.get("file")
    if name:
        try:
            return importlib.import_module(name)
        except ImportError:
            if not file or not Path(file).is_file():
                raise
    if not file:
        return None
    if not Path(file).is_file():
        raise FileNotFoundError(
            f"Step {spec['step']!r} was declared in {file}, which this process cannot find. Fix: "
            "install the pipeline's package in the external process's environment (its image)."
        )
    module_name = name or f"__dreamer_pipes_{Path(file).stem}__"
    loader_spec = importlib.util.spec_from_file_location(module_name, file)
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = module
    loader_spec.loader.exec_module(module)
    return module


def _steps_in(module: ModuleType | None) -> list[Any]:
    """Every step the module's globals reach: steps, pipelines, lists and dicts of steps, and
    the steps upstream of them."""
    from ..definitions import all_steps
    from ..pipeline import Pipeline
    from ..steps.step import Step

    roots: list[Any] = []
    for value in vars(module).values() if module is not None else ():
        if isinstance(value, Step):
            roots.append(value)
        elif isinstance(value, Pipeline):
            roots.extend(value.steps)
        elif type(value) in (list, tuple):  # plain ones (Dagster's records are tuples too)
            roots.extend(item for item in value if isinstance(item, Step))
        elif type(value) is dict:
            roots.extend(item for item in value.values() if isinstance(item, Step))
    try:
        return all_steps(roots)
    except Exception:  # noqa: BLE001 - two steps with one key: look at them one by one
        return roots


if __name__ == "__main__":
    sys.exit(main())
