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
a finished step whose data changed after it was written, and a step whose rows
failed past its ``max_failed_rows`` give the same result on a retry. Each message
names the step (or the file) and the fix.
"""

from __future__ import annotations

from collections.abc import Iterator

__all__ = [
    "error_chain",
    "is_retryable_status",
    "BudgetExceededError",
    "CacheFileError",
    "DataFileError",
    "EndpointUnreachableError",
    "IntegrityError",
    "NonRetryableError",
    "OutputFolderError",
    "OutputNotAvailableError",
    "RequestConfigurationError",
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


class IntegrityError(NonRetryableError):
    """A finished step's ``_dataset`` / ``_model`` is not what its ``step.json`` recorded at
    commit (a file missing, resized, changed or added); the message names the step folder,
    each difference and the fix. Never reused, never retried."""


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


class EndpointUnreachableError(NonRetryableError):
    """An API endpoint refused the connection, has a name DNS does not know, or failed the
    TLS handshake before any request of the run succeeded: its configuration (``base_url``)
    is wrong, which a retry cannot fix. The message names the model, the URL (without
    secrets) and the fix."""


class RequestConfigurationError(NonRetryableError):
    """A request the client could not even make (a malformed ``base_url`` or header): the
    message names the model and the fix; a retry cannot fix it."""


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
    return all(getattr(current, "retryable", True) is not False for current in error_chain(error))


def error_chain(error: BaseException | None) -> Iterator[BaseException]:
    """``error``, then its causes (``__cause__``, else ``__context__``), each once: a chain
    that loops back on itself ends where it would repeat."""
    seen: set[int] = set()
    current = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


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
    for current in error_chain(error):
        if isinstance(current, (ConnectionError, TimeoutError)):
            return True
        if isinstance(current, OSError) and not isinstance(current, _LASTING_OS_ERRORS):
            return True
        if type(current).__module__.split(".")[0] in _TRANSIENT_PACKAGES:
            return True
        status = getattr(current, "status_code", None)
        if isinstance(status, int) and is_retryable_status(status):
            return True  # an HTTP answer that a later attempt may not get (any client's error)
    return False
