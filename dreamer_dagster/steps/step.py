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
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from ..deferred import ColumnRef, Deferred, upstream_steps
from ..fingerprint import FingerprintError, canonical, fingerprint
from ..names import safe_name
from .export import ExportMethods
from .operation_methods import OperationMethods

if TYPE_CHECKING:
    import dagster as dg

    from .run_context import StepRunContext

__all__ = ["REQUIRED", "Step", "StepDeclarationError"]


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


class StepDeclarationError(ValueError):
    """A step was declared with bad arguments; the message names step, argument and fix."""


class Step(OperationMethods, ExportMethods):
    """Base of every step: one Dagster asset that writes ``<output>/<step>/``.

    Subclasses set:

    - ``INPUTS``: input name -> required? (column references only);
    - ``ARGS``: arg name -> default (``REQUIRED`` when there is none);
    - ``OUTPUTS``: the internal output column names, or ``None`` when the
      data decides them (override :meth:`declared_columns`);
    - ``UNFINGERPRINTED_ARGS``: args that do not change the output (batch sizes).
    """

    INPUTS: ClassVar[Mapping[str, bool]] = {}
    ARGS: ClassVar[Mapping[str, Any]] = {}
    OUTPUTS: ClassVar[tuple[str, ...] | None] = ()
    UNFINGERPRINTED_ARGS: ClassVar[frozenset[str]] = frozenset()
    KIND: ClassVar[str] = "step"
    #: The output folder of the ``Pipeline`` block the step was declared in.
    pipeline_output_folder: str | None = None

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
        self.name = name
        try:
            self.key = safe_name(name)
        except (TypeError, ValueError) as error:
            raise StepDeclarationError(
                f"Step {name!r} ({type(self).__name__}), argument 'name': {error}"
            ) from None
        self.progress_interval = progress_interval
        #: Run even when a finished output with this fingerprint exists (DataDreamer's ``force``).
        self.force = force
        self._declared = False
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
            if not isinstance(ref, ColumnRef):
                raise self.error(
                    f"{ref!r} is not a column reference. Fix: pass another step's column, "
                    "such as other_step.output['column_name'].",
                    f"inputs[{input_name!r}]",
                )
        for input_name, required in (allowed or {}).items():
            if required and input_name not in inputs:
                raise self.error("this input is required but was not given.", f"inputs[{input_name!r}]")
        return inputs

    def _check_args(self, args: dict[str, Any]) -> dict[str, Any]:
        for arg_name in args:
            if arg_name not in self.ARGS:
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
        return OutputColumns(self)

    # -- identity -------------------------------------------------------------------

    def fingerprint_identity(self) -> dict:
        """How this step enters another's fingerprint (as a model or an arg)."""
        return {"step": self.fingerprint}

    def fingerprint_content(self) -> dict:
        """What the fingerprint hashes: type, args, inputs' producers, outputs."""
        return {
            "type": type(self).__name__,
            "args": {
                name: value for name, value in self.args.items() if name not in self.UNFINGERPRINTED_ARGS
            },
            "inputs": dict(self.inputs),
            "sources": [step.fingerprint for step in self.source_steps()],
            "outputs": self.output_mapping,
        }

    def describe_args(self) -> dict:
        """The args as step.json shows them (the canonical form; never a secret)."""
        return {name: _describe(value) for name, value in self.args.items()}

    def source_steps(self) -> list[Step]:
        """Whole steps this step reads (operations); column inputs are separate."""
        return []

    def upstream(self) -> list[Step]:
        """Every step this one depends on, in a stable order."""
        seen: dict[int, Step] = {}
        for step in (
            [ref.step for ref in self.inputs.values()] + self.source_steps() + upstream_steps(self.args)
        ):
            seen.setdefault(id(step), step)
        return list(seen.values())

    # -- running --------------------------------------------------------------------

    def run(self, context: StepRunContext) -> Iterable[dict] | Mapping[str, list] | Any:
        """Produce the output rows under the internal output names."""
        raise NotImplementedError(f"{type(self).__name__}.run")

    def execute(self, context: StepRunContext) -> dict:
        """Run the step into ``context.staged``; return step.json's output fields.

        The default writes ``run()``'s rows as ``_dataset``; trainers override it.
        """
        from .asset_factory import execute_dataset_step

        return execute_dataset_step(self, context)

    def card_entries(self, context: StepRunContext) -> dict[str, list[str]]:
        """This step's own data card entries (model names, licenses, citations...)."""
        entries: dict[str, list[str]] = {}
        for value in _walk(self.args):
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
        """The Dagster asset for this step."""
        from .asset_factory import build_asset

        return build_asset(self)

    @property
    def asset_key(self) -> dg.AssetKey:
        import dagster as dg

        return dg.AssetKey([self.key])

    def unload_model(self) -> None:
        """Harmless in a declaration (DataDreamer scripts call it between steps)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class OutputColumns:
    """``step.output``: column references, checked against the step's columns."""

    def __init__(self, step: Step):
        self._step = step

    @property
    def column_names(self) -> list[str] | None:
        return self._step.output_columns

    def __getitem__(self, column: str) -> ColumnRef:
        step = self._step
        if not isinstance(column, str):
            raise step.error(f"output columns are named by strings, got {column!r}.", "output")
        columns = step.output_columns
        if columns is not None and column not in columns:
            raise step.error(f"has no output column {column!r}; its columns are {columns}.", "output")
        return ColumnRef(step, column)

    def __contains__(self, column: str) -> bool:
        return self._step.output_columns is None or column in self._step.output_columns


def _rename_stream(rows: Iterable[dict], mapping: dict[str, str]) -> Iterator[dict]:
    for row in rows:
        yield {mapping.get(k, k): v for k, v in row.items()}


def _walk(value: Any) -> Iterator[Any]:
    yield value
    if isinstance(value, Mapping):
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _walk(item)


def _describe(value: Any) -> Any:
    if isinstance(value, (ColumnRef, Deferred)):
        return {"deferred": value.describe(), "fingerprint": value.step.fingerprint}
    if isinstance(value, Step):
        return {"step": value.name, "fingerprint": value.fingerprint}
    if isinstance(value, Mapping):
        return {str(k): _describe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and len(value) <= 1000:
        return [_describe(v) for v in value]
    try:
        described = canonical(value)
    except FingerprintError:
        return repr(value)
    if isinstance(described, list) and len(described) > 1000:
        return {"items": len(described), "fingerprint": fingerprint(value)}
    return described
