"""Sharded steps: ``shards=N`` runs a prompt or task step as N Dagster partitions.

::

    gen = ProcessWithPrompt("Tweets", inputs={...}, args={...}, shards=4)

makes two assets:

- ``tweets_shards``, partitioned by a ``StaticPartitionsDefinition`` of the keys
  ``0`` .. ``N-1``: shard ``k`` processes its slice of the input rows (rows
  ``k*T//N`` to ``(k+1)*T//N`` of the ``T`` rows; for ``DataFromPrompt`` its part
  of ``n``) and writes ``<step>/_shards/<k>/`` with its own ``step.json``, data
  version, lock and reuse / backup / restore rules. Each shard can run as its own
  run, so a backfill spreads over workers (the default ``BackfillPolicy``: one run
  per shard; ``backfill_policy=dg.BackfillPolicy.single_run()`` runs a range of
  shards in one run, e.g. ``dagster asset materialize --partition-range 0...3``);
- ``tweets`` (the step's own key, what downstream steps read): the merge. It
  concatenates the finished shards in order into ``<step>/_dataset`` with the
  step's fingerprint, recording each shard's fingerprint and data version, so a
  changed shard set or any re-made shard makes it merge again. Its
  ``code_version`` is the shard set's version (the step's fingerprint and N):
  Dagster stops reading partition-level staleness above 100 upstream partitions,
  so a changed shard set still marks the merge unsynced.

The step's fingerprint (its output's identity) does not change with N: the rows
are those of one unsharded run. A repeated prompt is keyed in the model cache by
its occurrence over all shards (the shards before count), so answers match an
unsharded run's and a re-run of any shard on any worker reads them.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import socket
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dagster as dg

from .. import metadata as keys
from ..checks import build_check_specs, check_results, generation_columns, generation_counts
from ..fingerprint import fingerprint
from ..integrity import fail_without_retry, seal_dataset
from ..io_manager import IO_MANAGER_KEY, CommittedStep, StagedStep, dataset_schema
from ..metadata import sample_rows, step_metadata
from ..output_folder import folder_errors, step_uri
from ..stop_signals import stop_as_failure
from ..translator import DreamerTranslator, build_step_spec
from .run_context import StepRunContext

if TYPE_CHECKING:
    from .step import Step

__all__ = [
    "Shard",
    "build_merge_asset",
    "build_shards_asset",
    "set_shards",
    "shard_fingerprint",
    "shard_keys",
    "shard_set_version",
    "shards_asset_key",
]

#: Most shards a step may have (each is a Dagster partition and a folder).
MAX_SHARDS = 10_000


@dataclass(frozen=True)
class Shard:
    """Shard ``key`` of a step: rows ``start`` to ``stop`` (exclusive) of ``total``."""

    key: str
    index: int
    count: int
    start: int
    stop: int
    total: int
    fingerprint: str
    #: Keys of the upstream steps whose rows the shard slices.
    sliced_steps: frozenset[str]

    def record_fields(self, step: Step) -> dict[str, Any]:
        """What a shard's step.json says beyond the step's: its name, fingerprint, rows and
        the worker that made it."""
        return {
            "name": f"{step.name} (shard {self.key} of {self.count})",
            "fingerprint": self.fingerprint,
            "step_fingerprint": step.fingerprint,
            "shard": {"key": self.key, "count": self.count, "start": self.start, "stop": self.stop},
            "worker": {"host": socket.gethostname(), "pid": os.getpid()},
        }


# -- declaration ------------------------------------------------------------------------


def set_shards(step: Step, shards: Any, backfill_policy: Any = None) -> None:
    """``shards=N`` (and ``backfill_policy=``) on a step, checked at declaration."""
    if shards is None:
        if backfill_policy is not None:
            raise step.error(
                "backfill_policy= applies to a sharded step; give shards=N too.", "backfill_policy"
            )
        return
    if step.SHARD_BY is None:
        raise step.error(
            f"a {type(step).__name__} cannot be sharded (its rows are not slices of its input). "
            "Fix: remove shards=, or shard the step that makes its input.",
            "shards",
        )
    if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= MAX_SHARDS:
        raise step.error(
            f"must be a whole number of shards from 1 to {MAX_SHARDS}, got {shards!r}.", "shards"
        )
    if backfill_policy is not None and not isinstance(backfill_policy, dg.BackfillPolicy):
        raise step.error(
            "must be a dg.BackfillPolicy (dg.BackfillPolicy.single_run() runs a range of shards in one "
            f"run), got {backfill_policy!r}.",
            "backfill_policy",
        )
    if step.SHARD_BY == "n" and not isinstance(step.args.get("n"), int):
        raise step.error("a step sharded by its n needs n as a number, not a deferred value.", "shards")
    if step.SHARD_BY == "inputs":
        sliced = _sliced_inputs(step)
        if not sliced:
            raise step.error("the step has no input to shard.", "shards")
        sliced_steps = {step.inputs[name].step.key for name in sliced}
        for name, ref in step.inputs.items():
            if name not in sliced and ref.step.key in sliced_steps:
                raise step.error(
                    f"input {name!r} reads the same step as the sharded inputs, but is not sharded. "
                    "Fix: give it from another step (e.g. .select_columns(...) of it), or remove shards=.",
                    "shards",
                )
    if "asset" in step.__dict__:
        raise step.error("its asset is already built; set shards= when declaring the step.", "shards")
    step.shards = shards
    step.backfill_policy = backfill_policy


def _sliced_inputs(step: Step) -> list[str]:
    names = step.SHARD_INPUTS if step.SHARD_INPUTS is not None else tuple(step.INPUTS or ())
    return [name for name in names if name in step.inputs]


def shard_keys(step: Step) -> list[str]:
    """The partition keys of a sharded step: ``"0"`` .. ``"N-1"``."""
    return [str(index) for index in range(step.shards or 0)]


def shard_set_version(step: Step) -> str:
    """The version of the set of shards: the step's fingerprint and N (the merge's and the
    shards asset's ``code_version``)."""
    return fingerprint({"step": step.fingerprint, "shards": step.shards})


def shard_fingerprint(step: Step, key: str) -> str:
    """Shard ``key``'s fingerprint (its folder's reuse rules): the step's, N and the key."""
    return fingerprint({"step": step.fingerprint, "shards": step.shards, "shard": key})


def shards_asset_key(key: dg.AssetKey) -> dg.AssetKey:
    """The shards asset's key: the step's key with ``_shards`` added to its last part."""
    return dg.AssetKey([*key.path[:-1], f"{key.path[-1]}_shards"])


def make_shard(step: Step, key: str, loaded: Mapping[str, Any]) -> Shard:
    """Shard ``key`` of ``step``, its rows counted from the loaded inputs."""
    from .asset_factory import input_name

    if step.SHARD_BY == "n":
        total, sliced = int(step.args["n"]), frozenset()
    else:
        names = _sliced_inputs(step)
        lengths = {name: len(loaded[input_name(step.inputs[name].step)]) for name in names}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"Step {step.name!r}: its sharded inputs have different lengths: {lengths}.")
        total = next(iter(lengths.values()))
        sliced = frozenset(step.inputs[name].step.key for name in names)
    index, count = int(key), int(step.shards or 1)
    return Shard(
        key=key,
        index=index,
        count=count,
        start=index * total // count,
        stop=(index + 1) * total // count,
        total=total,
        fingerprint=shard_fingerprint(step, key),
        sliced_steps=sliced,
    )


# -- the assets ---------------------------------------------------------------------------


def build_shards_asset(
    step: Step,
    translator: DreamerTranslator | None = None,
    io_manager_key: str = IO_MANAGER_KEY,
    upstream_keys: Mapping[str, dg.AssetKey] | None = None,
    resource_keys: Sequence[str] = (),
    output_folder: Any = None,
) -> dg.AssetsDefinition:
    """The partitioned asset of a sharded step: one partition per shard."""
    from .asset_factory import upstream_ins

    translator = translator or DreamerTranslator()
    base = build_step_spec(step, translator, upstream_keys)
    key = shards_asset_key(base.key)
    spec = base.replace_attributes(
        key=key,
        code_version=shard_set_version(step),
        description=f"The {step.shards} shards of {step.name!r}: each a partition writing "
        f"{step.folder}/_shards/<key>/. {step.key} merges them.",
        automation_condition=None,
    ).merge_attributes(metadata={keys.SHARDS: step.shards})
    if output_folder is not None:
        spec = spec.merge_attributes(metadata={keys.URI: step_uri(output_folder, f"{step.folder}/_shards")})
    op_settings = translator.get_op_settings(step)
    ins = upstream_ins(step, base)
    resource_keys = tuple(resource_keys)

    @dg.multi_asset(
        name="__".join(key.path),
        specs=[spec.with_io_manager_key(io_manager_key)],
        ins=ins,
        partitions_def=dg.StaticPartitionsDefinition(shard_keys(step)),
        backfill_policy=step.backfill_policy or dg.BackfillPolicy.multi_run(1),
        pool=op_settings.pool,
        retry_policy=op_settings.retry_policy,
        op_tags=dict(op_settings.op_tags) or None,
        required_resource_keys={io_manager_key, *resource_keys},
    )
    def _shards_asset(context, **loaded):  # noqa: ANN001, ANN202 - Dagster reads an annotation as a type
        resources = [getattr(context.resources, name) for name in resource_keys]
        with stop_as_failure(step, context):
            yield from materialize_shards(
                step, context, loaded, key, io_manager_key, resources, op_settings.retry_policy is not None
            )

    return _shards_asset


def build_merge_asset(
    step: Step,
    translator: DreamerTranslator | None = None,
    io_manager_key: str = IO_MANAGER_KEY,
    upstream_keys: Mapping[str, dg.AssetKey] | None = None,
    output_folder: Any = None,
) -> dg.AssetsDefinition:
    """A sharded step's own asset: the merge of its shards, in order."""
    translator = translator or DreamerTranslator()
    spec = build_step_spec(step, translator, upstream_keys)
    spec = spec.replace_attributes(
        code_version=shard_set_version(step), deps=[shards_asset_key(spec.key)]
    ).merge_attributes(metadata={keys.SHARDS: step.shards})
    if output_folder is not None:
        spec = spec.merge_attributes(metadata={keys.URI: step_uri(output_folder, step.folder)})
    op_settings = translator.get_op_settings(step)

    @dg.multi_asset(
        name="__".join(spec.key.path),
        specs=[spec.with_io_manager_key(io_manager_key)],
        check_specs=build_check_specs(step, spec.key),
        op_tags=dict(op_settings.op_tags) or None,
        required_resource_keys={io_manager_key},
        can_subset=True,
    )
    def _merge_asset(context):  # noqa: ANN001, ANN202
        with stop_as_failure(step, context):
            yield from materialize_merge(step, context, spec.key, io_manager_key)

    return _merge_asset


# -- running ------------------------------------------------------------------------------


def materialize_shards(
    step: Step,
    context: Any,
    loaded: dict[str, Any],
    asset_key: dg.AssetKey,
    io_manager_key: str,
    resources: Sequence[Any] = (),
    retries: bool = False,
) -> Iterator[Any]:
    """Run (or reuse) each shard the run selects, committing each as it finishes."""
    from .asset_factory import lock_step_folder, reuse_or_run

    if not (context.has_partition_key or context.has_partition_key_range):
        first, last = shard_keys(step)[0], shard_keys(step)[-1]
        raise dg.Failure(
            description=f"Step {step.name!r} is sharded (shards={step.shards}): its shards asset "
            f"{asset_key.to_user_string()} runs per partition. Fix: materialize its partitions (a backfill "
            f"of every partition, or one run per shard with --partition {first}; with "
            f"backfill_policy=dg.BackfillPolicy.single_run(), --partition-range {first}...{last}), then the "
            "rest of the pipeline (dagster job execute -j dreamer_pipeline).",
            allow_retries=False,
        )
    io_manager = getattr(context.resources, io_manager_key)
    output_folder = io_manager.folder()
    step_folder = output_folder.step(step.folder)
    records = []
    reused_all = True
    for key in context.partition_keys:
        shard = make_shard(step, key, loaded)
        folder = step_folder.shard(key)
        lock = lock_step_folder(step, context, io_manager, folder, shard.fingerprint)
        try:
            output, record, reused = reuse_or_run(
                step, context, loaded, output_folder, folder, resources, retries, shard=shard
            )
            if isinstance(output, StagedStep):
                io_manager.commit_staged(output)
        finally:
            if lock is not None:
                lock.release()
        reused_all = reused_all and reused
        records.append(record)
        context.log.info(
            f"Shard {key} of {step.name!r}: rows {shard.start}-{shard.stop} of {shard.total}, "
            f"{'reused' if reused else 'written to ' + folder.name}."
        )
    versions = [record["data_version"] for record in records]
    data_version = versions[0] if len(versions) == 1 else _combined(versions)
    metadata = (
        step_metadata(step_folder.shard(context.partition_keys[0]), records[0]) if len(records) == 1 else {}
    )
    metadata.update({keys.REUSED: reused_all, keys.ROW_COUNT: sum(r.get("num_rows") or 0 for r in records)})
    yield dg.Output(
        None,
        output_name=asset_key.to_python_identifier(),
        data_version=dg.DataVersion(data_version),
        metadata=metadata,
    )


def materialize_merge(step: Step, context: Any, asset_key: dg.AssetKey, io_manager_key: str) -> Iterator[Any]:
    """Concatenate the finished shards in order into the step's folder (or reuse a merge of
    the same shards), hand it to the IO manager, then report the step's checks."""
    from .asset_factory import _check_finished_output, lock_step_folder

    io_manager = getattr(context.resources, io_manager_key)
    output_folder = io_manager.folder()
    step_folder = output_folder.step(step.folder)
    if asset_key not in context.selected_asset_keys:
        yield from _check_finished_output(step, context, asset_key, step_folder)
        return
    shards = _finished_shards(step, step_folder, asset_key)
    summary = [
        {
            "key": key,
            "fingerprint": r["fingerprint"],
            "data_version": r["data_version"],
            "num_rows": r["num_rows"],
        }
        for key, r in shards
    ]
    lock = lock_step_folder(step, context, io_manager, step_folder, step.fingerprint)
    try:
        with folder_errors(output_folder.root, step.key), fail_without_retry():
            # another configuration's merge goes to _backups; a finished one is checked
            step_folder.prepare(step.fingerprint, verify=not step.force)
        record = step_folder.step_json()
        if record is not None and record.get("shards") == summary and not step.force:
            context.log.info(f"Reused the merge of the {len(shards)} shards of {step.name!r}.")
            output: Any = CommittedStep(step_folder, record, lock)
            reused = True
        else:
            with fail_without_retry():  # a shard whose files changed is not merged, nor retried
                record, staged = _merge(step, context, output_folder, step_folder, shards, summary)
            output = StagedStep(step_folder, staged, record, lock)
            reused = False
        metadata = step_metadata(step_folder, record)
        metadata[keys.REUSED] = reused
        yield dg.Output(
            output,
            output_name=asset_key.to_python_identifier(),
            data_version=dg.DataVersion(record["data_version"]),
            metadata=metadata,
        )
        yield from check_results(step, asset_key, record, context.selected_asset_check_keys)
    finally:
        if lock is not None:
            lock.release()


def _finished_shards(step: Step, step_folder: Any, asset_key: dg.AssetKey) -> list[tuple[str, dict]]:
    shards, missing = [], []
    for key in shard_keys(step):
        record = step_folder.shard(key).step_json()
        if record is None or record.get("fingerprint") != shard_fingerprint(step, key):
            missing.append(key)
        else:
            shards.append((key, record))
    if missing:
        shards_key = shards_asset_key(asset_key).to_user_string()
        raise dg.Failure(
            description=f"Step {step.name!r}: shards {missing} of {step.shards} are not materialized, so "
            f"there is nothing to merge yet. Fix: materialize those partitions of {shards_key} first "
            f"(a backfill, or `dagster asset materialize --select {shards_key} --partition <key>`), "
            "then this step.",
            allow_retries=False,
        )
    return shards


def _merge(
    step: Step,
    context: Any,
    output_folder: Any,
    step_folder: Any,
    shards: list[tuple[str, dict]],
    summary: list[dict],
) -> tuple[dict, Any]:
    import datasets

    from .asset_factory import common_record

    staged = output_folder.staging(step.key, context.run_id)
    parts = [step_folder.shard(key).load_dataset(record) for key, record in shards]
    non_empty = [part for part in parts if len(part)] or parts[:1]
    merged = datasets.concatenate_datasets(non_empty) if len(non_empty) > 1 else non_empty[0]
    with folder_errors(output_folder.root, step.key):
        dataset = output_folder.write_dataset(staged, merged)
    run_context = StepRunContext(step, output_folder, {}, staged, log=context.log)
    stats: Counter = Counter()
    for _, record in shards:
        for name, value in (record.get("stats") or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                stats[name] += value
    stats.update(generation_counts(merged, generation_columns(step)))
    record = {
        **common_record(step, run_context),
        "datetime": _dt.datetime.now(_dt.UTC).isoformat(),
        "outputs": dataset.column_names,
        "num_rows": dataset.num_rows,
        "schema": dataset_schema(dataset),
        "sample": sample_rows(merged),
        **seal_dataset(staged / "_dataset"),  # data_version and manifest
        "stats": dict(stats),
        "shards": summary,
    }
    return record, staged


def _combined(versions: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for version in versions:
        digest.update(version.encode() + b"\x00")
    return digest.hexdigest()[:16]
