"""How many requests an API stream keeps in flight: additive increase, multiplicative decrease.

``max_concurrency`` is a ceiling, not a target a server must bear. The limit
starts at half the ceiling (at least ``SLOW_START``) and doubles each healthy
round up to the ceiling until its first decrease, so a healthy endpoint reaches full speed within a
few round trips and the first rounds measure the endpoint's unloaded latency.
It moves in *rounds*: a round ends when as many answers as the limit have come
back for requests sent since the last change, so the limit changes at most
once per round trip, and answers to requests sent under an older limit never
move it again.

- an overload signal (429, 503/529, a timeout) takes 20 % off the limit at
  once, once per round trip;
- at the end of a round, 20 % comes off when the answers since the last
  decrease are slow: their 90th-percentile latency is over
  ``latency_ceiling`` (half the request timeout, for ``OpenAI``), or (over at
  least ``ROUND_SAMPLES`` answers) their median latency per token is more than
  ``latency_tolerance`` times the baseline: the lowest median of the last
  ``ROUND_SAMPLES`` answers seen at the end of recent rounds (of fewer in the
  slow start, whose first round is the least loaded one). Medians, not low
  percentiles: a latency with a long tail of its own (real APIs have one) is
  no sign of load, a median that doubles is. So a self-hosted server that
  never answers 429 but queues is backed off before its queue reaches the
  client's timeout. Answers faster than ``min_latency`` seconds never count as
  slow;
- any other round grows the limit by one (doubles it in the slow start), up to
  ``max_concurrency``.

Latency is divided by the answer's tokens (plus a fixed allowance for the
time to the first token) so that long and short answers compare: a server's
load shows in its time per token, not in how much a prompt asked for.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

__all__ = ["AdaptiveConcurrency", "Ticket"]

#: Answers since the last decrease needed before latency can decide anything.
MIN_SAMPLES = 6
#: Answers a round's median latency is taken over (at least), and how many recent
#: round medians the baseline (their lowest) is taken from.
ROUND_SAMPLES = 16
BASELINE_ROUNDS = 32
#: Tokens' worth of fixed time per request (the time to the first token).
TOKENS_OFFSET = 16
#: The fewest requests in flight a stream starts with (it starts at half its ceiling).
SLOW_START = 4
#: What a decrease keeps of the limit.
DECREASE_FACTOR = 0.8


@dataclass(frozen=True)
class Ticket:
    """Stamped on a request when it is sent: the limit's epoch and round at the time."""

    epoch: int
    round: int


class AdaptiveConcurrency:
    """The in-flight limit of one stream, between 1 and ``maximum`` (see the module doc).

    Not thread-safe: one event loop owns it. ``enabled=False`` keeps the limit at
    ``maximum`` (what a plain semaphore does).
    """

    def __init__(
        self,
        maximum: int,
        enabled: bool = True,
        latency_tolerance: float = 2.0,
        min_latency: float = 0.05,
        latency_ceiling: float | None = None,
    ):
        self.maximum = max(1, int(maximum))
        self.enabled = enabled
        self.latency_ceiling = latency_ceiling
        self.latency_tolerance = latency_tolerance
        self.min_latency = min_latency
        # Slow start: from a few in flight, doubling each healthy round until the first
        # decrease, so the first rounds measure the endpoint's unloaded latency.
        start = min(self.maximum, max(SLOW_START, self.maximum // 2))
        self.limit = float(start if enabled else self.maximum)
        self._slow_start = True
        self.lowest = self.maximum
        self.decreases = 0
        self._epoch = 0  # moves on each decrease: signals from requests sent before it are stale
        self._round = 0  # moves on each change
        self._round_answers = 0
        self._since_decrease: deque[tuple[float, float]] = deque(maxlen=64)  # (per token, latency)
        self._recent: deque[float] = deque(maxlen=ROUND_SAMPLES)  # per token, any epoch
        self._round_medians: deque[float] = deque(maxlen=BASELINE_ROUNDS)

    @property
    def allowed(self) -> int:
        """Requests that may be in flight now."""
        return max(1, int(self.limit))

    def ticket(self) -> Ticket:
        return Ticket(self._epoch, self._round)

    def answered(self, ticket: Ticket, latency: float, completion_tokens: int) -> str | None:
        """A good answer after ``latency`` seconds; returns what changed, if anything."""
        per_token = latency / (max(0, completion_tokens) + TOKENS_OFFSET)
        self._recent.append(per_token)
        if not self.enabled:
            return None
        if ticket.epoch == self._epoch:
            self._since_decrease.append((per_token, latency))
        if ticket.round != self._round:
            return None
        self._round_answers += 1
        if self._round_answers < self.allowed:
            return None
        if len(self._recent) >= (MIN_SAMPLES if self._slow_start else ROUND_SAMPLES):
            self._round_medians.append(_median(list(self._recent)))
        window = list(self._since_decrease)[-max(self.allowed, ROUND_SAMPLES) :]
        if len(window) >= MIN_SAMPLES:
            slow = self._slow([sample[0] for sample in window], [sample[1] for sample in window])
            if slow is not None:
                return self._decrease(slow)
        self._new_round()
        if self.limit < self.maximum:
            before = self.allowed
            grown = self.limit * 2 if self._slow_start else self.limit + 1
            self.limit = min(float(self.maximum), grown)
            if self.allowed != before:
                return f"concurrency limit {before} -> {self.allowed} of {self.maximum} (answers are healthy)"
        return None

    def overloaded(self, ticket: Ticket, cause: str) -> str | None:
        """An overload signal (429, 503, a timeout); returns what changed, if anything."""
        if not self.enabled or ticket.epoch != self._epoch:
            return None
        return self._decrease(cause)

    def _slow(self, per_token: list[float], latencies: list[float]) -> str | None:
        """Why these answers are too slow, or None."""
        if self.latency_ceiling is not None:
            high = _quantile(latencies, 0.9)
            if high > self.latency_ceiling:
                return f"90th-percentile latency {high:.2f}s, over {self.latency_ceiling:.2f}s"
        latency = _median(latencies)
        baseline = min(self._round_medians, default=0.0)
        ratio = _median(per_token) / baseline if baseline > 0 else 0.0
        if len(per_token) >= ROUND_SAMPLES and latency >= self.min_latency and ratio > self.latency_tolerance:
            return f"median latency {latency:.2f}s, {ratio:.1f}x the baseline"
        return None

    def _decrease(self, reason: str) -> str | None:
        before = self.allowed
        self.limit = max(1.0, self.limit * DECREASE_FACTOR)
        self._slow_start = False
        self._epoch += 1
        self._since_decrease.clear()
        self._new_round()
        self.decreases += 1
        self.lowest = min(self.lowest, self.allowed)
        if self.allowed == before:
            return None
        return f"concurrency limit {before} -> {self.allowed} of {self.maximum} ({reason})"

    def _new_round(self) -> None:
        self._round += 1
        self._round_answers = 0


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _quantile(values: deque[float] | list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]
