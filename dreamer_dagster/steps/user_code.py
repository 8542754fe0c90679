"""Calling the functions a user passes to a step, so that their errors say where.

``post_process``, ``filter_func``, the functions of ``map`` / ``filter``,
reward functions and data generators are user code. When one raises, the
error is re-raised as :class:`~dreamer_dagster.errors.UserCodeError` naming
the step, the argument and the row index, with the original error (and its
traceback) kept as ``__cause__``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ..errors import UserCodeError
from .partition_key import bind_partition_key

if TYPE_CHECKING:
    from .step import Step

__all__ = ["call_user", "user_code_error", "user_rows", "with_row_index"]


def user_code_error(
    step: Step | tuple[str, str], argument: str, row: int | str | None, error: BaseException
) -> UserCodeError:
    """The error for ``error`` raised by ``step``'s ``argument`` at ``row``; ``step`` is a
    step or its ``(name, type name)`` (in a training worker that holds no step)."""
    name, kind = step if isinstance(step, tuple) else (step.name, type(step).__name__)
    at = "" if row is None else f" at row {row}"
    return UserCodeError(
        f"Step {name!r} ({kind}), argument {argument!r}: the function raised{at}: "
        f"{type(error).__name__}: {error}. Fix the function (its traceback is above); answers "
        "already received are in the model cache, so the re-run pays only for what was never answered."
    )


def call_user(step: Step, argument: str, row: int | str | None, function: Callable, *args: Any) -> Any:
    """``function(*args)`` (with ``partition_key=`` when it takes it and a partition runs, see
    partition_key.py); an error it raises names the step, the argument and the row."""
    function = bind_partition_key(function)
    try:
        return function(*args)
    except UserCodeError:
        raise
    except Exception as error:
        raise user_code_error(step, argument, row, error) from error


def user_rows(step: Step, argument: str, rows: Iterable[Any]) -> Iterator[Any]:
    """The items of a user's iterable (a data generator); an error names the row it was making."""
    iterator = iter(rows)
    index = 0
    while True:
        try:
            item = next(iterator)
        except StopIteration:
            return
        except UserCodeError:
            raise
        except Exception as error:
            raise user_code_error(step, argument, index, error) from error
        yield item
        index += 1


def with_row_index(
    step: Step, argument: str, function: Callable, batched: bool, pass_indices: bool
) -> Callable:
    """``function`` for ``datasets.Dataset.map`` / ``filter`` called with ``with_indices=True``:
    the index (a list of indices when ``batched``) is passed on only if the user asked
    for it, and an error names the row (the batch's first row when batched). The partition
    key (if any) is bound now, so worker processes of ``num_proc`` get it too."""
    function = bind_partition_key(function)

    def called(*args: Any) -> Any:
        *values, indices = args
        row = (indices[0] if indices else None) if batched else indices
        if pass_indices:
            values.append(indices)
        return call_user(step, argument, row, function, *values)

    return called
