"""DataDreamer's pickled values: a value Arrow cannot store, kept in a row as bytes.

``step.pickle(value)`` is ``dill.dumps({PICKLE_KEY: value})``, byte for byte DataDreamer's
format, so folders and values move between the two. A step that pickled a value records
``"pickled": true`` in its step.json, and reads of its rows (``step.output``, exports,
``step.dataset``) give the values back, as DataDreamer's reads do.

A pickled column is code: unpickling runs it. Rows are only unpickled when the step's own
step.json says it pickled them, and only after its files matched the manifest that
step.json recorded (see :mod:`~dreamer_dagster.integrity`), so bytes planted in a finished
step folder are never unpickled.
"""

from __future__ import annotations

import warnings
from typing import Any

__all__ = [
    "PICKLE_KEY",
    "direct_pickle",
    "is_pickled_value",
    "pickle_value",
    "reads_pickled",
    "unpickle_batch",
    "unpickle_value",
    "unpickled",
]

#: The key DataDreamer wraps a pickled value in (``datadreamer.pickling``).
PICKLE_KEY = "__DataDreamer__pickle__"


def pickle_value(value: Any, *args: Any, **kwargs: Any) -> bytes:
    """``value`` as DataDreamer pickles it (dill: lambdas and local classes too)."""
    import dill

    return dill.dumps({PICKLE_KEY: value}, *args, **kwargs)


def direct_pickle(value: Any, *args: Any, **kwargs: Any) -> bytes:
    """DataDreamer's ``datadreamer.pickling._pickle`` called directly: the bytes of
    :func:`pickle_value`, with its ``UserWarning`` that ``step.pickle(value)`` is the way
    (a step only restores the values of a step that pickled through it)."""
    warnings.warn(
        "Do not call pickle() directly. You should instead use the .pickle() method on a Step object.",
        stacklevel=2,
    )
    return pickle_value(value, *args, **kwargs)


def unpickle_value(value: bytes) -> Any:
    """A value :func:`pickle_value` made."""
    import dill

    return dill.loads(value)[PICKLE_KEY]  # noqa: S301 - see the module docstring


def is_pickled_value(value: Any) -> bool:
    """DataDreamer's test: pickle protocol bytes with the key near the start."""
    return (
        isinstance(value, bytes)
        and len(value) >= 2
        and value[0] == 128
        and value[-1] == 46
        and PICKLE_KEY.encode("utf8") in value[:100]
    )


def _restore(value: Any) -> Any:
    return unpickle_value(value) if is_pickled_value(value) else value


def unpickle_batch(batch: dict[str, list], binary_columns: list[str]) -> dict[str, list]:
    """``batch`` (columns of values) with the pickled values of ``binary_columns`` restored."""
    return {
        name: [_restore(value) for value in values] if name in binary_columns else values
        for name, values in batch.items()
    }


def unpickled(dataset: Any) -> Any:
    """``dataset`` read with its pickled values restored (a ``with_transform``: rows,
    slices, columns and iteration give the values; the files are unchanged)."""
    from datasets import Value

    binary = [name for name, feature in dataset.features.items() if feature == Value("binary")]
    if not binary:
        return dataset
    return dataset.with_transform(lambda batch: unpickle_batch(batch, binary))


def reads_pickled(dataset: Any) -> bool:
    """Whether ``dataset`` is a read of a pickled step's rows (made by :func:`unpickled`)."""
    return getattr(dataset, "format", {}).get("type") == "custom"
