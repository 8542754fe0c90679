"""The step base class: a declaration that validates itself and becomes an asset.

A step is declared ``StepClass(name, inputs={...}, args={...}, outputs={...})``
exactly as in DataDreamer. Declaring checks every input, arg and output name,
computes the fingerprint and registers the step with the enclosing
:class:`~dreamer_dagster.Pipeline`; nothing runs and no model or data is
touched. ``step.asset`` is the Dagster asset (built by
:mod:`~dreamer_dagster.steps.asset_factory`), whose body calls :meth:`Step.run`.

A subclass says what it takes and gives with four class attributes and
implements ``run(context)``, which returns the output rows (an iterable of
dicts, a dict of columns, or a ``datasets.Dataset``) under the internal output
names; renaming to the user's ``outputs=`` names happens here, once.

Prompt and task steps also take ``shards=N`` (and ``backfill_policy=``): they
then run as N Dagster partitions, merged in order (see
:mod:`~dreamer_dagster.steps.shards`).

Every step and trainer also takes the Dagster settings of
:mod:`~dreamer_dagster.steps.settings` as keyword arguments (``pool=``,
``retry_policy=``, ``checks=``, ``automation_condition=``, ``budget_usd=``,
``owners=``, ``tags=``, ``op_tags=``, ``group_name=``), whatever its own
signature; ``step.configure(...)`` sets them later. None is fingerprinted.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from ..deferred import ColumnRef, Deferred, upstream_steps
from ..fingerprint import FingerprintError, fingerprint
from ..names import folder_name, normalize_name, safe_name, scoped_name
from .arg_values import describe_value, walk_values
from .data_methods import DataMethods
from .export import ExportMethods
from .operation_methods import OperationMethods
from .output_data import ColumnData, OutputColumns
from .registration import RegistrationMethods, execute_registered
from .settings import SettingError, check_settings, merge_setting
from .step_services import StepServices
from .step_type import StepType, unused_name

if TYPE_CHECKING:
    import dagster as dg

    from .run_context import StepRunContext

__all__ = ["REQUIRED", "Step", "StepDeclarationError", "StepDeclarationTypeError"]


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


class StepDeclarationError(ValueError):
    """A step was declared with bad arguments; the message names step, argument and fix."""


class StepDeclarationTypeError(StepDeclarationError, TypeError):
    """A declaration error DataDreamer raises as ``TypeError`` (an input that is no column)."""


class Step(
    OperationMethods, ExportMethods, DataMethods, RegistrationMethods, StepServices, metaclass=StepType
):
    """Base of every step: one Dagster asset that writes ``<output>/<step>/``.

    Subclasses set:

    - ``INPUTS``: input name -> required? (column references only);
    - ``ARGS``: arg name -> default (``REQUIRED`` when there is none);
    - ``OUTPUTS``: the internal output column names, or ``None`` when the
      data decides them (override :meth:`declared_columns`);
    - ``UNFINGERPRINTED_ARGS``: args that do not change the output (batch sizes);

    and implement ``run(context)``. Or, DataDreamer's way, ``setup()`` with
    ``register_input`` / ``register_arg`` / ``register_output`` and ``run()``
    (see :mod:`~dreamer_dagster.steps.registration`).
    """

    INPUTS: ClassVar[Mapping[str, bool]] = {}
    ARGS: ClassVar[Mapping[str, Any]] = {}
    OUTPUTS: ClassVar[tuple[str, ...] | None] = ()
    UNFINGERPRINTED_ARGS: ClassVar[frozenset[str]] = frozenset()
    KIND: ClassVar[str] = "step"
    #: More Dagster kinds (web UI icons) than ``KIND`` and the models' own.
    KINDS: ClassVar[tuple[str, ...]] = ()
    #: Whether the step keeps a subset of its input's rows (it gets the ``kept_ratio`` check).
    FILTERS_ROWS: ClassVar[bool] = False
    #: How ``shards=N`` splits the step (see steps/shards.py): ``"inputs"`` (each shard a slice
    #: of the rows of ``SHARD_INPUTS``, None: every input), ``"n"`` (a part of ``n`` rows),
    #: or None (the step cannot be sharded).
    SHARD_BY: ClassVar[str | None] = None
    SHARD_INPUTS: ClassVar[tuple[str, ...] | None] = None
    #: ``shards=N``: the step runs as N Dagster partitions and a merge (None: one asset).
    shards: int | None = None
    #: The Dagster backfill policy of the shards (default: one run per shard).
    backfill_policy: Any = None
    #: ``partitions_def=`` / ``partition_mapping=`` (see steps/partitions.py).
    partitions_def: Any = None
    partition_mapping: Any = None
    #: Whether args beyond ``ARGS`` are accepted (DataDreamer's ``register_arg("**kwargs")``).
    ACCEPTS_ANY_ARGS: ClassVar[bool] = False
    #: The output folder of the ``Pipeline`` block the step was declared in.
    pipeline_output_folder: str | None = None
    #: The ``Pipeline`` block the step was declared in (its translator, IO manager key).
    pipeline: Any = None
    #: The file and line that declared the step (``dagster/code_references``).
    declared_at: tuple[str, int] | None = None
    #: False: in a running script the step runs only when code asks for it (``wait(step)``,
    #: a read of its data), not when declared nor at the block's end (see script_steps.py).
    RUNS_WHEN_DECLARED: ClassVar[bool] = True
    #: Declared outside any block in a script: a read of its data runs it in memory.
    runs_in_memory: bool = False
    #: While a DataDreamer-style step's ``run()`` runs: its run context (see registration.py).
    _run_context: Any = None
    # The Dagster settings (see steps/settings.py); None: the pipeline's, else the default.
    automation_condition: Any = None
    pool: str | None = None
    retry_policy: Any = None
    checks: Any = None
    budget_usd: float | None = None
    owners: list[str] | None = None
    tags: dict[str, str] | None = None
    op_tags: dict[str, Any] | None = None
    group_name: str | None = None
    pipes_client: Any = None

    def __init__(
        self,
        name: str,
        inputs: Mapping[str, Any] | None = None,
        args: Mapping[str, Any] | None = None,
        outputs: Mapping[str, str] | None = None,
        progress_interval: float | None = 60,
        force: bool = False,
        verbose: bool | None = None,
        log_level: int | None = None,
        save_num_proc: int | None = None,
        save_num_shards: int | None = None,
        background: bool = False,
    ):
        self.name = name = scoped_name(unused_name(normalize_name(name)))
        try:
            self.key = safe_name(name)
            #: The step's folder in the output folder (DataDreamer's rule; see names.folder_name).
            self.folder = folder_name(name)
        except (TypeError, ValueError) as error:
            raise StepDeclarationError(
                f"Step {name!r} ({type(self).__name__}), argument 'name': {error}"
            ) from None
        self.progress_interval = progress_interval
        #: Run even when a finished output with this fingerprint exists (DataDreamer's ``force``).
        self.force = force
        #: DataDreamer's logging settings (the step's own over its ``Pipeline``'s; see logs.py).
        self.verbose = verbose
        self.log_level = log_level
        #: ``save_to_disk``'s ``num_proc`` / ``num_shards`` for ``_dataset``.
        self.save_num_proc = save_num_proc
        self.save_num_shards = save_num_shards
        #: In a running script: run in a thread of its own, joined by ``wait()`` (script_steps.py).
        self.background = background
        self._declared = False
        if type(self).uses_registration():
            self._run_setup()
        self._declare(inputs, args, outputs)

    # -- declaration ----------------------------------------------------------------

    def _declare(
        self,
        inputs: Mapping[str, Any] | None,
        args: Mapping[str, Any] | None,
        outputs: Mapping[str, str] | None,
    ) -> None:
        self.inputs = self._check_inputs(dict(inputs or {}))
        self.args = self._check_args(dict(args or {}))
        self.validate()
        self.output_mapping = self._check_outputs(dict(outputs or {}))
        try:
            self.fingerprint = fingerprint(self.fingerprint_content())
        except FingerprintError as error:
            raise self.error(str(error), "args") from None
        self._declared = True
        from ..pipeline import Pipeline

        Pipeline.register(self)
        if self.__dict__.get("_constructed"):  # declared after construction (a trainer's train())
            from ..script_steps import declared

            declared(self)

    def error(self, message: str, argument: str | None = None) -> StepDeclarationError:
        """A declaration error that names this step (and the argument, if any)."""
        where = f"Step {self.name!r} ({type(self).__name__})"
        if argument:
            where += f", argument {argument!r}"
        return StepDeclarationError(f"{where}: {message}")

    def _check_inputs(self, inputs: dict[str, Any]) -> dict[str, ColumnRef]:
        allowed = self.INPUTS
        for input_name, ref in inputs.items():
            if allowed is not None and input_name not in allowed:
                raise self.error(
                    f"unknown input. {type(self).__name__} takes inputs {sorted(allowed)}.",
                    f"inputs[{input_name!r}]",
                )
            if isinstance(ref, ColumnData):  # a column's values in a running SuperStep
                ref = inputs[input_name] = ColumnRef(ref.step, ref.column_name)
            if not isinstance(ref, ColumnRef) or getattr(ref, "in_memory", None) is not None:
                message = f"{ref!r} is not a column reference. Fix: pass another step's column, "
                error = self.error(
                    message + "such as other_step.output['column_name'].", f"inputs[{input_name!r}]"
                )
                raise StepDeclarationTypeError(str(error))
        for input_name, required in (allowed or {}).items():
            if required and input_name not in inputs:
                raise self.error("this input is required but was not given.", f"inputs[{input_name!r}]")
        return inputs

    def _check_args(self, args: dict[str, Any]) -> dict[str, Any]:
        for arg_name in args:
            if arg_name not in self.ARGS and not self.ACCEPTS_ANY_ARGS:
                raise self.error(
                    f"unknown argument. {type(self).__name__} takes args {sorted(self.ARGS)}.",
                    f"args[{arg_name!r}]",
                )
        merged = {}
        for arg_name, default in self.ARGS.items():
            value = args.get(arg_name, default)
            if value is REQUIRED:
                raise self.error("this argument is required but was not given.", f"args[{arg_name!r}]")
            merged[arg_name] = value
        merged.update({name: value for name, value in args.items() if name not in merged})
        return merged

    def _check_outputs(self, outputs: dict[str, str]) -> dict[str, str]:
        internal = self.declared_columns()
        for source, target in outputs.items():
            if internal is not None and source not in internal:
                raise self.error(
                    f"unknown output {source!r}. {type(self).__name__} outputs {list(internal)}.",
                    f"outputs[{source!r}]",
                )
            if not isinstance(target, str) or not target:
                raise self.error("an output column name must be a non-empty string.", f"outputs[{source!r}]")
        if internal is not None:
            final = [outputs.get(column, column) for column in internal]
            repeated = sorted({column for column in final if final.count(column) > 1})
            if repeated:
                raise self.error(
                    f"two output columns would be named {repeated}. Fix: give each a distinct name.",
                    "outputs",
                )
        return outputs

    def validate(self) -> None:
        """Subclass hook: check argument values; raise ``self.error(...)``."""

    def configure(self, **settings: Any) -> Step:
        """Set Dagster settings (``pool=``, ``retry_policy=``, ``checks=``,
        ``automation_condition=``, ``budget_usd=``, ``owners=``, ``tags=``, ``op_tags=``,
        ``group_name=``); returns the step. None of them changes the fingerprint."""
        if "asset" in self.__dict__:
            raise self.error(
                "its asset is already built, so its Dagster settings can no longer change. "
                "Fix: configure the step before using step.asset or building the definitions.",
                next(iter(settings), None),
            )
        try:
            checked = check_settings(settings)
        except SettingError as error:
            raise self.error(str(error), error.argument) from None
        if isinstance(checked.get("checks"), dict) and self._declared:
            from ..checks import applicable_checks

            applicable = applicable_checks(self)
            for name in checked["checks"]:
                if name not in applicable:
                    raise self.error(
                        f"the check {name!r} does not apply to a {type(self).__name__}; "
                        f"its checks are {applicable}.",
                        "checks",
                    )
        for name, value in checked.items():
            setattr(self, name, merge_setting(name, getattr(self, name), value))
        return self

    def apply_defaults(self, defaults: Mapping[str, Any]) -> None:
        """Fill the Dagster settings this step does not set from ``defaults`` (a pipeline's)."""
        for name, value in defaults.items():
            if value is not None:
                setattr(self, name, merge_setting(name, value, getattr(self, name)))

    def declared_columns(self) -> list[str] | None:
        """The internal output column names, or None when only the data knows them."""
        return None if self.OUTPUTS is None else list(self.OUTPUTS)

    @cached_property
    def output_columns(self) -> list[str] | None:
        """The output column names users see (after ``outputs=`` renaming)."""
        internal = self.declared_columns()
        if internal is None:
            return None
        return [self.output_mapping.get(column, column) for column in internal]

    @property
    def output(self) -> OutputColumns:
        """Column references (``step.output["col"]``), and the rows when code reads them
        (an ``OutputIterableDataset`` for an iterable output: steps/output_iterable.py)."""
        from .output_iterable import output_for

        return output_for(self)

    # -- identity -------------------------------------------------------------------

    def fingerprint_identity(self) -> dict:
        """How this step enters another's fingerprint (as a model or an arg)."""
        return {"step": self.fingerprint}

    def fingerprint_content(self) -> dict:
        """What the fingerprint hashes: type, args, inputs' producers, outputs."""
        content = {
            "type": type(self).__name__,
            "args": {
                name: value for name, value in self.args.items() if name not in self.UNFINGERPRINTED_ARGS
            },
            "inputs": dict(self.inputs),
            "sources": [step.fingerprint for step in self.source_steps()],
            "outputs": self.output_mapping,
        }
        if type(self).uses_registration():
            content["registered_outputs"] = list(self.OUTPUTS)
        if self.save_num_shards is not None:
            content["save_num_shards"] = self.save_num_shards  # the _dataset's files, as DataDreamer
        return content

    def describe_args(self) -> dict:
        """The args as step.json shows them (the canonical form; never a secret)."""
        return {name: describe_value(value) for name, value in self.args.items()}

    def source_steps(self) -> list[Step]:
        """Whole steps this step reads (operations); column inputs are separate."""
        return []

    def models(self) -> list[Any]:
        """The models among this step's args (LLMs, embedders...), in order, each once."""
        from ..model import Model

        found: dict[int, Any] = {}
        for value in walk_values(getattr(self, "args", None) or {}):
            if isinstance(value, Model):
                found.setdefault(id(value), value)
        return list(found.values())

    def default_pool(self) -> str | None:
        """The Dagster pool of a step without ``pool=``: its first model's (None: no pool)."""
        models = self.models()
        return models[0].dagster_pool() if models else None

    def dagster_kinds(self) -> set[str]:
        """The asset's kinds (web UI icons): the step's kind and its models' (``openai``...)."""
        kinds = [self.KIND, *self.KINDS]
        for model in self.models():
            kinds.extend(model.dagster_kinds())
        return set(list(dict.fromkeys(kinds))[:10])  # Dagster allows ten

    def upstream(self) -> list[Step]:
        """Every step this one depends on, in a stable order."""
        seen: dict[int, Step] = {}
        for step in (
            [ref.step for ref in self.inputs.values()] + self.source_steps() + upstream_steps(self.args)
        ):
            seen.setdefault(id(step), step)
        return list(seen.values())

    # -- running --------------------------------------------------------------------

    def run(self, context: StepRunContext | None = None) -> Iterable[dict] | Mapping[str, list] | Any:
        """Produce the output rows under the internal output names."""
        raise NotImplementedError(f"You must implement the .run() method in {type(self).__name__}.")

    def execute(self, context: StepRunContext) -> dict:
        """Run the step into ``context.staged``; return step.json's output fields.

        The default writes ``run()``'s rows as ``_dataset``; trainers override it.
        """
        from .asset_factory import execute_dataset_step

        if type(self).uses_registration():
            return execute_registered(self, context)
        return execute_dataset_step(self, context)

    def card_entries(self, context: StepRunContext) -> dict[str, list[str]]:
        """This step's own data card entries (model names, licenses, citations...)."""
        entries: dict[str, list[str]] = {key: list(values) for key, values in self.registered_card().items()}
        for value in walk_values(self.args):
            if isinstance(value, (type, Step, ColumnRef, Deferred)):
                continue  # a deferred value answers every attribute; it is no model
            card = getattr(value, "card_entries", None)
            if card is not None and callable(card):
                for key, items in card().items():
                    entries.setdefault(key, [])
                    entries[key].extend(item for item in items if item not in entries[key])
        return entries

    def renamed_rows(self, rows: Any) -> Any:
        """``rows`` with internal output names replaced by the user's names."""
        mapping = {k: v for k, v in self.output_mapping.items() if k != v}
        if not mapping:
            return rows
        if type(rows).__name__ == "Dataset":
            return rows.rename_columns(mapping)
        if isinstance(rows, Mapping):
            return {mapping.get(k, k): v for k, v in rows.items()}
        return _rename_stream(rows, mapping)

    @cached_property
    def asset(self) -> dg.AssetsDefinition:
        """The Dagster asset for this step (with its ``Pipeline``'s translator and IO manager key)."""
        from .asset_factory import build_step_asset

        pipeline = self.pipeline
        if pipeline is None:
            return build_step_asset(self)
        return build_step_asset(
            self,
            pipeline.translator,
            io_manager_key=pipeline.io_manager_key,
            output_folder=pipeline.output_folder,
        )

    @cached_property
    def shards_asset(self) -> dg.AssetsDefinition | None:
        """A sharded step's partitioned asset (one partition per shard); None unsharded."""
        if not self.shards:
            return None
        from .shards import build_shards_asset

        pipeline = self.pipeline
        if pipeline is None:
            return build_shards_asset(self)
        return build_shards_asset(
            self,
            pipeline.translator,
            io_manager_key=pipeline.io_manager_key,
            output_folder=pipeline.output_folder,
        )

    @property
    def asset_key(self) -> dg.AssetKey:
        """The key of :attr:`asset` (the step's safe name, after any translator prefix)."""
        return self.asset.key

    def unload_model(self) -> None:
        """Harmless in a declaration (DataDreamer scripts call it between steps)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def _rename_stream(rows: Iterable[Any], mapping: dict[str, str]) -> Iterator[Any]:
    for row in rows:
        if isinstance(row, dict):
            yield {mapping.get(k, k): v for k, v in row.items()}
        else:  # a pyarrow table of rows
            yield row.rename_columns([mapping.get(name, name) for name in row.column_names])
