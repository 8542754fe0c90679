"""The base of task steps: a model run over an input column, extra args passed to the model."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

from ..step import Step

__all__ = ["TaskStep"]


class TaskStep(Step):
    """Base of ``Embed``, ``Retrieve``, ``CosineSimilarity`` and ``RunTaskModel``.

    As in DataDreamer, args a step does not name itself are passed on to the
    model's ``run()`` (e.g. ``normalize_embeddings=False`` for an embedder); they
    enter the fingerprint like any arg. ``lazy`` is accepted for ported
    scripts: every step is materialized as an asset, so it changes nothing.
    """

    #: Args that belong to ``run()`` itself and cannot be passed through.
    RESERVED_ARGS: ClassVar[frozenset[str]] = frozenset(
        {"texts", "queries", "return_generator", "progress_interval", "total_num_texts"}
    )
    SHARD_BY: ClassVar[str | None] = "inputs"
    #: The arg holding the model and the model class it must be (checked at declaration).
    MODEL_ARG: ClassVar[str] = ""

    def model_class(self) -> type | None:
        return None

    def _check_args(self, args: dict[str, Any]) -> dict[str, Any]:
        extra = {name: value for name, value in args.items() if name not in self.ARGS}
        for name in extra:
            if name in self.RESERVED_ARGS or name.startswith("_"):
                raise self.error(f"{name!r} cannot be passed to the model's run().", f"args[{name!r}]")
        known = super()._check_args({name: value for name, value in args.items() if name in self.ARGS})
        return {**known, **extra}

    def validate(self) -> None:
        expected = self.model_class()
        if self.MODEL_ARG and expected is not None:
            model = self.args.get(self.MODEL_ARG)
            if model is not None and not isinstance(model, expected):
                raise self.error(
                    f"must be a {expected.__name__} (from dreamer_dagster), got {type(model).__name__}.",
                    self.MODEL_ARG,
                )
        batch_size = self.args.get("batch_size")
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise self.error(f"must be a positive int, got {batch_size!r}.", "batch_size")

    def extra_args(self) -> dict[str, Any]:
        """The args passed through to the model's ``run()``."""
        return {name: value for name, value in self.args.items() if name not in self.ARGS}

    def stream(self, context: Any, rows: Iterable[dict], total: int) -> Iterator[dict] | dict[str, list]:
        """``rows`` to stream to disk, reporting progress; empty columns when there are none."""
        if total == 0:
            return {name: [] for name in self.OUTPUTS or ()}
        return context.with_progress(rows, total)
