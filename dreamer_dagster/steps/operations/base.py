"""The base of operations: steps that transform whole upstream steps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from ..step import Step

if TYPE_CHECKING:
    from ..run_context import StepRunContext

__all__ = ["OperationStep"]

#: The execution options an operation passes on to its step (the rest change nothing here).
_STEP_OPTIONS = ("progress_interval", "force", "save_num_proc", "save_num_shards", "background")


def _step_options(source: Step, options: dict[str, Any]) -> dict[str, Any]:
    """The operation's step options: those given, and the source's logging settings."""
    chosen = {name: options[name] for name in _STEP_OPTIONS if options.get(name) is not None}
    chosen.setdefault("verbose", getattr(source, "verbose", None))
    chosen.setdefault("log_level", getattr(source, "log_level", None))
    return chosen


class OperationStep(Step):
    """A step computed from whole upstream steps (not from chosen columns).

    Subclasses implement ``apply(datasets)`` on the loaded upstream Datasets and,
    when they can, ``columns(source_columns)`` so column references to their
    output are checked at declaration.
    """

    INPUTS: ClassVar = {}
    OUTPUTS: ClassVar = None
    KIND: ClassVar[str] = "operation"
    OPERATION: ClassVar[str] = "operation"
    #: DataDreamer's default of ``lazy=`` (None: lazy when the source's output is iterable).
    LAZY_DEFAULT: ClassVar[bool | None] = True
    #: When a lazy operation's output is an iterable dataset (see steps/lazy.py): ``"always"``,
    #: ``"iterable_source"`` (only over an iterable source, as DataDreamer's result types go)
    #: or ``"never"`` (the operation needs every row: it writes a dataset).
    LAZY_RULE: ClassVar[str] = "never"

    def __init__(
        self,
        sources: Step | Sequence[Step],
        name: str | None = None,
        args: dict | None = None,
        operation: str | None = None,
        **options: Any,
    ):
        sources = [sources] if isinstance(sources, Step) else list(sources)
        for source in sources:
            if not isinstance(source, Step):
                raise TypeError(f"{type(self).__name__}: {source!r} is not a step.")
        self._sources = sources
        self._decide_lazy(options)
        if name is None:
            from ...pipeline import Pipeline

            # DataDreamer's rule: "Src (take)", then "Src (take #2)"... for a second one
            name = Pipeline.derived_name(sources[0].name.split(" / ")[-1], operation or self.OPERATION)
        super().__init__(name, args=args, **_step_options(sources[0], options))
        if self.lazy_output:
            from ..lazy import register

            register(self)

    def _decide_lazy(self, options: dict[str, Any]) -> None:
        """``lazy=`` as DataDreamer means it: whether the output is an iterable dataset,
        computed on demand and never written as this step's own dataset."""
        from ..lazy import source_is_iterable

        requested = options.pop("lazy", self.LAZY_DEFAULT)
        self.total_num_rows: int | None = options.pop("total_num_rows", None)
        auto_progress = options.pop("auto_progress", True)
        self._lazy = False
        if self.LAZY_RULE == "never" or requested is False:
            return
        iterable = any(source_is_iterable(source) for source in self._sources)
        if requested is None:  # copy(): lazy over an iterable source
            requested = iterable
        self._lazy = bool(requested) and (self.LAZY_RULE == "always" or iterable)
        if self.lazy_output and self.WARNS_WITHOUT_TOTAL and self.total_num_rows is None and auto_progress:
            import warnings

            warnings.warn(
                f"You did not specify `total_num_rows`, so we cannot automatically update the "
                f"progress % for this step. Either specify {self.OPERATION}(..., total_num_rows=#) "
                f"or, to disable this warning, specify {self.OPERATION}(.., auto_progress = False)",
                stacklevel=5,
            )

    @property
    def lazy_output(self) -> bool:
        """Whether the output is an iterable dataset computed on demand (steps/lazy.py). A
        partitioned or sharded step, or one over such a step, writes its rows."""
        steps = [self, *self._sources]
        split = any(
            getattr(s, "partitions_def", None) is not None or getattr(s, "shards", None) for s in steps
        )
        return self._lazy and not split

    #: map / filter warn as DataDreamer does when a lazy one has no ``total_num_rows``.
    WARNS_WITHOUT_TOTAL: ClassVar[bool] = False

    @property
    def source(self) -> Step:
        return self._sources[0]

    def source_steps(self) -> list[Step]:
        return list(self._sources)

    def declared_columns(self) -> list[str] | None:
        known = [source.output_columns for source in self._sources]
        if any(columns is None for columns in known):
            return None
        return self.columns(known)

    def columns(self, source_columns: list[list[str]]) -> list[str] | None:
        """The output columns given the sources' columns (default: the first's)."""
        return list(source_columns[0])

    def check_column(self, column: str, argument: str) -> None:
        """Fail at declaration if the source is known not to have ``column``."""
        columns = self.source.output_columns
        if columns is not None and column not in columns:
            raise self.error(
                f"step {self.source.name!r} has no column {column!r}; its columns are {columns}.",
                argument,
            )

    def execute(self, context: StepRunContext) -> dict:
        if self.lazy_output:  # a recipe, no rows written (steps/lazy.py)
            from ..lazy import execute_recipe, register

            register(self)
            return execute_recipe(self, context)
        return super().execute(context)

    def run(self, context: StepRunContext) -> Any:
        from ..lazy import as_dataset

        if any(context.upstream_pickled(source) for source in self._sources):
            context.pickled = True  # the rows keep the pickled values: so does step.json
        # A lazy source streams into this step's staging folder (a dataset it may index).
        loaded = [as_dataset(context.dataset(source), context.staged) for source in self._sources]
        import pyarrow as pa

        from ...errors import StepOutputTypeError

        try:
            return self.apply(loaded, context)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as error:  # DataDreamer's error type
            raise StepOutputTypeError(
                f"Step {self.name!r} ({type(self).__name__}): its rows cannot be stored ({error}). Fix: "
                "return values Arrow can hold (str, numbers, lists, dicts), or step.pickle(value) others."
            ) from error

    def apply(self, datasets: list[Any], context: StepRunContext) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.apply")

    def apply_lazy(self, loaded: list[Any]) -> Any:
        """The lazy output (a :class:`~dreamer_dagster.steps.lazy.LazyDataset`) of the loaded
        upstream outputs (Datasets or LazyDatasets)."""
        from ..lazy import LazyDataset, iterable_of, pickled_columns, rows_of, without_torch

        self._pickled_input = sorted({c for d in loaded for c in pickled_columns(d)})
        with without_torch():
            iterable, total = self.lazy_rows([iterable_of(d) for d in loaded], [rows_of(d) for d in loaded])
        return LazyDataset(iterable, total, self, self._pickled_input)

    def lazy_function(self) -> Any:
        """The user's ``function`` for a lazy map / filter: given the rows with their pickled
        values restored (as DataDreamer gives them), its errors naming step, argument and row."""
        from ..lazy import unpickle_row
        from ..user_code import with_row_index

        batched = self.args["batched"]
        function = with_row_index(self, "function", self.args["function"], batched, self.args["with_indices"])
        pickled = getattr(self, "_pickled_input", [])
        if not pickled:
            return function

        def restored(values: Any, *rest: Any) -> Any:
            return function(
                unpickle_row(values, pickled, batched) if isinstance(values, dict) else values, *rest
            )

        return restored

    def lazy_rows(self, iterables: list[Any], counts: list[int | None]) -> tuple[Any, int | None]:
        """``(IterableDataset, total_num_rows or None)`` of this operation over its sources."""
        raise NotImplementedError(f"{type(self).__name__} has no lazy form")
