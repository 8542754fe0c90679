"""Column references and deferred values: how one step's output feeds another.

``step.output["col"]`` is a :class:`ColumnRef`: used as another step's input it
means "this column of that step". Indexing it or calling a method on the result
(``step.output["col"][0].split(",")``) gives a :class:`Deferred`: a value that
is recorded as an expression now and computed at run time from the producing
step's output. ``trainer.model_path`` is a deferred value too.

Both add a dependency edge (an asset input) to any step that holds them in its
args, and enter its fingerprint through the producing step's fingerprint and the
recorded expression.

Used as a value (``str()``, an f-string, ``len``, iteration, ``+``, a truth test), a
deferred value is computed by its step (``StepLike.compute_deferred``), by
:func:`~dreamer_dagster.script_mode.require_output`'s rule: in a running script the
step is materialized first and the real value is used; in a file Dagster loads as
definitions it raises a clear error, so ``Deferred(...)`` text never slips into a
prompt. Passed to a step, it stays deferred, so a script and the same file loaded as
definitions declare the same fingerprints.

Inside a running script's block, ``step.output["col"][i]`` is the row's real value
instead (a ``str``, ``int``, ``float``, ``list``, ``dict``... that remembers this
:class:`Deferred` as its source: :class:`Sourced`, :mod:`~dreamer_dagster.sourced_values`,
which states the fingerprint rule); ``ref.at(i)`` is a :class:`Deferred` in every mode.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .step_like import StepLike, is_step

__all__ = [
    "ColumnRef",
    "Deferred",
    "DeferredValueError",
    "ModelPath",
    "Sourced",
    "resolve",
    "running_script",
    "upstream_steps",
]


class DeferredValueError(ValueError):
    """A deferred value's expression failed when the pipeline ran."""


class ColumnRef:
    """One column of a step's output, used as another step's input."""

    def __init__(self, step: StepLike, column: str):
        self.step = step
        self.column = column

    def fingerprint_identity(self) -> dict:
        return {"step": self.step.fingerprint, "column": self.column}

    def describe(self) -> str:
        return f"{self.step.name}.output[{self.column!r}]"

    def __getitem__(self, index: Any) -> Any:
        """A :class:`Deferred`; inside a running script's block, the real value (read now,
        carrying that Deferred as its source: see :mod:`~dreamer_dagster.sourced_values`)."""
        deferred = self.at(index)
        if not running_script(self.step):
            return deferred
        from .sourced_values import sourced

        column = self.data(f"reading {deferred.describe()}")
        if isinstance(index, (int, slice)) and not isinstance(index, bool):
            return sourced(column[index], deferred)
        return sourced(column.to_list()[index], deferred)

    def at(self, index: Any) -> Deferred:
        """``self[index]`` as a :class:`Deferred` in every mode, a running script included (a
        ``None`` or ``bool`` cannot carry its source: pass ``ref.at(i)`` where it must)."""
        return Deferred(self.step, ("column", self.column), (("getitem", index),))

    @property
    def column_names(self) -> list[str]:
        return [self.column]

    # -- the column's values, when code reads them -------------------------------------

    def data(self, what: str | None = None) -> Any:
        """The column's values (a :class:`~dreamer_dagster.steps.output_data.ColumnData`)."""
        return self.step.column_data(self.column, what or f"reading {self.describe()}")

    def __len__(self) -> int:
        return len(self.data(f"len({self.describe()})"))

    def __iter__(self):
        return iter(self.data(f"iterating over {self.describe()}"))

    def __bool__(self) -> bool:
        return True  # a reference, whatever its rows

    @property
    def num_rows(self) -> int:
        return self.data(f"{self.describe()}.num_rows").num_rows

    @property
    def dataset(self) -> Any:
        return self.data(f"{self.describe()}.dataset").dataset

    def __str__(self) -> str:
        return str(self.data(f"str({self.describe()})").to_list())

    def __format__(self, spec: str) -> str:
        return format(str(self.data(f"formatting {self.describe()} into text").to_list()), spec)

    def __repr__(self) -> str:
        return f"ColumnRef({self.describe()})"


class Deferred:
    """A value computed at run time from a step's output.

    ``source`` says what the expression starts from: ``("column", name)`` is the
    column as a list, ``("model_path",)`` is a trainer's ``_model`` folder.
    ``ops`` is the recorded chain of ``getitem`` / ``getattr`` / ``call``.
    """

    def __init__(self, step: StepLike, source: tuple, ops: tuple = ()):
        self.step = step
        self.source = source
        self.ops = ops

    def _then(self, op: tuple) -> Deferred:
        return Deferred(self.step, self.source, self.ops + (op,))

    def __getitem__(self, index: Any) -> Deferred:
        return self._then(("getitem", index))

    def __getattr__(self, name: str) -> Deferred:
        if name.startswith("_"):
            raise AttributeError(name)
        return self._then(("getattr", name))

    def __call__(self, *args: Any, **kwargs: Any) -> Deferred:
        return self._then(("call", args, tuple(sorted(kwargs.items()))))

    def expression(self) -> str:
        text = f"output[{self.source[1]!r}]" if self.source[0] == "column" else self.source[0]
        for op in self.ops:
            if op[0] == "getitem":
                text += f"[{op[1]!r}]"
            elif op[0] == "getattr":
                text += f".{op[1]}"
            else:
                parts = [repr(a) for a in op[1]] + [f"{k}={v!r}" for k, v in op[2]]
                text += f"({', '.join(parts)})"
        return text

    def fingerprint_identity(self) -> dict:
        return {"step": self.step.fingerprint, "deferred": self.expression()}

    def describe(self) -> str:
        return f"{self.step.name}.{self.expression()}"

    def evaluate(self, base: Any) -> Any:
        value = base
        try:
            for op in self.ops:
                if op[0] == "getitem":
                    value = value[op[1]]
                elif op[0] == "getattr":
                    value = getattr(value, op[1])
                else:
                    value = value(*op[1], **dict(op[2]))
        except Exception as error:
            size = f" (the column has {len(base)} rows)" if isinstance(base, list) else ""
            raise DeferredValueError(
                f"the deferred value {self.describe()} failed at run time: {type(error).__name__}: "
                f"{error}{size}. Fix: change the expression, or the step that makes "
                f"{self.step.name!r}."
            ) from error
        return value

    def __repr__(self) -> str:
        return f"Deferred({self.describe()})"

    # -- used as a value: computed (a running script) or a clear error (definitions) ----

    def _compute(self, what: str | None = None) -> Any:
        """The value, computed now from the step's output (see the module docstring)."""
        return self.step.compute_deferred(self, what or f"the value of {self.describe()}")

    def __str__(self) -> str:
        return str(self._compute(f"str({self.describe()})"))

    def __format__(self, spec: str) -> str:
        return format(self._compute(f"formatting {self.describe()} into text (an f-string)"), spec)

    def __bool__(self) -> bool:
        return bool(self._compute(f"the truth value of {self.describe()}"))

    def __len__(self) -> int:
        return len(self._compute(f"len({self.describe()})"))

    def __iter__(self):
        return iter(self._compute(f"iterating over {self.describe()}"))

    def __contains__(self, item: Any) -> bool:
        return item in self._compute(f"`in` on {self.describe()}")

    def __int__(self) -> int:
        return int(self._compute(f"int({self.describe()})"))

    def __float__(self) -> float:
        return float(self._compute(f"float({self.describe()})"))

    def __index__(self) -> int:
        return self._compute(f"{self.describe()} as an index").__index__()

    # Compared, a deferred value is computed too: `answer == "yes"` must never be silently
    # False. It still hashes by identity (a deferred value is a key in the library's maps).
    __hash__ = object.__hash__

    def __eq__(self, other: Any) -> bool:
        return self._compute(f"{self.describe()} == ...") == _value(other)

    def __ne__(self, other: Any) -> bool:
        return self._compute(f"{self.describe()} != ...") != _value(other)

    def __lt__(self, other: Any) -> bool:
        return self._compute(f"{self.describe()} < ...") < _value(other)

    def __le__(self, other: Any) -> bool:
        return self._compute(f"{self.describe()} <= ...") <= _value(other)

    def __gt__(self, other: Any) -> bool:
        return self._compute(f"{self.describe()} > ...") > _value(other)

    def __ge__(self, other: Any) -> bool:
        return self._compute(f"{self.describe()} >= ...") >= _value(other)

    def __add__(self, other: Any) -> Any:
        return self._compute(f"{self.describe()} + ...") + other

    def __radd__(self, other: Any) -> Any:
        return other + self._compute(f"... + {self.describe()}")


def running_script(step: Any) -> bool:
    """Whether ``step`` belongs to a ``Pipeline`` block running now as a script, or was
    declared outside any block in a script (it runs in memory when read: script_steps.py)."""
    pipeline = getattr(step, "pipeline", None)
    if pipeline is None:
        return bool(getattr(step, "runs_in_memory", False))
    return bool(pipeline.is_active) and bool(pipeline.script_mode)


class Sourced:
    """A real value that carries the :class:`Deferred` it was read through (its source):
    :class:`ModelPath` and the value types of :mod:`~dreamer_dagster.sourced_values`.
    Passed to a step it adds the dependency edge, fingerprints and shows in step.json by
    that source, as the Deferred does in a file Dagster loads."""

    deferred: Deferred

    @property
    def step(self) -> StepLike:
        return self.deferred.step

    def sourced_by(self) -> Deferred | None:
        """The source this value still equals (None: changed in place since it was read)."""
        return self.deferred

    def fingerprint_identity(self) -> dict | None:
        source = self.sourced_by()
        return None if source is None else source.fingerprint_identity()  # None: by value

    def describe(self) -> str:
        return self.deferred.describe()

    def dependencies(self) -> list:
        source = self.sourced_by()
        return [] if source is None else [source.step]

    def resolve_deferred(self, context: Any) -> Any:
        return resolve(self.deferred, context)


class ModelPath(Sourced, str):
    """``trainer.model_path`` in a running script: the ``_model`` folder as a ``str``
    (``os.path.join`` / ``os.path.exists`` / ``from_pretrained`` work, as in DataDreamer)
    that still carries its :class:`Deferred`. Passed to a step or a model it adds the
    dependency edge, fingerprints by the trainer (as ``trainer.model_path`` does in a file
    Dagster loads) and resolves at run time to the run's own ``_model`` path."""

    def __new__(cls, path: str, deferred: Deferred) -> ModelPath:
        value = super().__new__(cls, path)
        value.deferred = deferred
        return value

    def __reduce__(self) -> tuple:
        return (str, (str(self),))  # pickled (another process, a library's copy): the path alone

    def __copy__(self) -> ModelPath:
        return self

    def __deepcopy__(self, memo: dict) -> ModelPath:
        return self  # a library's deep copy of its config keeps the path (and its source)


def _value(other: Any) -> Any:
    return other._compute() if isinstance(other, Deferred) else other


def upstream_steps(value: Any) -> list[StepLike]:
    """Every step that ``value`` (args, nested containers, models) depends on."""
    found: dict[int, StepLike] = {}

    def walk(obj: Any) -> None:
        if isinstance(obj, (ColumnRef, Deferred)):
            found[id(obj.step)] = obj.step
        elif isinstance(obj, Sourced) and obj.sourced_by() is not None:
            found[id(obj.step)] = obj.step  # changed in place: its items (below) tell
        elif is_step(obj):
            found[id(obj)] = obj
        elif isinstance(obj, Mapping):
            for item in obj.values():
                walk(item)
        elif isinstance(obj, (list, tuple, set, frozenset)):
            for item in obj:
                walk(item)
        elif hasattr(obj, "dependencies") and callable(obj.dependencies) and not isinstance(obj, type):
            for item in obj.dependencies():
                walk(item)

    walk(value)
    return list(found.values())


def resolve(value: Any, context: Any) -> Any:
    """``value`` with every deferred part computed; ``context`` is the run context.

    Models resolve their own deferred parts (an adapter path, a trainer) through
    ``resolve_deferred(context)``, returning a ready copy.
    """
    if isinstance(value, Sourced):
        return value.resolve_deferred(context)  # a real value read in a script: its plain value
    if isinstance(value, Deferred):
        return value.evaluate(context.deferred_base(value))
    if isinstance(value, ColumnRef):
        return context.column(value)
    if is_step(value):
        return context.model_path(value)
    if isinstance(value, Mapping):
        return {key: resolve(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve(item, context) for item in value]
    if isinstance(value, tuple):
        return tuple(resolve(item, context) for item in value)
    resolver = getattr(value, "resolve_deferred", None)
    if resolver is not None and callable(resolver) and not isinstance(value, type):
        return resolver(context)
    return value
