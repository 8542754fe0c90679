"""The base of operations: steps that transform whole upstream steps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from ..step import Step

if TYPE_CHECKING:
    from ..run_context import StepRunContext

__all__ = ["OperationStep"]


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

    def __init__(self, sources: Step | Sequence[Step], name: str | None = None, args: dict | None = None):
        sources = [sources] if isinstance(sources, Step) else list(sources)
        for source in sources:
            if not isinstance(source, Step):
                raise TypeError(f"{type(self).__name__}: {source!r} is not a step.")
        self._sources = sources
        if name is None:
            name = f"{sources[0].name} ({self.OPERATION})"
        super().__init__(name, args=args)

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
        return self.apply([context.dataset(source) for source in self._sources], context)

    def apply(self, datasets: list[Any], context: StepRunContext) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.apply")
