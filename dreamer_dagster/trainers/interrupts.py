"""A trainer stopped by SIGTERM / SIGINT (Dagster's run termination) saves a checkpoint first.

Dagster turns a run termination into SIGINT in the step's process and raises
there at once, which would drop the steps trained since the last checkpoint.
While ``trainer.train()`` runs, :func:`checkpoint_on_interrupt` holds the
signal instead (main thread only; the handler it replaces is kept): the
callback it adds asks the Hugging Face ``Trainer`` to save a checkpoint and
stop at the end of the current optimizer step. When ``train()`` returns, the
signal goes to the handler it was meant for, so the step fails as terminated,
with a checkpoint in ``_checkpoints`` that the next run resumes from. A
second signal does not wait for the step to end.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["checkpoint_on_interrupt"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Held:
    """The signal received while training, if any."""

    signum: int | None = None


@contextmanager
def checkpoint_on_interrupt(trainer: Any, log: Callable[[str], None] | None = None) -> Iterator[None]:
    """Around ``trainer.train()``: on SIGINT / SIGTERM, save a checkpoint, stop, then re-deliver it."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers belong to the main thread: nothing to hold elsewhere
        return
    held = _Held()
    originals = {signum: signal.getsignal(signum) for signum in _SIGNALS}

    def hold(signum: int, frame: Any) -> None:
        if held.signum is not None:
            _deliver(originals, signum, frame)  # a second signal: stop now
            return
        held.signum = signum

    callback = _save_and_stop(held, log)
    trainer.add_callback(callback)
    for signum in _SIGNALS:
        signal.signal(signum, hold)
    try:
        yield
    finally:
        for signum, handler in originals.items():
            signal.signal(signum, handler)
        trainer.remove_callback(callback)
    if held.signum is not None:
        _deliver(originals, held.signum, None)


def _deliver(originals: dict, signum: int, frame: Any) -> None:
    """Hand ``signum`` to the handler that was in place before training."""
    handler = originals[signum]
    if callable(handler):
        handler(signum, frame)
    elif handler == signal.SIG_DFL:
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def _save_and_stop(held: _Held, log: Callable[[str], None] | None) -> Any:
    from transformers import TrainerCallback

    class SaveAndStopOnInterrupt(TrainerCallback):
        """At the end of the step in which a signal arrived: save a checkpoint, stop training."""

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if held.signum is not None:
                control.should_save = True
                control.should_training_stop = True
                if log is not None:
                    log(
                        f"{signal.Signals(held.signum).name} received: saving a checkpoint at step "
                        f"{state.global_step} before stopping."
                    )
            return control

    return SaveAndStopOnInterrupt()
