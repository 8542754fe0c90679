"""The row-failure policy of prompt steps: ``max_failed_rows=`` (a count or a share).

A row fails when its generation is None (it did not validate against
``response_format``, or the model refused to answer) or when ``post_process``
raised on it. A failed row keeps its place in the output with ``None`` in its
generation column, so the output lines up with the inputs (filter steps drop
it, rank steps give it no score); ``dreamer/failed_rows`` counts them.

- ``max_failed_rows=None`` (the default): rows that failed validation or were
  refused are kept as None without a limit; a ``post_process`` error fails the
  step at once (naming the row).
- ``max_failed_rows=k`` (an int >= 0) or ``=share`` (a float in [0, 1)): every
  kind of failed row is tolerated up to ``k`` rows, or ``share`` of the rows;
  one more fails the step at once with :class:`~dreamer_dagster.errors.RowFailureError`.

Whatever the setting, a step whose every row failed fails at the end.
Answers already received stay in the model cache either way.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ..errors import RowFailureError
from .user_code import user_code_error

if TYPE_CHECKING:
    from .step import Step

__all__ = ["FAILED_ROWS", "RowFailures", "check_max_failed_rows", "is_failed"]

#: The counter in ``context.stats`` (``dreamer/failed_rows`` in the metadata).
FAILED_ROWS = "failed_rows"


def check_max_failed_rows(value: Any) -> str | None:
    """What is wrong with a ``max_failed_rows`` value, or None when it is fine."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"must be None, a number of rows (int >= 0) or a share of the rows (a float in [0, 1)), got {value!r}."
    if isinstance(value, int) and value < 0:
        return f"a number of rows must be >= 0, got {value}."
    if isinstance(value, float) and not 0.0 <= value < 1.0:
        return (
            f"a share of the rows must be in [0, 1), got {value}. Fix: pass 0.1 for 10%, or an int "
            "for a number of rows."
        )
    return None


def is_failed(generation: Any) -> bool:
    """Whether a generation stands for a failed row (None, or a list holding None)."""
    return generation is None or (isinstance(generation, list) and any(item is None for item in generation))


class RowFailures:
    """Counts one run's failed rows and fails the step past its ``max_failed_rows``."""

    def __init__(self, step: Step, limit: int | float | None, total: int | None, stats: Any):
        self.step = step
        self.limit = limit
        self.total = total
        self.stats = stats
        self.count = 0
        self.kinds: dict[str, int] = {}
        self.first: tuple[int, str] | None = None
        stats[FAILED_ROWS] += 0

    @property
    def allowed(self) -> int | None:
        """How many rows may fail (None: no limit on validation failures and refusals)."""
        if self.limit is None:
            return None
        if isinstance(self.limit, float):
            if self.total is None:
                return None  # checked at the end, against the rows seen
            return math.floor(self.limit * self.total)
        return int(self.limit)

    @property
    def absorbs_errors(self) -> bool:
        """Whether a ``post_process`` error counts as a failed row (else it fails the step)."""
        return self.limit is not None

    def post_process_error(self, row: int, error: Exception) -> None:
        """``post_process`` raised on ``row``: a failed row, or the step's failure."""
        if not self.absorbs_errors:
            raise user_code_error(self.step, "post_process", row, error) from error
        self.add(row, "post_process raised", f"{type(error).__name__}: {error}")

    def add(self, row: int, kind: str, detail: str = "") -> None:
        self.count += 1
        self.stats[FAILED_ROWS] += 1
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        if self.first is None:
            self.first = (row, f"{kind}" + (f" ({detail})" if detail else ""))
        allowed = self.allowed
        if allowed is not None and self.count > allowed:
            raise self._error(f"more than max_failed_rows={self.limit!r} allows ({allowed} rows)")

    def finish(self, rows: int) -> None:
        """At the end of the run: every row failed, or past a share of the rows seen."""
        if rows and self.count == rows:
            raise self._error("every row failed")
        if isinstance(self.limit, float) and self.total is None:
            allowed = math.floor(self.limit * rows)
            if self.count > allowed:
                raise self._error(f"more than max_failed_rows={self.limit!r} allows ({allowed} rows)")

    def _error(self, what: str) -> RowFailureError:
        kinds = ", ".join(f"{count} {kind}" for kind, count in self.kinds.items())
        of = f" of {self.total}" if self.total is not None else ""
        first = f" The first was row {self.first[0]}: {self.first[1]}." if self.first else ""
        return RowFailureError(
            f"Step {self.step.name!r} ({type(self.step).__name__}): {self.count}{of} rows failed "
            f"({kinds}), {what}.{first} The answers received are in the model cache. Fix: look at "
            "the failing rows (a response_format the model cannot follow, a post_process that "
            "raises), or raise max_failed_rows to keep them as None."
        )
