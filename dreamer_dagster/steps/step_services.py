"""What a step does for the core rooms, which cannot import ``steps/`` (CONTRIBUTING.md,
"Layers"): the methods of :class:`~dreamer_dagster.step_like.StepLike` that need this
layer (reading a column, computing a deferred value by script mode's rule) and those
of :class:`~dreamer_dagster.cost.EstimableStep` (an estimate-only run context)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..step_like import StepNode

if TYPE_CHECKING:
    from ..deferred import Deferred
    from ..output_folder import OutputFolder
    from .output_data import ColumnData
    from .run_context import StepRunContext
    from .step import Step

__all__ = ["StepServices"]


class StepServices(StepNode):
    """Mixin of :class:`~dreamer_dagster.steps.Step`: what the core asks of a step."""

    __slots__ = ()

    def column_data(self: Step, column: str, what: str) -> ColumnData:
        """``column`` of the step's finished output (read as :meth:`read_dataset` reads)."""
        from .output_data import ColumnData

        return ColumnData(self, self.read_dataset(what).select_columns([column]))

    def compute_deferred(self: Step, deferred: Deferred, what: str) -> Any:
        """``deferred`` (made from this step) computed now, by
        :func:`~dreamer_dagster.script_mode.require_output`'s rule."""
        from ..script_mode import deferred_value

        return deferred_value(deferred, what)

    def estimating_context(
        self: Step, output_folder: OutputFolder, upstream: Mapping[str, Any]
    ) -> StepRunContext:
        """A run context in estimate-only mode (``cost.estimate_step``): models count, never send."""
        from .run_context import StepRunContext

        return StepRunContext(self, output_folder, dict(upstream), staged=None, estimating=True)

    @property
    def overrides_execute(self: Step) -> bool:
        """Whether the step's class runs its own ``execute`` (a SuperStep, a trainer, a data
        source, an operation), not only ``run()``."""
        from .step import Step

        return type(self).execute is not Step.execute
