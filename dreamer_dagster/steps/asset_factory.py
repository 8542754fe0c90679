"""The asset factory: one step declaration -> one Dagster asset.

The asset's key is the step's safe name, its ``code_version`` the step's
fingerprint, its inputs the upstream steps (loaded by the IO manager), and its
body applies the output folder's reuse / back up / restore rules before it
runs the step at all.
"""

from __future__ import annotations

import datetime as _dt
import json
import shutil
import warnings
from typing import TYPE_CHECKING, Any

import dagster as dg

from ..cards import DATETIME, merge_cards
from ..io_manager import IO_MANAGER_KEY, CommittedStep, StagedStep, dataset_schema, step_metadata
from ..output_folder import Preparation, dataset_data_version, folder_errors
from .run_context import StepRunContext

if TYPE_CHECKING:
    from .step import Step

__all__ = ["GROUP_NAME", "build_asset", "input_name"]

# Output(data_version=...) is how a materialization records a data version
# derived from its output; Dagster marks the parameter beta.
warnings.filterwarnings("ignore", message=".*data_version.*", category=dg.BetaWarning)

GROUP_NAME = "dreamer"


def input_name(step: Step) -> str:
    """The asset input name under which an upstream step is loaded."""
    return f"in_{step.key}"


def build_asset(step: Step) -> dg.AssetsDefinition:
    upstream = step.upstream()
    ins = {input_name(parent): dg.AssetIn(key=parent.asset_key) for parent in upstream}
    doc = (type(step).__doc__ or "").strip().splitlines()
    description = f"{step.name} — {type(step).__name__}" + (f": {doc[0]}" if doc else "")
    metadata = {
        "dreamer/step_type": type(step).__name__,
        "dreamer/step_name": step.name,
        "dreamer/fingerprint": step.fingerprint,
        "dreamer/args": dg.MetadataValue.json(_jsonable(step.describe_args())),
    }

    @dg.asset(
        name=step.key,
        ins=ins,
        code_version=step.fingerprint,
        description=description,
        group_name=getattr(step, "group_name", None) or GROUP_NAME,
        io_manager_key=IO_MANAGER_KEY,
        required_resource_keys={IO_MANAGER_KEY},
        metadata=metadata,
        kinds={step.KIND},
    )
    def _step_asset(context, **loaded):  # noqa: ANN001 - Dagster reads the annotation
        return materialize_step(step, context, loaded)

    return _step_asset


def materialize_step(step: Step, context: dg.AssetExecutionContext, loaded: dict[str, Any]) -> dg.Output:
    """The asset body: reuse, restore, or run the step and stage its output."""
    io_manager = getattr(context.resources, IO_MANAGER_KEY)
    output_folder = io_manager.folder()
    step_folder = output_folder.step(step.key)

    if step.force or step_folder.finished_fingerprint() != step.fingerprint:
        output_folder.check_writable(step.key)  # reusing a finished step writes nothing
    problem = step_folder.problem()
    if problem is not None:
        context.log.warning(
            f"{step.name!r}: its folder is not a finished step ({problem}); it runs again, and every "
            "model call the cache holds is read from it, not paid again."
        )
    with folder_errors(output_folder.root, step.key):
        preparation = step_folder.prepare(step.fingerprint)
    if preparation in (Preparation.FINISHED, Preparation.RESTORED) and not step.force:
        record = step_folder.step_json() or {}
        verb = "Reused" if preparation is Preparation.FINISHED else "Restored from _backups"
        context.log.info(f"{verb} the finished output of {step.name!r} (fingerprint {step.fingerprint}).")
        metadata = step_metadata(step_folder, record)
        metadata["dreamer/reused"] = True
        return dg.Output(
            CommittedStep(step_folder, record),
            data_version=dg.DataVersion(record["data_version"]),
            metadata=metadata,
        )

    with folder_errors(output_folder.root, step.key):
        step_folder.start(step.fingerprint)
        staged = output_folder.staging(step.key)
    upstream = {parent.key: loaded[input_name(parent)] for parent in step.upstream()}
    run_context = StepRunContext(step, output_folder, upstream, staged, log=context.log)
    try:
        with folder_errors(output_folder.root, step.key):
            produced = step.execute(run_context)
            record = {**_common_record(step, run_context), **produced}
    except BaseException:
        # Nothing half-written stays behind (a full disk gets its space back); the
        # answers already received are in the model cache.
        shutil.rmtree(staged, ignore_errors=True)
        raise
    metadata = step_metadata(step_folder, record)
    metadata["dreamer/reused"] = False
    return dg.Output(
        StagedStep(step_folder, staged, record),
        data_version=dg.DataVersion(record["data_version"]),
        metadata=metadata,
    )


def execute_dataset_step(step: Step, context: StepRunContext) -> dict:
    """Run a step that outputs a dataset; return its step.json fields."""
    rows = step.renamed_rows(step.run(context))
    dataset = context.output_folder.write_dataset(context.staged, rows, columns=step.output_columns)
    declared = step.output_columns
    if declared is not None and sorted(dataset.column_names) != sorted(declared):
        raise RuntimeError(
            f"Step {step.name!r} produced columns {dataset.column_names}, but declared {declared}."
        )
    context.progress(dataset.num_rows, dataset.num_rows, force=True)
    return {
        "outputs": dataset.column_names,
        "num_rows": dataset.num_rows,
        "schema": dataset_schema(dataset),
        "data_version": dataset_data_version(context.staged / "_dataset"),
    }


def _common_record(step: Step, context: StepRunContext) -> dict:
    from .. import __version__

    now = _dt.datetime.now(_dt.UTC).isoformat()
    upstream_cards = []
    for parent in step.upstream():
        parent_record = context.output_folder.step(parent.key).step_json() or {}
        upstream_cards.append(parent_record.get("data_card") or {})
    own = {DATETIME: [now]}
    for entries in (step.card_entries(context), context.card):
        for key, values in entries.items():
            known = own.setdefault(key, [])
            known.extend(value for value in dict.fromkeys(values) if value not in known)
    inputs = {
        name: {"step": ref.step.name, "column": ref.column, "fingerprint": ref.step.fingerprint}
        for name, ref in step.inputs.items()
    }
    return {
        "name": step.name,
        "type": type(step).__name__,
        "fingerprint": step.fingerprint,
        "version": __version__,
        "datetime": now,
        "args": _jsonable(step.describe_args()),
        "inputs": inputs,
        "sources": [{"step": s.name, "fingerprint": s.fingerprint} for s in step.source_steps()],
        "data_card": merge_cards(upstream_cards, step.name, own),
        "stats": dict(context.stats),
    }


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=repr))
