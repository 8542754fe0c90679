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

Two batches at once: with more than one batch waiting, a CPU model generates
:data:`LANES` batches side by side (:func:`cpu_lanes`), each thread on its share of
torch's threads (:func:`lane_threads`). One batch leaves a core idle whenever it runs
Python or a small single-threaded operator between matrix products, and waits at a
barrier after every multi-threaded one; two batches fill those gaps. On two cores,
``bench/cpu_lanes.py`` (64 SmolLM2 prompts in batches of 32) measured 1.06-1.14x one
batch at a time, and 1.42x with both cores busy with other work; the same tokens. The
tuner stays out of a lane's way.
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

__all__ = ["LANES", "ThreadTuner", "cpu_lanes", "lane_threads", "tuned_threads"]

#: Below this share of its threads' possible CPU time over recent steps, a step is contended.
CONTENDED_SHARE = 0.8
#: A trial keeps its thread count when its step took at most this fraction of the usual step.
FASTER = 0.85
FIRST_RETRY = 8
LONGEST_RETRY = 512
#: Batches a CPU model generates at once when more than one is waiting.
LANES = 2


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
_IN_LANE = threading.local()


def cpu_lanes(model: Any) -> int:
    """How many batches ``model`` generates at once: :data:`LANES` for a model on the CPU
    with at least two of torch's threads to share, else 1 (a GPU, one thread, or
    ``OMP_NUM_THREADS`` set: the user chose the threads)."""
    return LANES if _threads_to_share(model) else 1


def _threads_to_share(model: Any) -> int:
    """torch's thread count in this thread, where this module may divide it for ``model``
    (a CPU model, two threads or more, ``OMP_NUM_THREADS`` unset); else 0."""
    import torch

    device = getattr(model, "device", None)
    if getattr(device, "type", None) != "cpu" or "OMP_NUM_THREADS" in os.environ:
        return 0
    count = torch.get_num_threads()
    return count if count >= 2 else 0


class lane_threads:  # noqa: N801 - used as a context manager, like the functions beside it
    """A context for one of ``lanes`` threads generating at once: inside it, the thread's
    torch threads are its share of the count the creating thread had, and
    :func:`tuned_threads` leaves them alone; on leaving, that count is back. Made in the
    thread that starts the lanes and entered in each lane: torch keeps its thread count
    per calling thread (and gives a new thread the last count set), so lanes do not
    disturb each other and a lane cannot leave a new thread a lane's share."""

    def __init__(self, lanes: int):
        import torch

        self.count = torch.get_num_threads()
        self.share = max(1, self.count // max(1, lanes))

    def __enter__(self) -> None:
        import torch

        torch.set_num_threads(self.share)
        _IN_LANE.active = True

    def __exit__(self, *_exc: object) -> None:
        import torch

        _IN_LANE.active = False
        torch.set_num_threads(self.count)


@contextmanager
def tuned_threads(model: Any) -> Iterator[None]:
    """Tune torch's thread count over the decoding steps of ``model`` inside the block
    (CPU models only); torch's own count is back afterwards."""
    import torch

    ceiling = _threads_to_share(model)
    if not ceiling or getattr(_IN_LANE, "active", False):  # off, or lane_threads chose the share
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
