"""Errors that decide whether a failed step is worth retrying.

A step that fails with an error a retry cannot fix (a request the provider
rejected with 400/401/403/404, a bad declaration, a budget that is spent)
raises :class:`NonRetryableError`, or wraps one (``raise ... from error``).
The asset body turns such a failure into ``dg.Failure(allow_retries=False)``,
so Dagster's retry policy never re-runs it; every other failure (a burst of
500s, a dropped connection) is left to the retry policy, and the retried run
pays only for the calls the model cache does not hold.
"""

from __future__ import annotations

__all__ = ["NonRetryableError", "is_retryable"]


class NonRetryableError(RuntimeError):
    """A failure that running the step again cannot fix; the message says what to change."""

    retryable = False


def is_retryable(error: BaseException) -> bool:
    """False when ``error`` or any error in its chain (``__cause__`` / ``__context__``)
    says it is not retryable (``retryable = False``)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if getattr(current, "retryable", True) is False:
            return False
        current = current.__cause__ or current.__context__
    return True
