"""Errors that decide whether a failed step is worth retrying, and the errors that
say what went wrong where.

A step that fails with an error a retry cannot fix (a request the provider
rejected with 400/401/403/404, a bad declaration, a budget that is spent)
raises :class:`NonRetryableError`, or wraps one (``raise ... from error``).
The asset body turns such a failure into ``dg.Failure(allow_retries=False)``,
so Dagster's retry policy never re-runs it; every other failure (a burst of
500s, a dropped connection) is left to the retry policy, and the retried run
pays only for the calls the model cache does not hold.

The named errors below are all non-retryable: a user function that raises, an
output folder that cannot be written, a model cache file that cannot be read,
and a step whose rows failed past its ``max_failed_rows`` give the same result
on a retry. Each message names the step (or the file) and the fix.
"""

from __future__ import annotations

__all__ = [
    "is_retryable_status",
    "BudgetExceededError",
    "CacheFileError",
    "DataFileError",
    "NonRetryableError",
    "OutputFolderError",
    "OutputNotAvailableError",
    "RequestRejectedError",
    "RowFailureError",
    "StepOutputError",
    "StepOutputTypeError",
    "UserCodeError",
    "is_retryable",
    "is_transient",
]


class NonRetryableError(RuntimeError):
    """A failure that running the step again cannot fix; the message says what to change."""

    retryable = False


class UserCodeError(NonRetryableError):
    """A function the user passed (``post_process``, ``filter_func``, a ``map`` function,
    a reward function, a data generator) raised; the message names the step, the
    argument and the row, and the original error is its ``__cause__``."""


class DataFileError(NonRetryableError):
    """A data source's file is missing, unreadable, or changed since it was declared."""


class OutputFolderError(NonRetryableError):
    """The output folder cannot be written (read-only, locked, full, or a file)."""


class CacheFileError(NonRetryableError):
    """A model cache file that SQLite cannot use (damaged, not a database, newer schema)."""


class RowFailureError(NonRetryableError):
    """More of a step's rows failed than its ``max_failed_rows`` allows, or every row did."""


class RequestRejectedError(NonRetryableError):
    """A provider refused a request (400/401/403/404/422...): sending it again gets the same answer.

    The message names the model, the URL where it is not the provider's own,
    the HTTP status and the provider's message; ``status`` holds the status.
    """

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class BudgetExceededError(NonRetryableError):
    """A step's ``budget_usd`` is (or would be) spent; answered calls stay in the model cache."""


class StepOutputError(NonRetryableError):
    """DataDreamer's error for a step whose output cannot be made or read: rows that do
    not match the registered outputs, or an output asked for before there is one."""


class StepOutputTypeError(TypeError, StepOutputError):
    """DataDreamer's error for output values Arrow cannot store together (a column
    mixing types); the message names the step and the column."""


class OutputNotAvailableError(StepOutputError, TypeError):
    """A step's data was asked for while the file is being loaded as Dagster definitions,
    where nothing runs; the message names the step and says what works instead."""


def is_retryable_status(status: int | None) -> bool:
    """Whether a failure with this HTTP status (None: no response at all) is worth retrying:
    408, 409, 429 and any 5xx. Any other 4xx gets the same answer on every attempt."""
    return status is None or status in (408, 409, 429) or status >= 500


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


#: Packages whose errors are about reaching a model (a refused connection, a 5xx, a 429 that
#: outlasted the client's own retries): a later attempt can succeed.
_TRANSIENT_PACKAGES = frozenset(
    {"openai", "anthropic", "httpx", "httpcore", "aiohttp", "requests", "urllib3"}
)
#: OS errors that say something about the files, which a retry finds the same.
_LASTING_OS_ERRORS = (
    FileNotFoundError,
    FileExistsError,
    PermissionError,
    IsADirectoryError,
    NotADirectoryError,
)


def is_transient(error: BaseException) -> bool:
    """True when ``error``'s chain holds an error a later attempt may not meet: a network
    or provider error, a timeout, an OS error other than a missing or forbidden file.
    A step that fails with anything else (a bad input, a bug in a user's function) would
    fail the same way again, so the asset body does not retry it."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (ConnectionError, TimeoutError)):
            return True
        if isinstance(current, OSError) and not isinstance(current, _LASTING_OS_ERRORS):
            return True
        if type(current).__module__.split(".")[0] in _TRANSIENT_PACKAGES:
            return True
        status = getattr(current, "status_code", None)
        if isinstance(status, int) and is_retryable_status(status):
            return True  # an HTTP answer that a later attempt may not get (any client's error)
        current = current.__cause__ or current.__context__
    return False
