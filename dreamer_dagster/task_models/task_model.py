"""The base of task models, embedders and retrievers: batched runs through the model cache.

A task model maps each input text to one deterministic answer (a label
distribution, an embedding, a list of retrieved texts). ``TaskModel.cached_map``
is the one loop they share: inputs are taken a batch at a time, looked up in the
model's SQLite cache (:mod:`dreamer_dagster.cache`), and only the missing ones
(each distinct text once) reach the model; answers are committed batch by batch,
so a killed run resumes with only the missing inputs.

Counters (in the run's ``stats``, so in the step's ``dreamer/...`` metadata, zero
included): ``model_calls`` (inputs the model computed) and ``cache_hits``
(inputs answered from the cache).
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any

from ..direct_calls import direct_cache_folder, is_direct, step_scope
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


def _one_at_a_time(
    compute: Callable[[list[str]], list[Any]],
) -> Callable[[list[list[str]]], Iterator[tuple[int, list[Any]]]]:
    def compute_batches(batches: list[list[str]]) -> Iterator[tuple[int, list[Any]]]:
        for number, batch in enumerate(batches):
            yield number, compute(batch)

    return compute_batches


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while batch := list(islice(iterator, max(1, int(size)))):
        yield batch


class TaskModel(Model):
    """Base of models that answer each input text deterministically (run through the cache).

    Subclasses implement ``run``; they call :meth:`cached_map` with the request
    parameters that change the answer and a function that computes a batch.
    Run-time copies (``for_run``) write ``<output>/.cache/<cache_name>.db``; a model
    called directly uses the open session's cache (see :mod:`~dreamer_dagster.direct_calls`),
    and outside any session (without ``cache_folder_path``) computes every input.
    """

    def cached_map(
        self,
        items: Iterable[str],
        request: dict,
        compute: Callable[[list[str]], list[Any]],
        batch_size: int = DEFAULT_BATCH_SIZE,
        decode: Callable[[Any], Any] | None = None,
        counters: tuple[str, ...] = ("model_calls", "cache_hits"),
        force: bool = False,
        cache_only: bool = False,
    ) -> Iterator[Any]:
        """Answer each item in order: from the cache where it can, else by ``compute``.

        ``compute`` gets up to ``batch_size`` distinct missing items and returns one
        answer each (JSON-able, or a numpy vector); ``decode`` turns a stored answer
        into what ``run`` returns (applied to fresh answers too, so both read
        alike). ``counters`` names the stat for computed inputs, then those for cached ones.
        """
        decode = decode or (lambda value: value)
        windows = self.cached_windows(
            items, request, compute, batch_size, counters=counters, force=force, cache_only=cache_only
        )
        for _, answers in windows:
            for answer in answers:
                yield decode(answer)

    def cached_windows(
        self,
        items: Iterable[str],
        request: dict,
        compute: Callable[[list[str]], list[Any]] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        compute_batches: Callable[[list[list[str]]], Iterator[tuple[int, list[Any]]]] | None = None,
        counters: tuple[str, ...] = ("model_calls", "cache_hits"),
        force: bool = False,
        cache_only: bool = False,
    ) -> Iterator[tuple[list[str], list[Any]]]:
        """The items a window at a time, each window with its answers in order.

        A window of inputs is looked up in the cache at once; its distinct missing
        items are split into batches of ``batch_size`` and answered by ``compute``
        (one batch at a time), or by ``compute_batches``, which gets all of the
        window's batches and yields ``(batch number, answers)`` as each is done, in
        any order (an API model sends them concurrently). Every answered batch is
        committed to the cache as it arrives, so a failed or killed run keeps it.

        DataDreamer's ``force`` reads nothing from the cache (every input is computed again
        and its answer overwritten); ``cache_only`` raises instead of computing an input the
        cache does not hold. Called directly (not through a step), the model uses the open
        session's cache (see :mod:`~dreamer_dagster.direct_calls`).
        """
        from ..cache import ModelCache, publish_calls

        if force and cache_only:
            raise ValueError("force=True and cache_only=True contradict each other: pick one.")
        if compute_batches is None:
            if compute is None:
                raise TypeError("cached_windows needs compute or compute_batches.")
            compute_batches = _one_at_a_time(compute)
        cache_folder, stats = self.cache_folder, self.stats
        if is_direct(self):  # called directly, not through a step: the session's cache
            cache_folder = direct_cache_folder(self)
            scope = step_scope()
            stats = scope.stats if scope is not None else None
        stats = stats if stats is not None else Counter()
        for name in {"model_calls", "cache_hits", *counters}:
            stats[name] += 0  # reported as 0 rather than left out
        cache = None
        if cache_folder is not None:
            cache = ModelCache(cache_folder, self.cache_name(), self.fingerprint_identity())
        try:
            prefix = cache.prefix(request) if cache is not None else b""
            for window in batched(items, self.lookup_window(batch_size)):
                for item in window:
                    if not isinstance(item, str):
                        raise TypeError(
                            f"{type(self).__name__} takes texts (str); got {type(item).__name__}: {item!r:.80}"
                        )
                keys = [ModelCache.key(prefix, item) for item in window]
                found = cache.get_many(keys) if cache is not None and not force else [None] * len(window)
                missing = {key: item for key, item, value in zip(keys, window, found) if value is None}
                if missing and cache_only:
                    raise RuntimeError(
                        f"{self!r}: cache_only=True, but {len(missing)} inputs are not in the cache "
                        f"(the first: {next(iter(missing.values()))[:80]!r}). Fix: run without cache_only."
                    )
                hits = sum(value is not None for value in found)
                for name in counters[1:]:
                    stats[name] += hits
                if missing:
                    answers = dict(zip(keys, found))
                    batches = list(batched(list(missing.values()), batch_size))
                    for number, computed in compute_batches(batches):
                        batch = batches[number]
                        if len(computed) != len(batch):
                            raise RuntimeError(
                                f"{type(self).__name__} returned {len(computed)} answers for {len(batch)} inputs."
                            )
                        fresh = [
                            (ModelCache.key(prefix, item), value) for item, value in zip(batch, computed)
                        ]
                        if cache is not None:
                            cache.put_many(fresh)
                        answers.update(fresh)
                        stats[counters[0]] += len(batch)
                    found = [answers[key] for key in keys]
                yield window, found
        finally:
            if cache is not None:
                cache.close()
                if is_direct(self):  # a shared output folder: publish the calls (cache.py)
                    publish_calls(cache_folder)

    def lookup_window(self, batch_size: int) -> int:
        """How many inputs are looked up in the cache at once."""
        return max(batch_size, LOOKUP_WINDOW)

    @staticmethod
    def finish(results: Iterator[Any], return_generator: bool) -> Iterator[Any] | list[Any]:
        """``run``'s return: the generator itself, or a list of every answer."""
        return results if return_generator else list(results)
