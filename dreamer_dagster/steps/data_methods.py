"""The step methods that read a step's output, as DataDreamer has them: ``step.dataset``,
``step.head(n)``, ``step.dataset_path``, ``step.progress``, ``step.data_card()``,
``step.help``.

Reading follows :func:`~dreamer_dagster.script_mode.require_output`'s rule: a running
script materializes the step first, a file Dagster loads as definitions gets a clear
error, and after the block the finished output folder is read.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .step import Step

__all__ = ["DataMethods"]


class DataMethods:
    """Mixin of :class:`~dreamer_dagster.steps.Step`: reading its output."""

    def read_dataset(self: Step, what: str = "reading the step's output") -> Any:
        """The step's finished ``datasets.Dataset`` (materialized first in a running script)."""
        from ..script_mode import require_output

        require_output(self, what)
        return self.finished_output()[0]

    @property
    def dataset(self: Step) -> Any:
        """The step's output as a ``datasets.Dataset``."""
        return self.read_dataset("step.dataset")

    def head(
        self: Step, n: int = 5, shuffle: bool = False, seed: int | None = None, buffer_size: int = 1000
    ) -> Any:
        """The first ``n`` rows (of a shuffle, with ``shuffle``) as a pandas ``DataFrame``."""
        from .output_data import OutputData

        return OutputData(self, self.read_dataset("step.head()")).head(n, shuffle, seed, buffer_size)

    @property
    def dataset_path(self: Step) -> str:
        """``<output>/<step>/_dataset`` (``datasets.load_from_disk`` reads it); in a running
        script the step is materialized first, so the path holds its rows."""
        from ..script_mode import can_read_output, require_output

        if can_read_output(self):
            require_output(self, "step.dataset_path")
        return str(self.export_folder().step(self.folder).dataset_path)

    @property
    def progress(self: Step) -> float | None:
        """1.0 once the output folder holds this step's finished output, the fraction a
        running step reported, else None (DataDreamer's ``progress``)."""

        value = self.__dict__.get("_progress")
        if getattr(self, "_run_context", None) is not None:
            return value  # running now
        try:
            fingerprint = self.fingerprint
        except ValueError:  # a trainer before .train()
            return None
        folder = self.export_folder().step(self.folder)
        if folder.finished_fingerprint() != fingerprint:
            return value
        from .lazy import read_progress

        return read_progress(self, folder.step_json() or {})

    @progress.setter
    def progress(self: Step, value: float) -> None:
        """Set by a running step's ``run()`` (0 to 1); logged once per ``progress_interval``."""
        value = max(0.0, min(1.0, float(value)), self.__dict__.get("_progress") or 0.0)
        self.__dict__["_progress"] = value
        context = getattr(self, "_run_context", None)
        if context is not None:
            context.fraction(value)

    def data_card(self: Step) -> None:
        """Print the data card of the step's finished output (every step behind it)."""
        from ..script_mode import require_output

        require_output(self, "data_card()")
        _, record = self.finished_record()
        print(json.dumps(record.get("data_card") or {}, indent=4))

    @property
    def help(self: Step) -> str:
        """What the step takes and gives (``Step.help`` on the class says the same)."""
        from .registration import help_text

        return help_text(self)
