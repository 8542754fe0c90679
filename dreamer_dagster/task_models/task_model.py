"""The base of task models, embedders and retrievers: batched runs through the model cache.

A task model maps each input text to one deterministic answer (a label
distribution, an embedding, a list of retrieved texts). ``TaskModel.cached_map``
is the one loop they share: inputs are taken a batch at a time, looked up in the
model's SQLite cache (:mod:`dreamer_dagster.cache`), and only the missing ones
(each distinct text once) reach the model; answers are stored as JSON and
committed batch by batch, so a killed run resumes with only the missing inputs.

Counters (in the run's ``stats``): ``model_calls`` (inputs the model computed)
and ``cache_hits`` (inputs answered from the cache).
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any

from ..model import Model

__all__ = ["DEFAULT_BATCH_SIZE", "TaskModel", "shared_loaded"]

DEFAULT_BATCH_SIZE = 10
#: Inputs looked up in the cache at once (a fully cached re-run reads in windows this big).
LOOKUP_WINDOW = 1000

# Loaded weights kept for the process (a few, least recently used first out), so
# that several steps using one model in one process load it once.
_LOADED: OrderedDict[tuple, Any] = OrderedDict()
_LOADED_MAX = 2


def shared_loaded(key: tuple, load: Callable[[], Any]) -> Any:
    """``load()``'s result, shared by every run-time copy asking with the same ``key``."""
    if key in _LOADED:
        _LOADED.move_to_end(key)
        return _LOADED[key]
    value = load()
    _LOADED[key] = value
    while len(_LOADED) > _LOADED_MAX:
        _LOADED.popitem(last=False)
    return value


def forget_loaded(key: tuple) -> None:
    """Drop ``key``'s loaded value (``unload_model``)."""
    _LOADED.pop(key, None)


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while batch := list(islice(iterator, max(1, int(size)))):
        yield batch


class TaskModel(Model):
    """Base of models that answer each input text deterministically (run through the cache).

    Subclasses implement ``run``; they call :meth:`cached_map` with the request
    parameters that change the answer and a function that computes a batch.
    Run-time copies (``for_run``) write ``<output>/.cache/<cache_name>.db``; a
    model used outside a step (no cache folder) computes every input.
    """

    def cached_map(
        self,
        items: Iterable[str],
        request: dict,
        compute: Callable[[list[str]], list[Any]],
        batch_size: int = DEFAULT_BATCH_SIZE,
        decode: Callable[[Any], Any] | None = None,
        counters: tuple[str, str] = ("model_calls", "cache_hits"),
    ) -> Iterator[Any]:
        """Answer each item in order: from the cache where it can, else by ``compute``.

        ``compute`` gets up to ``batch_size`` distinct missing items and returns one
        JSON-able answer each; ``decode`` turns a stored JSON answer into what
        ``run`` returns (applied to fresh answers too, so both read alike).
        ``counters`` names the stats for computed and cached inputs.
        """
        from ..cache import ModelCache

        stats = self.stats if self.stats is not None else Counter()
        decode = decode or (lambda value: value)
        cache = None
        if self.cache_folder is not None:
            cache = ModelCache(self.cache_folder, self.cache_name(), self.fingerprint_identity())
        try:
            prefix = cache.prefix(request) if cache is not None else b""
            # Look up a window of inputs at once (cheap); compute the misses a batch at a time.
            for window in batched(items, max(batch_size, LOOKUP_WINDOW)):
                for item in window:
                    if not isinstance(item, str):
                        raise TypeError(
                            f"{type(self).__name__} takes texts (str); got {type(item).__name__}: {item!r:.80}"
                        )
                keys = [ModelCache.key(prefix, item) for item in window]
                found = cache.get_many(keys) if cache is not None else [None] * len(window)
                answers: dict[str, Any] = {key: value for key, value in zip(keys, found) if value is not None}
                stats[counters[1]] += len(window) - found.count(None)
                missing = list(dict.fromkeys(item for key, item in zip(keys, window) if key not in answers))
                pending = batched(missing, batch_size)
                for key in keys:
                    while key not in answers:
                        batch = next(pending)
                        computed = compute(batch)
                        if len(computed) != len(batch):
                            raise RuntimeError(
                                f"{type(self).__name__} returned {len(computed)} answers for {len(batch)} inputs."
                            )
                        fresh = {ModelCache.key(prefix, item): value for item, value in zip(batch, computed)}
                        if cache is not None:
                            cache.put_many(fresh.items())
                        answers.update(fresh)
                        stats[counters[0]] += len(batch)
                    yield decode(answers[key])
        finally:
            if cache is not None:
                cache.close()

    @staticmethod
    def finish(results: Iterator[Any], return_generator: bool) -> Iterator[Any] | list[Any]:
        """``run``'s return: the generator itself, or a list of every answer."""
        return results if return_generator else list(results)
