"""Partitions users declare: ``partitions_def=`` on a step (or from the translator).

::

    daily = dg.DailyPartitionsDefinition(start_date="2026-12-01")
    news = DataFromPrompt("News", args={"llm": llm, "n": 4,
                          "instruction": "Write a headline for {partition_key}."},
                          partitions_def=daily)

Each partition is a step folder of its own, ``<step>/_partitions/<key>/`` (the key
made folder-safe, see :mod:`~dreamer_dagster.partition_folders`), with its own
step.json, fingerprint (the step's and the key), lock and reuse / back up / restore
rules: the same ``StepFolder`` rules as every step. The key reaches the step's text
arguments as ``{partition_key}`` and its functions as a ``partition_key`` parameter
(:mod:`~dreamer_dagster.steps.partition_key`).

What a step reads of a partitioned upstream step is Dagster's partition mapping:

- a step with the same ``partitions_def`` reads the same partition (identity);
- a step without partitions reads every partition, concatenated in key order
  (``AllPartitionMapping``, Dagster's default); a missing partition is an error;
- ``partition_mapping=`` (any ``dg.PartitionMapping``, e.g. ``dg.AllPartitionMapping()``,
  ``dg.LastPartitionMapping()``) chooses otherwise, for every partitioned input.

The partitions a run read are recorded in its step.json (``partitions_read``): a
finished output is reused only when it read the same ones (a new day's partition
makes a step reading all of them run again). One run makes one partition (a backfill
makes one run per partition). Refused at ``definitions()``, with the fix: partitions
on trainers, SuperSteps and exports, together with ``shards=``, a ``backfill_policy=``,
and a sharded step reading a partitioned one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import dagster as dg

from ..partition_folders import partition_run_fingerprint
from .partition_key import PLACEHOLDER, has_placeholder

if TYPE_CHECKING:
    from ..translator import DreamerTranslator
    from .step import Step

__all__ = [
    "Partition",
    "PartitionPlan",
    "plan_partitions",
    "set_partitions",
    "step_partitions_def",
]

#: Step kinds that cannot be partitioned, and why.
_REFUSED_KINDS = {
    "trainer": "a trained model is read downstream as one `_model` (trainer.model_path, "
    "HFTransformers(trainer)), not one per partition. Fix: partition the steps that make its "
    "data and leave the trainer unpartitioned: it then trains on every partition",
    "super_step": "the steps its run() declares write folders of their own, which are not "
    "partitioned. Fix: declare the inner steps as steps of the pipeline, partitioned",
    "export": "an export writes one file outside the output folder. Fix: export an unpartitioned "
    "step (one reading every partition)",
}


@dataclass(frozen=True)
class Partition:
    """One run of a step over partitions: its own ``key`` (None: the step is not
    partitioned but reads partitioned steps), its folder's ``fingerprint`` and the
    partitions of each partitioned upstream step it reads (``reads``)."""

    key: str | None
    fingerprint: str
    reads: Mapping[str, list[str]] = field(default_factory=dict)

    def folder(self, step_folder: Any) -> Any:
        """This run's step folder: ``<step>/_partitions/<key>``, or the step's own."""
        return step_folder if self.key is None else step_folder.partition(self.key)

    def describe(self, step: Step) -> str:
        return f"partition {self.key} of {step.name!r}" if self.key is not None else repr(step.name)

    def record_fields(self, step: Step) -> dict[str, Any]:
        """What this run's step.json says beyond the step's."""
        fields: dict[str, Any] = {"partitions_read": self.reads_record()}
        if self.key is not None:
            fields.update(
                name=f"{step.name} (partition {self.key})",
                fingerprint=self.fingerprint,
                step_fingerprint=step.fingerprint,
                partition={"key": self.key},
            )
        return fields

    def reads_record(self) -> dict[str, list[str]]:
        """``reads`` as step.json records them (``partitions_read``)."""
        return {name: list(keys) for name, keys in self.reads.items()}

    def reuses(self, record: Mapping[str, Any]) -> bool:
        """Whether a finished ``record`` of this fingerprint read the same partitions."""
        return (record.get("partitions_read") or {}) == self.reads_record()


# -- declaration ------------------------------------------------------------------------


def set_partitions(step: Step, partitions_def: Any = None, partition_mapping: Any = None) -> None:
    """``partitions_def=`` and ``partition_mapping=`` on a step, checked at declaration."""
    if partitions_def is not None:
        if not isinstance(partitions_def, dg.PartitionsDefinition):
            raise step.error(
                "must be a Dagster partitions definition (dg.DailyPartitionsDefinition(start_date=...), "
                f"dg.StaticPartitionsDefinition([...]), dg.DynamicPartitionsDefinition(name=...)), got "
                f"{partitions_def!r}.",
                "partitions_def",
            )
        _check_kind(step, "partitions_def")
    if partition_mapping is not None and not isinstance(partition_mapping, dg.PartitionMapping):
        raise step.error(
            "must be a Dagster partition mapping (dg.AllPartitionMapping(), dg.IdentityPartitionMapping(), "
            f"dg.LastPartitionMapping()...), got {partition_mapping!r}.",
            "partition_mapping",
        )
    if "asset" in step.__dict__:
        raise step.error(
            "its asset is already built; set partitions when declaring the step.", "partitions_def"
        )
    step.partitions_def = partitions_def
    step.partition_mapping = partition_mapping


def _check_kind(step: Step, argument: str, source: str = "") -> None:
    reason = _REFUSED_KINDS.get(type(step).KIND)
    if reason is not None:
        raise step.error(f"a {type(step).__name__} cannot be partitioned{source}: {reason}.", argument)
    if step.shards:
        raise step.error(
            f"shards= and partitions{source} cannot be combined (each is a Dagster partitioning of the "
            "step). Fix: remove shards= (a backfill already spreads the partitions over runs), or remove "
            "the partitions.",
            argument,
        )
    if step.backfill_policy is not None:
        raise step.error(
            "a partitioned step runs one partition per run (a backfill makes one run per partition), so a "
            "backfill_policy= is not supported with partitions. Fix: remove backfill_policy=.",
            "backfill_policy",
        )


def step_partitions_def(step: Step, translator: DreamerTranslator) -> Any:
    """The step's partitions: its own ``partitions_def``, or the one its translator's spec
    sets (refused, with the fix, where the step cannot be partitioned)."""
    translated = translator.get_asset_spec(step).partitions_def
    own = step.partitions_def
    if translated is not None and own is not None and translated != own:
        raise step.error(
            f"its translator sets partitions_def {translated!r}, but the step declares {own!r}. "
            "Fix: set it in one place.",
            "partitions_def",
        )
    if translated is not None and own is None:
        _check_kind(step, "partitions_def", " (the translator's get_asset_spec sets partitions_def)")
    return own if own is not None else translated


@dataclass(frozen=True)
class PartitionPlan:
    """A step's partitions as built into its asset: its ``partitions_def`` and, by input
    name, the partitioned upstream steps it reads (their step keys) and their mappings."""

    partitions_def: Any = None
    partitioned_inputs: Mapping[str, str] = field(default_factory=dict)
    mappings: Mapping[str, Any] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.partitions_def is not None or bool(self.partitioned_inputs)

    def apply(self, spec: dg.AssetSpec) -> dg.AssetSpec:
        """``spec`` with the step's partitions (None unpartitioned, whatever the translator set)."""
        return spec.replace_attributes(partitions_def=self.partitions_def)

    def for_run(self, step: Step, context: Any) -> Partition | None:
        """This run's :class:`Partition` (None: no partitions involved)."""
        if not self.active:
            return None
        key = None
        if self.partitions_def is not None:
            if not (context.has_partition_key or context.has_partition_key_range):
                raise dg.Failure(
                    description=f"Step {step.name!r} is partitioned: a run makes one of its partitions. "
                    "Fix: choose one (`dagster asset materialize --partition <key>`, the web UI's "
                    "partition picker) or launch a backfill.",
                    allow_retries=False,
                )
            keys = list(context.partition_keys)
            if len(keys) > 1:
                raise dg.Failure(
                    description=f"Step {step.name!r} runs one partition per run, and this run selects "
                    f"{len(keys)} ({keys[0]}...{keys[-1]}). Fix: launch a backfill (one run per partition) "
                    "or one run per key (`dagster asset materialize --partition <key>`).",
                    allow_retries=False,
                )
            key = context.partition_key
        reads = {
            step_key: list(context.asset_partition_keys_for_input(name))
            for name, step_key in sorted(self.partitioned_inputs.items())
        }
        fingerprint = step.fingerprint if key is None else partition_run_fingerprint(step.fingerprint, key)
        return Partition(key=key, fingerprint=fingerprint, reads=reads)


def plan_partitions(step: Step, translator: DreamerTranslator) -> PartitionPlan:
    """The step's :class:`PartitionPlan`, every combination that is not supported refused
    here (at ``definitions()``), naming the step, the argument and the fix."""
    from .asset_factory import input_name

    partitions_def = step_partitions_def(step, translator)
    if partitions_def is None and not step.partitions_def and has_placeholder(step.args):
        raise step.error(
            f"an argument holds {PLACEHOLDER}, but the step has no partitions to fill it. Fix: give "
            "partitions_def=, or write the text without it.",
            "args",
        )
    partitioned, mappings = {}, {}
    for parent in step.upstream():
        parent_def = step_partitions_def(parent, translator)
        if parent_def is None:
            continue
        if step.shards:
            raise step.error(
                f"it reads the partitioned step {parent.name!r}, and a sharded step cannot. Fix: remove "
                "shards=, or read an unpartitioned step (one reading every partition).",
                "shards",
            )
        name = input_name(parent)
        partitioned[name] = parent.key
        if step.partition_mapping is not None:
            mappings[name] = step.partition_mapping
        elif partitions_def is not None and parent_def != partitions_def:
            raise step.error(
                f"it is partitioned by {partitions_def!r}, and reads {parent.name!r}, partitioned by "
                f"{parent_def!r}. Fix: give both the same partitions_def (partition to partition), or "
                "partition_mapping=dg.AllPartitionMapping() (each partition reads every partition).",
                "partition_mapping",
            )
    return PartitionPlan(partitions_def, partitioned, mappings)
