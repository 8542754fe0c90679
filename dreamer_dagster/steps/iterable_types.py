"""DataDreamer's type rules for an iterable output (``run()`` returned ``LazyRows`` /
``LazyRowBatches``, not saved).

DataDreamer computes such rows as they are read: it infers the columns' features from the
first row, casts each later row to them (``["a"]`` then ``[5]`` reads ``["5"]``), and a row
that cannot be cast (``[5]`` then ``["a"]``), or a column whose value changes type (``5``
then ``"a"``), raises ``StepOutputTypeError`` *when the rows are read*, not when the step
is set. Here the rows are written when the step runs, so the same rules are applied while
writing: the rows before the bad one are kept, the error is recorded in step.json
(``iterable.type_error``), and reading the output (``step.output``, a downstream step)
gives those rows, then raises the error, as DataDreamer's reads do. Rows whose shape is
wrong (``StepOutputError``: other keys, too few outputs) still fail the run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..errors import StepOutputTypeError

__all__ = ["TYPE_ERROR_RECORD", "DeferredTypeError", "raise_recorded"]

#: The key of ``step.json["iterable"]`` holding the deferred error's message.
TYPE_ERROR_RECORD = "type_error"


class DeferredTypeError:
    """Rows cast to their first row's features; the first type error stops them and is kept
    in :attr:`message` (the run goes on and records it) instead of failing the run."""

    def __init__(self, step_name: str):
        self.step_name = step_name
        self.message: str | None = None

    def rows(self, rows: Iterator[dict]) -> Iterator[dict]:
        """``rows`` cast as DataDreamer casts an iterable output's rows, until one fails."""
        features = None
        try:
            for row in rows:
                if features is None:
                    features = _features_of(row)
                try:
                    cast = _cast(features, row)
                except (TypeError, ValueError) as error:  # only the cast: the user's errors propagate
                    raise StepOutputTypeError(
                        f"Step {self.step_name!r}: a row does not match the types of its first row "
                        f"({type(error).__name__}: {error}). Fix: give each output column values of "
                        "one type (or step.pickle(value) them)."
                    ) from None
                yield cast
        except StepOutputTypeError as error:  # a row of other keys fails the run (StepOutputError)
            self.message = str(error)

    def record(self) -> dict[str, str]:
        """The step.json fields of the ``iterable`` record (nothing when the rows were fine)."""
        return {} if self.message is None else {TYPE_ERROR_RECORD: self.message}


def _features_of(row: dict) -> Any:
    """The features ``datasets`` infers from one row (DataDreamer's ``Dataset.from_list``)."""
    import pyarrow as pa
    from datasets import Dataset

    try:
        return Dataset.from_list([row]).features
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise StepOutputTypeError(str(error)) from None


def _cast(features: Any, row: dict) -> dict:
    """``row`` with each nested value (a list, a dict) cast by Arrow to its column's type, as
    DataDreamer's reads cast an iterable output (``["a"]`` then ``[5]`` reads ``["5"]``).
    Scalars keep their values: their types were checked against the first row's already."""
    import pyarrow as pa

    cast = dict(row)
    for name, value in row.items():
        if not isinstance(value, (list, dict)) or name not in features:
            continue
        target = features.arrow_schema.field(name).type
        try:
            cast[name] = pa.array([value]).cast(target).to_pylist()[0]
        except pa.ArrowException as error:
            raise ValueError(str(error)) from None
    return cast


def raise_recorded(step_name: str, record: dict | None) -> None:
    """Raise the ``StepOutputTypeError`` a step's step.json recorded for its rows, if any."""
    message = ((record or {}).get("iterable") or {}).get(TYPE_ERROR_RECORD)
    if message:
        raise StepOutputTypeError(message if step_name in message else f"Step {step_name!r}: {message}")
