"""One run's inputs spread over several copies of one task model, embedder or retriever."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import Any

from ..model_info import ParallelInfo
from .task_model import DEFAULT_BATCH_SIZE, TaskModel

__all__ = ["ParallelModels", "ParallelTaskModel"]


class ParallelModels(ParallelInfo):
    """Mixin: runs ``run`` across ``models`` (one identity, e.g. one per GPU), in threads.

    Inputs are taken a window at a time and split into one contiguous part a
    model; each part runs through that model's own cached run, and the parts are
    joined back in input order. The identity, fingerprint and cache are those
    of a single model, so a step can switch between one model and several
    without re-running anything.
    """

    #: The class every model must be (set by each parallel class).
    MEMBER: type = TaskModel

    def __init__(self, *models: Any):
        name = type(self).__name__
        if not models:
            raise ValueError(f"{name} needs at least one model.")
        for model in models:
            if not isinstance(model, self.MEMBER) or isinstance(model, ParallelModels):
                raise TypeError(f"{name} takes {self.MEMBER.__name__} objects, not {type(model).__name__}.")
        if len({model.model_fingerprint for model in models}) > 1:
            raise ValueError(
                f"{name}'s models must have one identity (same class, model, parameters); "
                f"got {[model.fingerprint_identity() for model in models]}."
            )
        self.models = list(models)

    # -- one identity -----------------------------------------------------------------

    def identity(self) -> dict:
        return self.models[0].identity()

    def fingerprint_identity(self) -> dict:
        declared = self.__dict__.get("_declared_identity")
        return declared if declared is not None else self.models[0].fingerprint_identity()

    def cache_name(self) -> str:
        return self.models[0].cache_name()

    @property
    def model_name(self) -> Any:
        return self.models[0].model_name

    def dependencies(self) -> list:
        found: list = []
        for model in self.models:
            found.extend(step for step in model.dependencies() if step not in found)
        return found

    def for_run(self, cache_folder: Path | None, stats: Counter | None) -> Any:
        bound = super().for_run(cache_folder, stats)  # type: ignore[misc]
        bound.models = [model.for_run(cache_folder, Counter()) for model in self.models]
        return bound

    def unload_model(self) -> None:
        for model in self.models:
            model.unload_model()

    # -- running ----------------------------------------------------------------------

    def run(
        self,
        texts: Iterable[str],
        *args: Any,
        batch_size: int = DEFAULT_BATCH_SIZE,
        return_generator: bool = False,
        **kwargs: Any,
    ) -> Iterator[Any] | list[Any]:
        """What one model's ``run`` returns, computed by all the models side by side
        (DataDreamer's ``run(texts, *args, **kwargs)``; a retriever's is ``queries``)."""
        results = self._run_parallel(iter(texts), args, batch_size, kwargs)
        return results if return_generator else list(results)

    def _run_parallel(
        self, inputs: Iterator[str], args: tuple, batch_size: int, kwargs: dict
    ) -> Iterator[Any]:
        count = len(self.models)
        window = max(batch_size, 64) * count
        with ThreadPoolExecutor(max_workers=count, thread_name_prefix=type(self).__name__) as pool:
            while items := list(islice(inputs, window)):
                size = -(-len(items) // count)
                parts = [items[i : i + size] for i in range(0, len(items), size)]
                futures = [
                    pool.submit(model.run, part, *args, batch_size=batch_size, **kwargs)
                    for model, part in zip(self.models, parts)
                ]
                for future in futures:
                    yield from future.result()
                self._gather_stats()

    def _gather_stats(self) -> None:
        stats = getattr(self, "stats", None)
        for model in self.models:
            if model.stats:
                if stats is not None:
                    stats.update(model.stats)
                model.stats.clear()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(repr(model) for model in self.models)})"


class ParallelTaskModel(ParallelModels, TaskModel):
    """DataDreamer's ``ParallelTaskModel(*task_models)``: one task model's runs spread over several
    copies (``HFClassificationTaskModel(name, device=0)``, ``...device=1``); answers,
    fingerprint and model cache are those of one model."""

    MEMBER = TaskModel

    def count_tokens(self, value: str) -> int:
        return self.models[0].count_tokens(value)

    @property
    def model_max_length(self) -> int:
        return self.models[0].model_max_length
