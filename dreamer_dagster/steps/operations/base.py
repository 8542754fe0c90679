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
        if name is None:
            from ...pipeline import Pipeline

            # DataDreamer's rule: "Src (take)", then "Src (take #2)"... for a second one
            name = Pipeline.derived_name(sources[0].name.split(" / ")[-1], operation or self.OPERATION)
        super().__init__(name, args=args, **_step_options(sources[0], options))

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

    def run(self, context: StepRunContext) -> Any:
        if any(context.upstream_pickled(source) for source in self._sources):
            context.pickled = True  # the rows keep the pickled values: so does step.json
        return self.apply([context.dataset(source) for source in self._sources], context)

    def apply(self, datasets: list[Any], context: StepRunContext) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.apply")
