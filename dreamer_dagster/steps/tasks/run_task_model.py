"""RunTaskModel: a task model's answer for each input text."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..step import REQUIRED
from .task_step import TaskStep

__all__ = ["RunTaskModel"]


class RunTaskModel(TaskStep):
    """Runs a column of texts through a :class:`~dreamer_dagster.task_models.TaskModel`.

    Inputs ``texts``; args ``model`` (e.g. ``HFClassificationTaskModel``, which
    may stand on a trainer step), ``truncate``, ``batch_size``, and any other arg
    for the model's ``run()``. Writes ``_dataset`` with the columns ``texts`` and
    ``results`` (for a classifier: label -> probability); every answer goes
    through the model cache.
    """

    INPUTS = {"texts": True}
    ARGS = {"model": REQUIRED, "truncate": False, "batch_size": 10, "lazy": False}
    OUTPUTS = ("texts", "results")
    UNFINGERPRINTED_ARGS = frozenset({"batch_size", "lazy"})
    MODEL_ARG = "model"

    def model_class(self) -> type:
        from ...task_models.task_model import TaskModel

        return TaskModel

    def run(self, context: Any) -> Iterator[dict] | dict[str, list]:
        model = context.model(self.args["model"])
        ref = self.inputs["texts"]
        results = model.run(
            context.iter_column(ref),
            truncate=self.args["truncate"],
            batch_size=self.args["batch_size"],
            return_generator=True,
            **self.extra_args(),
        )
        rows = ({"texts": text, "results": result} for text, result in zip(context.iter_column(ref), results))
        return self.stream(context, rows, context.column_length(ref))
