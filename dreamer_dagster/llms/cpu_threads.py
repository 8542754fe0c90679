"""torch's intra-op thread count for local generation on the CPU, chosen by measurement.

torch starts one intra-op thread per core. When the cores are shared (the multiprocess
executor running several local-model steps, other work on the machine), every small
operator of a decoding step waits at a barrier for all of its threads, and a thread the
kernel has descheduled stalls the rest: on two busy cores one thread decoded SmolLM2
three to four times faster than two. :class:`ThreadTuner` watches each decoding step
(one forward pass of one new token per row): when the process gets clearly less CPU time
than its threads could use, it tries half the threads for one step and keeps them if that
step was faster; at fewer threads it tries more again now and then (less often after
each try that loses), so a machine that quiets down gets its cores back. The thread
count only splits work: greedy answers are the same tokens at any count. Not used where
``OMP_NUM_THREADS`` is set (the user chose) or off the CPU.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["ThreadTuner", "tuned_threads"]

#: Below this share of its threads' possible CPU time over recent steps, a step is contended.
CONTENDED_SHARE = 0.8
#: A trial keeps its thread count when its step took at most this fraction of the usual step.
FASTER = 0.85
FIRST_RETRY = 8
LONGEST_RETRY = 512


class ThreadTuner:
    """The thread count for the next decoding step, from the steps measured so far.

    ``ceiling`` is the most threads to use (torch's count when tuning began);
    ``set_threads`` applies a count. ``before_step`` / ``after_step`` wrap one step,
    with the wall and process CPU seconds it took.
    """

    def __init__(self, ceiling: int, set_threads: Callable[[int], None]):
        self.ceiling = max(1, ceiling)
        self.current = self.ceiling
        self.set_threads = set_threads
        self.recent: deque[tuple[float, float]] = deque(maxlen=3)  # (wall, cpu) at ``current``
        self.trial: int | None = None
        self.retry = {"down": FIRST_RETRY, "up": FIRST_RETRY}
        self.since_trial = 0

    def before_step(self) -> int:
        """The thread count for the next step (already applied)."""
        self.trial = self._next_trial()
        threads = self.trial if self.trial is not None else self.current
        self.set_threads(threads)
        return threads

    def after_step(self, wall: float, cpu: float) -> None:
        self.since_trial += 1
        if self.trial is None:
            self.recent.append((wall, cpu))
            return
        usual = statistics.median(w for w, _ in self.recent)
        direction = "down" if self.trial < self.current else "up"
        if wall <= FASTER * usual:
            self.current = self.trial
            self.recent.clear()
            self.retry = {"down": FIRST_RETRY, "up": FIRST_RETRY}
        else:
            self.retry[direction] = min(LONGEST_RETRY, 2 * self.retry[direction])
        self.trial = None
        self.since_trial = 0

    def _next_trial(self) -> int | None:
        if len(self.recent) < self.recent.maxlen:
            return None
        if self.current < self.ceiling and self.since_trial >= self.retry["up"]:
            return min(self.ceiling, 2 * self.current)
        if self.current > 1 and self.since_trial >= self.retry["down"]:
            share = sum(cpu for _, cpu in self.recent) / (sum(wall for wall, _ in self.recent) * self.current)
            if share < CONTENDED_SHARE:
                return max(1, self.current // 2)
        return None


_TUNERS: dict[int, ThreadTuner] = {}  # one a process and ceiling: what was learnt carries to the next batch
_LOCK = threading.Lock()


@contextmanager
def tuned_threads(model: Any) -> Iterator[None]:
    """Tune torch's thread count over the decoding steps of ``model`` inside the block
    (CPU models only); torch's own count is back afterwards."""
    import torch

    device = getattr(model, "device", None)
    ceiling = torch.get_num_threads()
    if getattr(device, "type", None) != "cpu" or ceiling < 2 or "OMP_NUM_THREADS" in os.environ:
        yield
        return
    if not _LOCK.acquire(blocking=False):  # another thread is generating: leave the count alone
        yield
        return
    tuner = _TUNERS.setdefault(ceiling, ThreadTuner(ceiling, torch.set_num_threads))
    module = model.get_base_model() if hasattr(model, "get_base_model") else model
    started: list[tuple[float, float] | None] = [None]

    def before(_module: Any, args: tuple, kwargs: dict) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is None or getattr(ids, "ndim", 0) != 2 or ids.shape[1] != 1:
            torch.set_num_threads(tuner.current)  # a prefill: not a comparable step
            started[0] = None
            return
        tuner.before_step()
        started[0] = (time.perf_counter(), time.process_time())

    def after(_module: Any, _args: tuple, _kwargs: dict, _output: Any) -> None:
        if started[0] is not None:
            wall, cpu = started[0]
            tuner.after_step(time.perf_counter() - wall, time.process_time() - cpu)
            started[0] = None

    handles = [
        module.register_forward_pre_hook(before, with_kwargs=True),
        module.register_forward_hook(after, with_kwargs=True),
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        torch.set_num_threads(ceiling)
        _LOCK.release()
