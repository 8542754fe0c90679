"""A model called directly (``llm.run(...)``, ``embedder.run(...)``, not through a step): which
model cache it reads and writes.

DataDreamer's rule (``_Cachable.cache_and_lock``), kept here:

1. the model's ``cache_folder_path`` when it is set (inside a session or not);
2. else, inside a session, the session's model cache: an open ``Pipeline`` block (script or
   definitions mode; none for ``Pipeline(":memory:")``, as DataDreamer keeps no cache in
   memory), or a step running in a Dagster run (a function of the step calling a model);
3. else no cache: every call goes to the model.

The session's cache is the one its steps use (``OutputFolder.cache_path``: ``<output>/.cache``,
or this worker's own cache for a shared or remote output folder), and a direct call runs on
the run-time copy steps use (:meth:`Model.for_run <dreamer_dagster.model.Model.for_run>`), so
the file, its keys and its format are a step's: a direct call and a step share answers both
ways. Inside a step, a direct call also counts in the step's stats and obeys its
:class:`~dreamer_dagster.call_scope.CallScope` (log, budget, closing on failure).

A direct call holds its cache only while it runs (opened by the run, closed when the run
ends or its generator is closed; each answered batch committed as it arrives), so it never
blocks a step in the same process; on a shared output folder its calls are published when it
ends, as a step's are when it commits (see :mod:`~dreamer_dagster.cache`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from .call_scope import CallScope
    from .model import Model

__all__ = [
    "CallSession",
    "bind_direct",
    "call_session",
    "current_session",
    "direct_cache_folder",
    "finish_direct",
    "is_direct",
    "pop_session",
    "push_session",
    "step_scope",
]

T = TypeVar("T")

#: Open sessions, innermost last. Process-wide, not per thread: the threads a model starts
#: (``ParallelEmbedder``'s members) call models inside the session that started them.
_SESSIONS: list[CallSession] = []
_LOCK = threading.Lock()
#: The scope of the step running in this thread (None outside a step run).
_STEP_SCOPE: ContextVar[CallScope | None] = ContextVar("dreamer_step_scope", default=None)


class CallSession:
    """An open session's model cache folder (computed on first use: ``folder`` may be a
    function, so opening a block costs nothing until a model is called directly)."""

    def __init__(self, folder: Path | Callable[[], Path | None] | None):
        self._folder = folder

    def cache_folder(self) -> Path | None:
        if callable(self._folder):
            self._folder = self._folder()
        return None if self._folder is None else Path(self._folder)


def push_session(folder: Path | Callable[[], Path | None] | None) -> CallSession:
    """Open a session whose direct calls use ``folder`` (None: no cache); end it with
    :func:`pop_session`."""
    session = CallSession(folder)
    with _LOCK:
        _SESSIONS.append(session)
    return session


def pop_session(session: CallSession) -> None:
    """End ``session`` (sessions opened after it stay open)."""
    with _LOCK:
        for index in range(len(_SESSIONS) - 1, -1, -1):
            if _SESSIONS[index] is session:
                del _SESSIONS[index]
                return


@contextmanager
def call_session(folder: Path | None, scope: CallScope | None = None) -> Iterator[CallSession]:
    """Within the block, direct calls use ``folder`` (and, in this thread, the step's ``scope``)."""
    session = push_session(folder)
    token = _STEP_SCOPE.set(scope) if scope is not None else None
    try:
        yield session
    finally:
        if token is not None:
            _STEP_SCOPE.reset(token)
        pop_session(session)


def current_session() -> CallSession | None:
    """The innermost open session, or None outside any."""
    with _LOCK:
        return _SESSIONS[-1] if _SESSIONS else None


def step_scope() -> CallScope | None:
    """The scope of the step running in this thread, or None."""
    return _STEP_SCOPE.get()


def is_direct(model: Model) -> bool:
    """Whether ``model`` is called directly: not a run-time copy a step (or a test) bound with
    ``for_run``, which always sets ``stats``."""
    return model.stats is None


def direct_cache_folder(model: Model) -> Path | None:
    """The cache folder of a direct call of ``model`` (see the module's rule)."""
    if model.cache_folder_path is not None:
        return Path(model.cache_folder_path).expanduser()
    session = current_session()
    return session.cache_folder() if session is not None else None


def bind_direct(model: T) -> T:
    """The run-time copy a direct call of ``model`` runs on: ``for_run`` with the direct
    call's cache folder, and the running step's stats and scope when inside one."""
    scope = step_scope()
    bound = model.for_run(direct_cache_folder(model), scope.stats if scope is not None else None)  # type: ignore[attr-defined]
    if scope is not None:
        bound.scope = scope
        bound.log = scope.log
    return bound


def finish_direct(results: Iterator[T], cache_folder: Path | None) -> Iterator[T]:
    """``results`` passed through; when they end (or are closed), the calls made are published
    to a shared output folder's cache (nothing to do for a local one)."""
    try:
        yield from results
    finally:
        if cache_folder is not None:
            from .cache import publish_calls

            publish_calls(cache_folder)
