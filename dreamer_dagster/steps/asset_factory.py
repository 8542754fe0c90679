"""The asset factory: one step declaration -> one Dagster asset.

The asset's spec comes from :func:`~dreamer_dagster.translator.build_step_spec`
(key, ``code_version`` = the fingerprint, deps, kinds, metadata...), its op's
pool, retry policy and tags from the translator's ``get_op_settings``, its
checks from :mod:`~dreamer_dagster.checks`. The body (:func:`materialize_step`)
takes the step folder's lock, applies the output folder's reuse / back up /
restore rules, runs the step if it must, hands the staged output to the IO
manager (which commits it), then reports the checks.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import socket
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import dagster as dg

from .. import metadata as keys
from ..cards import DATETIME, merge_cards
from ..checks import (
    GenerationCounter,
    build_check_specs,
    check_results,
    generation_columns,
    generation_counts,
)
from ..cost import budget_stats, check_budget
from ..direct_calls import call_session
from ..errors import StepOutputError, StepOutputTypeError, is_retryable, is_transient
from ..integrity import fail_without_retry, seal_dataset
from ..io_manager import IO_MANAGER_KEY, CommittedStep, StagedStep, dataset_schema
from ..load_estimate import spec_estimate_metadata
from ..logs import quiet_hf_logs, report
from ..metadata import SampleCollector, step_metadata
from ..output_folder import Preparation, StepLocked, folder_errors, step_uri
from ..pipes.launch import external_run, pipes_launch_for
from ..requirement_versions import requirement_versions
from ..stop_signals import stop_as_failure
from ..translator import DreamerTranslator, build_step_spec
from .partition_key import partition_scope
from .partitions import plan_partitions
from .run_context import StepRunContext

if TYPE_CHECKING:
    from .step import Step

__all__ = [
    "build_step_asset",
    "common_record",
    "execute_dataset_step",
    "input_name",
    "lock_step_folder",
    "materialize_step",
    "reuse_or_run",
    "run_staged",
]

# Output(data_version=...) is how a materialization records a data version
# derived from its output; Dagster marks the parameter beta.
warnings.filterwarnings("ignore", message=".*data_version.*", category=dg.BetaWarning)


def input_name(step: Step) -> str:
    """The asset input name under which an upstream step is loaded."""
    return f"in_{step.key}"


def upstream_ins(
    step: Step, spec: dg.AssetSpec, mappings: Mapping[str, Any] | None = None
) -> dict[str, dg.AssetIn]:
    """The asset inputs of ``step``: each upstream step loaded under :func:`input_name`
    from the asset ``spec`` depends on (with its partition mapping from ``mappings``,
    by input name, if any: see steps/partitions.py)."""
    mappings = mappings or {}
    return {
        input_name(parent): dg.AssetIn(key=dep.asset_key, partition_mapping=mappings.get(input_name(parent)))
        for parent, dep in zip(step.upstream(), spec.deps, strict=True)
    }


def build_step_asset(
    step: Step,
    translator: DreamerTranslator | None = None,
    io_manager_key: str = IO_MANAGER_KEY,
    upstream_keys: Mapping[str, dg.AssetKey] | None = None,
    resource_keys: Sequence[str] = (),
    output_folder: Any = None,
) -> dg.AssetsDefinition:
    """The step's asset (for a sharded step: the merge of its shards, see steps/shards.py):
    its spec and op settings from ``translator``, loaded and written by the IO manager
    under ``io_manager_key``; ``resource_keys`` name the API client
    resources (``OpenAIResource``) its models take settings from at run time;
    ``output_folder`` (when known) gives the asset its folder's ``dagster/uri``."""
    step.fingerprint  # noqa: B018 - a trainer whose train() was never called says so first
    translator = translator or DreamerTranslator()
    plan = plan_partitions(step, translator)  # unsupported partitions refused here
    # A step run through a Pipes client loads its inputs in the external process.
    pipes = pipes_launch_for(step, translator.get_op_settings(step).pipes_client, plan.active)
    if step.shards:
        from .shards import build_merge_asset

        return build_merge_asset(step, translator, io_manager_key, upstream_keys, output_folder)
    spec = plan.apply(build_step_spec(step, translator, upstream_keys))
    if output_folder is not None:  # the folder's URI; the pre-run estimate where cheap
        spec = spec.merge_attributes(
            metadata={
                keys.URI: step_uri(output_folder, step.folder),
                **spec_estimate_metadata(step, output_folder),
            }
        )
    op_settings = translator.get_op_settings(step)
    ins = upstream_ins(step, spec, plan.mappings) if pipes is None else {}
    resource_keys = tuple(resource_keys)

    @dg.multi_asset(
        name="__".join(spec.key.path),
        specs=[spec.with_io_manager_key(io_manager_key)],
        ins=ins,
        check_specs=build_check_specs(step, spec.key),
        pool=op_settings.pool,
        retry_policy=op_settings.retry_policy,
        op_tags=dict(op_settings.op_tags) or None,
        required_resource_keys={io_manager_key, *resource_keys},
        can_subset=True,  # a run may select the step without its checks, or only its checks
    )
    def _step_asset(context, **loaded):  # noqa: ANN001, ANN202 - Dagster reads an annotation as a type
        resources = [getattr(context.resources, key) for key in resource_keys]
        retries = op_settings.retry_policy is not None
        with stop_as_failure(step, context):  # SIGTERM / SIGINT: the run stops, never retried
            yield from materialize_step(
                step, context, loaded, spec.key, io_manager_key, resources, retries, plan, pipes=pipes
            )

    return _step_asset


def materialize_step(
    step: Step,
    context: dg.AssetExecutionContext,
    loaded: dict[str, Any],
    asset_key: dg.AssetKey,
    io_manager_key: str = IO_MANAGER_KEY,
    resources: Sequence[Any] = (),
    retries: bool = False,
    plan: Any = None,
    pipes: Any = None,
) -> Iterator[Any]:
    """The asset body: lock the step folder (a partition's, see steps/partitions.py), reuse,
    restore, or run the step and stage its output, yield it (the IO manager commits it),
    then yield the selected checks' results. With ``pipes`` (a ``PipesLaunch``), the step
    runs and commits in an external process that reports its metadata and checks."""
    io_manager = getattr(context.resources, io_manager_key)
    output_folder = io_manager.folder()
    partition = plan.for_run(step, context) if plan is not None else None
    step_folder = output_folder.step(step.folder)
    if partition is not None:
        step_folder = partition.folder(step_folder)
    fingerprint = partition.fingerprint if partition is not None else step.fingerprint
    if asset_key not in context.selected_asset_keys:
        yield from _check_finished_output(step, context, asset_key, step_folder, fingerprint)
        return
    lock = lock_step_folder(step, context, io_manager, step_folder, fingerprint)
    external = external_run(step, pipes, context, io_manager, asset_key)  # None: in process
    try:
        where = {"lock": lock, "partition": partition, "runner": external}
        output, record, reused = reuse_or_run(
            step, context, loaded, output_folder, step_folder, resources, retries, **where
        )
        ran_outside = external is not None and not reused
        metadata = dict(external.metadata) if ran_outside else step_metadata(step_folder, record)
        metadata[keys.REUSED] = reused
        if not reused and not ran_outside:  # dagster-openai's keys: the calls this materialization made
            metadata.update(keys.openai_usage(step.models(), record.get("stats") or {}))
        yield dg.Output(
            output,
            output_name=asset_key.to_python_identifier(),
            data_version=dg.DataVersion(record["data_version"]),
            metadata=metadata,
        )
        # The IO manager has committed the folder (and released the lock) by now.
        if ran_outside:  # the external process evaluated the selected checks
            yield from external.checks
            return
        if reused:
            record = _with_generation_counts(step, record, step_folder)
        yield from check_results(step, asset_key, record, context.selected_asset_check_keys)
    finally:
        if lock is not None:
            lock.release()  # when the step failed before its output reached the IO manager


def lock_step_folder(step: Step, context: Any, io_manager: Any, step_folder: Any, fingerprint: str) -> Any:
    """Take the step folder's lock for this run (None: a read-only output folder holding the
    finished output, which reading needs no lock for). A run that would not wait fails."""
    lock = step_folder.lock()
    owner = f"run {context.run_id} (pid {os.getpid()} on {socket.gethostname()})"

    def waiting(holder: str | None) -> None:
        context.log.info(
            f"Step {step.name!r} ({step_folder.name}) is being materialized by another run "
            f"({holder or 'holder unknown'}); waiting for it, to reuse its output."
        )

    will_write = step.force or step_folder.finished_fingerprint() != fingerprint
    if will_write:
        step_folder.output.check_writable(step.folder)  # reusing a finished step writes nothing
    try:
        lock.acquire(owner, timeout=io_manager.lock_timeout, on_wait=waiting)
    except StepLocked as error:
        raise dg.Failure(description=str(error), allow_retries=False) from None
    except PermissionError:
        if will_write:
            raise
        return None
    return lock


def reuse_or_run(
    step: Step,
    context: Any,
    loaded: dict[str, Any],
    output_folder: Any,
    step_folder: Any,
    resources: Sequence[Any] = (),
    retries: bool = False,
    lock: Any = None,
    shard: Any = None,
    partition: Any = None,
    runner: Any = None,
) -> tuple[Any, dict, bool]:
    """Apply the reuse / back up / restore rules in ``step_folder`` (the lock held), running
    the step (or its ``shard``, or its ``partition``) if it must; returns ``(output for the IO
    manager, record, reused)``: a :class:`CommittedStep` or a :class:`StagedStep` to commit."""
    fingerprint = (shard or partition or step).fingerprint
    problem = step_folder.problem()
    if problem is not None:
        context.log.warning(
            f"{step.name!r}: its folder is not a finished step ({problem}); it runs again, and every "
            "model call the cache holds is read from it, not paid again."
        )
    with folder_errors(output_folder.root, step.key), fail_without_retry():
        # A finished output is checked before it is reused, unless force= recomputes it.
        preparation = step_folder.prepare(fingerprint, verify=not step.force)
    finished = preparation in (Preparation.FINISHED, Preparation.RESTORED) and not step.force
    record = (step_folder.step_json() or {}) if finished else {}
    if finished and partition is not None and not partition.reuses(record):
        finished = False  # it read other partitions upstream (a new day's...): it runs again
        report(
            step,
            f"{partition.describe(step)} read other upstream partitions; it runs again.",
            run_log=context.log,
        )
    if finished:
        what = repr(step.name) if shard is None else f"shard {shard.key} of {step.name!r}"
        what = partition.describe(step) if partition is not None else what
        how = (
            f"Reused the finished output of {what}: results loaded from the output folder, it was "
            "run and saved before"
            if preparation is Preparation.FINISHED
            else f"Restored from _backups the finished output of {what}: it was run with this "
            "configuration before"
        )
        report(step, f"{how} (fingerprint {fingerprint}).", run_log=context.log)
        return CommittedStep(step_folder, record, lock), record, True
    what = f"Step {step.name!r}" if shard is None else f"Shard {shard.key} of step {step.name!r}"
    what = f"Step {partition.describe(step)}" if partition is not None else what
    report(step, f"{what} is running.", run_log=context.log)
    started = _dt.datetime.now(_dt.UTC)
    # ``runner``: a Pipes run (pipes/launch.py) that commits the folder itself (staged None).
    record, staged = (runner or _run)(
        step, context, loaded, output_folder, step_folder, resources, retries, shard, partition
    )
    seconds = (_dt.datetime.now(_dt.UTC) - started).total_seconds()
    count = record.get("num_rows")
    rows = "" if count is None else f"{count} row{'' if count == 1 else 's'}, "
    report(step, f"{what} finished and is saved to disk ({rows}{seconds:.1f}s).", run_log=context.log)
    if staged is None:
        return CommittedStep(step_folder, record, lock), record, False
    return StagedStep(step_folder, staged, record, lock), record, False


def _check_finished_output(
    step: Step,
    context: dg.AssetExecutionContext,
    asset_key: dg.AssetKey,
    step_folder: Any,
    fingerprint: str | None = None,
) -> Iterator[Any]:
    """Only the step's checks were selected: evaluate them on its finished output."""
    record = step_folder.step_json()
    if record is None or record.get("fingerprint") != (fingerprint or step.fingerprint):
        raise dg.Failure(
            description=f"Step {step.name!r} has no finished output of its declared configuration in "
            f"{step_folder.path} to check. Fix: materialize the step (its checks run with it).",
            allow_retries=False,
        )
    record = _with_generation_counts(step, record, step_folder)
    yield from check_results(step, asset_key, record, context.selected_asset_check_keys)


def _run(
    step: Step,
    context: dg.AssetExecutionContext,
    loaded: dict[str, Any],
    output_folder: Any,
    step_folder: Any,
    resources: Sequence[Any],
    retries: bool,
    shard: Any = None,
    partition: Any = None,
) -> tuple[dict, Any]:
    """Run the step (or its ``shard`` or ``partition``) into a staging folder; return its
    record and the staging folder. With a retry policy, a failure a retry cannot fix becomes
    ``dg.Failure(allow_retries=False)``."""
    upstream = {parent.key: loaded[input_name(parent)] for parent in step.upstream()}
    try:
        return run_staged(
            step,
            output_folder,
            step_folder,
            upstream,
            context.log,
            resources,
            context.run_id,
            shard,
            partition,
        )
    except Exception as error:
        if retries and not (is_retryable(error) and is_transient(error)):
            raise dg.Failure(
                description=f"Step {step.name!r} failed, and running it again cannot fix it: {error}",
                allow_retries=False,
            ) from error
        raise  # a transient failure: the step's retry policy runs it again, paying only for
        # the calls the model cache does not hold


def run_staged(
    step: Step,
    output_folder: Any,
    step_folder: Any,
    upstream: dict[str, Any],
    log: Any,
    resources: Sequence[Any] = (),
    run_id: str | None = None,
    shard: Any = None,
    partition: Any = None,
) -> tuple[dict, Any]:
    """Run ``step`` (or its ``shard``; its upstream outputs loaded in ``upstream``, by step
    key) into a fresh staging folder; return its step.json record and the staging folder,
    which the caller commits. With a budget, its estimate is checked before anything is
    sent. A failure leaves nothing half-written."""
    run_context = StepRunContext(
        step, output_folder, upstream, None, log=log, resources=resources, shard=shard, partition=partition
    )
    fingerprint = (shard or partition or step).fingerprint
    quiet = step.pipeline is not None and not step.pipeline.hf_log
    staged = None
    try:
        check_budget(step, run_context)
        with folder_errors(output_folder.root, step.key):
            step_folder.start(fingerprint)
            staged = run_context.staged = output_folder.staging(step_folder.name, run_id)
        try:
            with (
                folder_errors(output_folder.root, step.key),
                quiet_hf_logs(quiet),
                partition_scope(run_context.partition_key),
                # A model the step's code calls directly uses this cache and scope too.
                call_session(output_folder.cache_path, run_context.scope),
            ):
                produced = step.execute(run_context)
        finally:
            # Model generations a failure left open save the answers they received.
            _close_model_calls(run_context)
        budget_stats(step, run_context)
        record = {**common_record(step, run_context), **produced}
        if shard is not None or partition is not None:
            record.update((shard or partition).record_fields(step))
    except BaseException:
        # Nothing half-written stays behind (a full disk gets its space back); the
        # answers already received are in the model cache.
        if staged is not None:
            shutil.rmtree(staged, ignore_errors=True)
        raise
    return record, staged


def _close_model_calls(run_context: StepRunContext) -> None:
    try:
        run_context.close()
    except Exception as error:  # noqa: BLE001 - the step's own outcome is the one to report
        run_context.scope.warning(f"Step {run_context.step.name!r}: closing its model calls failed: {error}")


def execute_dataset_step(step: Step, context: StepRunContext, rows: Any = None) -> dict:
    """Run a step that outputs a dataset (``rows``, else ``step.run(context)``); return its
    step.json fields."""
    import pyarrow as pa

    rows = step.renamed_rows(step.run(context) if rows is None else rows)
    # Counted and sampled as the rows are written: the output is never read back.
    generations = GenerationCounter(generation_columns(step))
    sample = SampleCollector()
    try:
        dataset = context.output_folder.write_dataset(
            context.staged,
            rows,
            columns=step.output_columns,
            num_proc=step.save_num_proc,
            num_shards=step.save_num_shards,
            observers=(generations.add, sample.add),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise StepOutputTypeError(
            f"Step {step.name!r} ({type(step).__name__}): its rows cannot be stored together ({error}). "
            "Fix: give each output column values of one type (str, number, list of those...)."
        ) from error
    declared = step.output_columns
    if declared is not None and sorted(dataset.column_names) != sorted(declared):
        raise StepOutputError(
            f"Step {step.name!r} produced columns {dataset.column_names}, but declared {declared}."
        )
    context.progress(dataset.num_rows, dataset.num_rows, force=True)
    context.stats.update(generations.counts())
    return {
        "outputs": dataset.column_names,
        "num_rows": dataset.num_rows,
        "schema": dataset_schema(dataset),
        "sample": sample.rows,
        **seal_dataset(context.staged / "_dataset"),  # data_version and manifest
    }


def _with_generation_counts(step: Step, record: dict, step_folder: Any) -> dict:
    """A reused record, with the generation counts its checks need if it predates them."""
    columns = generation_columns(step)
    stats = record.get("stats") or {}
    if not columns or "generations" in stats or not step_folder.files.is_dir(step_folder.dataset_path):
        return record
    counts = generation_counts(step_folder.load_dataset(record), columns)
    return {**record, "stats": {**stats, **counts}}


def common_record(step: Step, context: StepRunContext) -> dict:
    """The step.json fields every step has: name, type, fingerprint, version, date, args,
    inputs, sources, data card (with the upstream steps' cards) and stats."""
    from .. import __version__

    now = _dt.datetime.now(_dt.UTC).isoformat()
    upstream_cards = []
    for parent in step.upstream():
        parent_record = context.output_folder.step(parent.folder).step_json() or {}
        upstream_cards.append(parent_record.get("data_card") or {})
    upstream_cards.extend(context.inner_cards)  # the steps a SuperStep ran
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
        "__version__": __version__,
        "version": __version__,
        "datetime": now,
        "pickled": getattr(context, "pickled", False),
        "req_versions": requirement_versions(),
        "interpreter": sys.version,
        "args": _jsonable(step.describe_args()),
        "inputs": inputs,
        "sources": [{"step": s.name, "fingerprint": s.fingerprint} for s in step.source_steps()],
        "data_card": merge_cards(upstream_cards, step.name, own),
        "stats": dict(context.stats),
    }


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=repr))
