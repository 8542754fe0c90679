"""A stopped run stops: one SIGTERM or SIGINT ends it within seconds, a second exits at once.

``kill PID``, ``docker stop`` and Kubernetes send SIGTERM to the main process, Ctrl-C sends
SIGINT, and the web UI's Terminate marks the run CANCELING and signals its run worker (which
forwards SIGINT to the step processes of the multiprocess executor). Dagster turns the signal
into ``DagsterExecutionInterruptedError`` in the step's main thread, and a step's retry policy
retries that like any error: the step ran again and the run carried on. Here:

- :func:`stop_as_failure` wraps every asset body. An interrupt (or any failure once a stop
  was asked) leaves the step after its model calls are closed (the answers received are in
  the model cache), marks the run CANCELING, and fails the step with :class:`StepStopped`
  (a ``dg.Failure(allow_retries=False)``): no step retry, and Dagster ends the run CANCELED,
  which run retries (``dagster/max_retries``) never re-queue. A step that would start in a
  run being stopped fails at once the same way.
- :func:`watch` starts a thread that sees every SIGTERM / SIGINT the process receives
  (``signal.set_wakeup_fd``: the C-level handler writes the signal's number whichever Python
  handler Dagster has in place, even while the main thread is stuck in user code). While a
  run is going on in the process (:func:`running`), the first is the stop; a second, at least
  :data:`SAME_STOP_S` later, exits at once: the run is marked canceled, the signal goes to
  every descendant process (step processes, torch elastic workers, Pipes processes), those
  still alive after :data:`CHILDREN_GRACE_S` are killed, and the process ends with
  ``os._exit(128 + signum)``. Answers reach the model cache as they arrive, so none is lost.
  Signals within :data:`SAME_STOP_S` of the first are that same stop: a terminal's Ctrl-C
  reaches every process of its group, and Dagster forwards it to step processes too.
- A ``dagster asset materialize`` / ``job execute`` / run worker process is running a run
  for its whole life (:func:`watch_dagster_command`); a script exits with ``128 + signum``
  (:func:`exit_code`); ``dreamer materialize`` hands signals to its child
  (:func:`forward_signals`).

A signal that lands between two steps of an in-process run reaches Dagster before any step
body: Dagster may then put the next step up for retry, and that attempt fails at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg

from .errors import error_chain
from .logs import LOGGER

__all__ = [
    "CHILDREN_GRACE_S",
    "SAME_STOP_S",
    "StepStopped",
    "exit_code",
    "forward_signals",
    "keep_sigterm",
    "running",
    "stop_as_failure",
    "stop_signal",
    "watch",
    "watch_dagster_command",
]

#: Signals this close to the first are the same stop (a terminal's Ctrl-C, Dagster's forward).
SAME_STOP_S = 1.0
#: After a second signal: how long descendants get to exit before they are killed.
CHILDREN_GRACE_S = 3.0
#: After a second signal: the most time spent marking runs canceled before exiting.
HOOKS_S = 2.0
#: How long a step waits for the watcher to name the signal behind an interrupt.
_NAMING_S = 0.5
_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: Dagster commands whose process runs a run for its whole life.
_RUN_COMMANDS = {
    ("asset", "materialize"),
    ("job", "execute"),
    ("api", "execute_run"),
    ("api", "execute_step"),
    ("api", "resume_run"),
}


class StepStopped(dg.Failure):
    """A step (and its run) stopped by SIGTERM / SIGINT; never retried. ``signum`` is the signal."""

    def __init__(self, description: str, signum: int):
        super().__init__(description=description, allow_retries=False)
        self.signum = signum


class _Watch:
    """This process's watcher: the stop signal seen, the runs going on, exit hooks."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pid: int | None = None
        self.sockets: tuple[socket.socket, socket.socket] | None = None
        self.running = 0
        self.whole_life = False
        self.signum: int | None = None
        self.first_at = 0.0
        self.noted = threading.Event()
        self.hooks: dict[int, Callable[[], None]] = {}


_WATCH = _Watch()


def _forget_after_fork() -> None:
    """A forked child has its own signals: none seen yet, no watcher thread, and its signals
    must not reach the parent's watcher through the inherited socket."""
    global _WATCH
    inherited, _WATCH = _WATCH.sockets, _Watch()
    if inherited is not None:
        with contextlib.suppress(ValueError, OSError):
            signal.set_wakeup_fd(-1)
        for end in inherited:
            end.close()


os.register_at_fork(after_in_child=_forget_after_fork)


def watch() -> bool:
    """Start this process's signal watcher (once; the main thread only). False where it
    cannot: another thread, or the wakeup fd already in use (an asyncio loop's)."""
    state = _WATCH
    if state.pid == os.getpid():
        return True
    if threading.current_thread() is not threading.main_thread():
        return False
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    try:
        previous = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    except (ValueError, OSError):
        reader.close()
        writer.close()
        return False
    if previous != -1:  # someone else's: leave it to them
        signal.set_wakeup_fd(previous)
        reader.close()
        writer.close()
        return False
    state.pid, state.sockets = os.getpid(), (reader, writer)
    threading.Thread(target=_read, args=(state, reader), name="dreamer-stop-signals", daemon=True).start()
    return True


def watch_dagster_command(argv: list[str] | None = None) -> bool:
    """In a Dagster process that runs a run (``dagster asset materialize``, ``dagster job
    execute``, a run worker, a step process), watch signals for the process's whole life."""
    argv = sys.argv if argv is None else argv
    program = Path(argv[0]).name if argv else ""
    module = Path(argv[0]).parent.name if argv else ""
    if not (program == "dagster" or (program == "__main__.py" and module == "dagster")):
        return False
    if tuple(argv[1:3]) not in _RUN_COMMANDS or not watch():
        return False
    with _WATCH.lock:
        if not _WATCH.whole_life:
            _WATCH.running += 1
            _WATCH.whole_life = True
    return True


@contextlib.contextmanager
def running() -> Iterator[None]:
    """A run (or a step of one) is going on in this process: signals stop it."""
    state = _WATCH
    with state.lock:
        state.running += 1
    try:
        yield
    finally:
        with state.lock:
            state.running -= 1
            if state.running == 0:  # the next run in this process starts afresh
                state.signum = None
                state.noted.clear()


def stop_signal() -> int | None:
    """The signal that asked the run going on in this process to stop, if any."""
    return _WATCH.signum


def exit_code(error: BaseException | None = None) -> int | None:
    """``128 + signum`` when the run was stopped by a signal (``error`` a :class:`StepStopped`,
    or a stop seen by the watcher), else None."""
    for current in error_chain(error):
        if isinstance(current, StepStopped):
            return 128 + current.signum
    signum = stop_signal()
    if signum is None and isinstance(error, (KeyboardInterrupt, dg.DagsterExecutionInterruptedError)):
        signum = signal.SIGINT
    return None if signum is None else 128 + signum


@contextlib.contextmanager
def stop_as_failure(step: Any, context: Any) -> Iterator[None]:
    """Around an asset body: an interrupt, or any failure once a stop was asked, becomes
    :class:`StepStopped` (never retried) and the run is marked CANCELING; a step of a run being
    stopped fails before it starts. A second signal marks the run canceled before exiting."""
    watch()
    with running():
        signum = _stop_before_start(context)
        if signum is not None:
            raise _stopped(step, context, signum, started=False)
        key, state = id(context), _WATCH
        with state.lock:
            state.hooks[key] = lambda: _mark_run(context, canceled=True)
        try:
            yield
        except (KeyboardInterrupt, dg.DagsterExecutionInterruptedError) as error:
            raise _stopped(step, context, _interrupt_signal()) from error
        except Exception as error:
            if isinstance(error, StepStopped) or stop_signal() is None:
                raise
            raise _stopped(step, context, stop_signal() or signal.SIGINT) from error
        finally:
            with state.lock:
                state.hooks.pop(key, None)


@contextlib.contextmanager
def forward_signals(process: Any) -> Iterator[None]:
    """While a child process runs (``dreamer materialize``'s ``dagster asset materialize``):
    SIGTERM / SIGINT go to it, and it decides how to stop (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def forward(signum: int, frame: Any) -> None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signum)

    previous = {signum: signal.signal(signum, forward) for signum in _SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def keep_sigterm() -> Iterator[None]:
    """Around an in-process Dagster run: SIGTERM is not left ignored after it.

    Dagster's run in the main thread copies SIGINT's disposition onto SIGTERM and never
    puts SIGTERM back (``dagster._utils.interrupts.setup_interrupt_handlers``). In a process
    whose SIGINT is ignored (a ``cmd &`` job of a non-interactive shell, ``nohup cmd &``),
    SIGTERM was then ignored for good: ``kill PID`` did nothing, and every child started
    later inherited it (Dagster's own ``tail -F`` of a run in a thread then ignored its
    SIGTERM). An ignored SIGTERM left by the run goes back to what it was before."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        if before is not signal.SIG_IGN and signal.getsignal(signal.SIGTERM) is signal.SIG_IGN:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if before is None else before)


# -- the watcher thread -----------------------------------------------------------------


def _read(state: _Watch, reader: socket.socket) -> None:
    while True:
        try:
            data = reader.recv(64)
        except OSError:
            return
        if not data:
            return
        for signum in data:
            if signum in _SIGNALS:
                _received(state, signum)


def _received(state: _Watch, signum: int) -> None:
    now = time.monotonic()
    with state.lock:
        if state.running == 0:
            return  # no run here: the process's own handlers decide
        if state.signum is None:
            state.signum, state.first_at = signum, now
            state.noted.set()
            first = True
        elif now - state.first_at < SAME_STOP_S:
            return
        else:
            first = False
    name = signal.Signals(signum).name
    if first:
        LOGGER.warning(
            f"{name} received: stopping the run; the answers received are kept in the model cache. "
            "A second SIGTERM or SIGINT exits at once."
        )
    else:
        _force_exit(state, signum, name)


def _force_exit(state: _Watch, signum: int, name: str) -> None:
    """The second signal: mark the runs canceled, stop the descendants, exit."""
    print(
        f"[ dreamer_dagster ] A second {name}: exiting now (the answers received are in the model cache).",
        file=sys.stderr,
        flush=True,
    )
    with state.lock:
        pending = list(state.hooks.values())
    hooks = threading.Thread(target=_run_hooks, args=(pending,), daemon=True)
    hooks.start()
    hooks.join(HOOKS_S)
    _stop_descendants(signum)
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(128 + signum)


def _run_hooks(hooks: list[Callable[[], None]]) -> None:
    for hook in hooks:
        with contextlib.suppress(Exception):
            hook()


def _stop_descendants(signum: int) -> None:
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil comes with accelerate
        return
    try:
        children = psutil.Process().children(recursive=True)
    except psutil.Error:
        return
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.send_signal(signum)
    _, alive = psutil.wait_procs(children, timeout=CHILDREN_GRACE_S)
    for child in alive:
        with contextlib.suppress(psutil.Error):
            child.kill()


# -- the step's side --------------------------------------------------------------------


def _interrupt_signal() -> int:
    """The signal behind an interrupt the step just got (the watcher names it; SIGINT when no
    watcher saw one), now recorded as this process's stop."""
    state = _WATCH
    if state.pid == os.getpid():
        state.noted.wait(_NAMING_S)
    with state.lock:
        if state.signum is None:
            state.signum, state.first_at = signal.SIGINT, time.monotonic()
            state.noted.set()
        return state.signum


def _stop_before_start(context: Any) -> int | None:
    """A stop already asked of this process's run, or of this run (CANCELING) elsewhere."""
    if stop_signal() is not None:
        return stop_signal()
    try:
        run = context.instance.get_run_by_id(context.run_id)
    except Exception:  # noqa: BLE001 - no instance to ask: nothing known
        return None
    if run is not None and run.status in (dg.DagsterRunStatus.CANCELING, dg.DagsterRunStatus.CANCELED):
        return signal.SIGTERM
    return None


def _stopped(step: Any, context: Any, signum: int, started: bool = True) -> StepStopped:
    name = signal.Signals(signum).name
    _mark_run(context, canceled=False, message=f"{name} received: stopping the run.")
    what = (
        f"was stopped by {name}; the answers it received are kept in the model cache"
        if started
        else f"did not start: its run was stopped ({name})"
    )
    return StepStopped(
        f"Step {step.name!r} {what}. The run ends here and is not retried. Fix: materialize it "
        "again to go on; only the calls the model cache does not hold are made.",
        signum,
    )


def _mark_run(context: Any, canceled: bool, message: str | None = None) -> None:
    """Mark the step's run CANCELING (Dagster then ends it CANCELED) or, on a forced exit, CANCELED."""
    try:
        instance, run = context.instance, context.instance.get_run_by_id(context.run_id)
        if run is None or run.is_finished:
            return
        if canceled:
            instance.report_run_canceled(run, message="Exited on a second stop signal.")
        elif run.status != dg.DagsterRunStatus.CANCELING:
            instance.report_run_canceling(run, message=message)
    except Exception as error:  # noqa: BLE001 - stopping goes on without it
        LOGGER.debug(f"Could not mark the run as stopped: {error}")
