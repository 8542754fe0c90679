"""What one step's run offers the models it binds: its log, its budget, and a safe ending.

A model never knows which step it serves (see :mod:`~dreamer_dagster.model`);
the run context hands each bound model a :class:`CallScope` instead. Through it

- a model logs to the step's run log, at a bounded rate for repeated events
  (retries, concurrency changes);
- the step's ``budget_usd`` is compared with what the step has spent so far
  (``stats["estimated_cost_usd"]``, counted from provider-reported usage);
- ``estimating`` puts models in estimate-only mode: prompts are looked up in
  the model cache and counted, never sent (see :mod:`~dreamer_dagster.cost`);
- every generation a model starts is tracked, and :meth:`CallScope.close` (run
  by the asset body whatever ends the step) closes those an error left open,
  so each commits the answers it received to the model cache.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections import Counter
from typing import Any

from .errors import BudgetExceededError

__all__ = ["LOG_INTERVAL_S", "CallScope"]

#: The most often a model run logs repeated events (retries, concurrency changes).
LOG_INTERVAL_S = 15.0

_logger = logging.getLogger("dreamer_dagster")


class CallScope:
    """One step run's view for its models: ``info``/``warning``, ``throttled``,
    ``over_budget``, ``estimating``, ``track``/``close``."""

    def __init__(
        self,
        step_name: str,
        stats: Counter,
        log: Any = None,
        budget_usd: float | None = None,
        estimating: bool = False,
    ):
        self.step_name = step_name
        self.stats = stats
        self.log = log
        self.budget_usd = budget_usd
        self.estimating = estimating
        #: Models whose calls had no known price (their cost is not counted).
        self.unpriced: list[str] = []
        #: What an estimate assumed (shown with it).
        self.notes: list[str] = []
        self._open: weakref.WeakSet = weakref.WeakSet()
        self._last_logged: dict[Any, float] = {}

    # -- the run log --------------------------------------------------------------------

    def info(self, message: str) -> None:
        (self.log or _logger).info(message)

    def warning(self, message: str) -> None:
        (self.log or _logger).warning(message)

    def throttled(self, key: Any, interval: float = LOG_INTERVAL_S) -> bool:
        """True the first time for ``key``, then at most once per ``interval`` seconds."""
        now = time.monotonic()
        last = self._last_logged.get(key)
        if last is not None and now - last < interval:
            return False
        self._last_logged[key] = now
        return True

    # -- money --------------------------------------------------------------------------

    @property
    def spent_usd(self) -> float:
        return float(self.stats.get("estimated_cost_usd", 0.0))

    def over_budget(self) -> bool:
        return self.budget_usd is not None and self.spent_usd >= self.budget_usd

    def budget_error(self, model: str, calls: int) -> BudgetExceededError:
        return BudgetExceededError(
            f"Step {self.step_name!r} spent ${self.spent_usd:.4f} of its budget_usd={self.budget_usd} "
            f"({calls} model calls to {model}), so no more prompts were sent. The answered calls "
            "are in the model cache: a re-run pays only for the prompts not yet answered. "
            "Fix: raise budget_usd (or set it to None), then materialize the step again."
        )

    def note_unpriced(self, model: str) -> None:
        """A model without a known price made (or would make) calls: cost is not counted."""
        if model in self.unpriced:
            return
        self.unpriced.append(model)
        if self.budget_usd is not None and not self.estimating:
            self.warning(
                f"Step {self.step_name!r}: budget_usd={self.budget_usd} cannot be checked for {model}: "
                "its price is unknown, so its calls are not counted against the budget."
            )

    # -- ending -------------------------------------------------------------------------

    def track(self, generation: Any) -> Any:
        """Remember a model's generation (a generator) so :meth:`close` can end it."""
        self._open.add(generation)
        return generation

    def close(self) -> None:
        """Close every tracked generation still open: each commits what it received."""
        errors = []
        for generation in list(self._open):
            try:
                generation.close()
            except Exception as error:  # noqa: BLE001 - close them all, then report
                errors.append(error)
        self._open.clear()
        if errors:
            raise errors[0]
