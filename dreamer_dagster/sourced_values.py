"""Real values read in a running script, that remember which step they came from.

Inside a ``Pipeline`` block running as a script, ``step.output["col"][i]`` is the row's
value, as in DataDreamer: ``json.dumps``, ``isinstance(value, str)``, ``value is None``,
dict keys, ``==`` and numpy see a plain ``str`` / ``int`` / ``float`` / ``list`` /
``tuple`` / ``dict`` (``None`` and ``bool`` are plain ``None`` and ``bool``). In a file
Dagster loads as definitions the same expression is a
:class:`~dreamer_dagster.deferred.Deferred`, computed when the consumer runs. Both modes
must declare the same fingerprints, so a value read in a script carries that Deferred as
its *source* (:func:`sourced` makes it). The rule:

- **A read value passed to a step** (in ``args``, nested in a list or dict, as a model's
  attribute, captured by a function's closure) adds the dependency edge and fingerprints
  by its source (the producing step's fingerprint and the expression), exactly as the
  Deferred does under ``dagster asset materialize``; ``step.json`` shows it the same way.
  At run time the step gets the plain value.
- **Indexing, attributes and method calls keep the source**, recorded as a Deferred
  records them: ``output["col"][0].split(",")[1]`` fingerprints the same in both modes.
  Items of a read list or dict carry ``[i]`` / ``[key]``. A list or dict *item* keeps its
  identity (so changing it changes its container) and so its position's source, whatever
  reached it: ``rows[-1]`` or ``row.get("k")`` on such an item fingerprints as
  ``rows[2]`` / ``row["k"]``, where a Deferred records ``[-1]`` / ``.get('k')``.
- **``None`` and ``bool`` cannot carry a source** (Python cannot subclass them), nor can
  other types (bytes, datetimes): passed to a step they fingerprint by value, while the
  same file loaded as definitions fingerprints that arg by its source. Where a ``None`` or
  ``bool`` cell feeds a step, pass ``step.output["col"].at(i)`` (a Deferred in both modes).
- **New values made from a read value are plain** and fingerprint by value: text from an
  f-string, ``+``, ``%``, ``str.join``, ``json.dumps``; arithmetic; ``list(value)``. In
  definitions mode the same f-string or ``+`` raises ``OutputNotAvailableError`` (a
  Deferred never formats into text), so no second fingerprint can disagree: such a file
  runs only as a script.
- **A list or dict changed in place** no longer equals its source: it fingerprints by its
  value (items still carrying their own source fingerprint by it).
- Whole reads (iteration over a column, ``len``, ``num_rows``, ``.dataset``, ``head()``,
  ``export_to_list()``) give plain values: in definitions mode they raise, so no
  fingerprint depends on them.
- Functions read globals by value only when plain: a global read value, like a global
  Deferred, is not part of a function's fingerprint (a closure's captured value is).
"""

from __future__ import annotations

import copy
import math
from typing import Any

from .deferred import Deferred, Sourced, resolve

__all__ = [
    "SourcedDict",
    "SourcedFloat",
    "SourcedInt",
    "SourcedList",
    "SourcedStr",
    "SourcedTuple",
    "SourcedValue",
    "plain",
    "sourced",
]

# Attributes of the value types themselves (never taken for the value's own attributes).
_OWN = frozenset(
    {"deferred", "step", "sourced_by", "fingerprint_identity", "describe", "dependencies", "resolve_deferred"}
)


def sourced(value: Any, deferred: Deferred) -> Any:
    """``value`` as a real value carrying ``deferred`` as its source (``None``, ``bool`` and
    types other than ``str``/``int``/``float``/``list``/``tuple``/``dict`` come back as they are)."""
    if isinstance(value, (SourcedList, SourcedTuple, SourcedDict)):
        return value  # an item of a read container: the same object (changes stay visible)
    if isinstance(value, SourcedValue):
        value = value.builtin()
    wrapper = _SOURCED_TYPES.get(type(value))
    return value if wrapper is None else wrapper(value, deferred)


def plain(value: Any) -> Any:
    """``value`` with every read value (nested too) made a builtin ``str``/``int``/``list``..."""
    if isinstance(value, SourcedValue):
        value = value.builtin()
    if type(value) is list:
        return [plain(item) for item in value]
    if type(value) is tuple:
        return tuple(plain(item) for item in value)
    if type(value) is dict:
        return {plain(key): plain(item) for key, item in value.items()}
    return value


class _SourcedCall:
    """A read value's method: its result carries the call, as ``Deferred.__call__`` records it."""

    __slots__ = ("_deferred", "_method")

    def __init__(self, method: Any, deferred: Deferred):
        self._method = method
        self._deferred = deferred

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return sourced(self._method(*args, **kwargs), self._deferred(*args, **kwargs))

    def __repr__(self) -> str:
        return repr(self._method)


class SourcedValue(Sourced):
    """Base of the value types: a builtin value plus its source (``deferred``)."""

    def __getattribute__(self, name: str) -> Any:
        value = object.__getattribute__(self, name)
        if name.startswith("_") or name in _OWN or name == "builtin":
            return value
        deferred = object.__getattribute__(self, "deferred")._then(("getattr", name))
        return _SourcedCall(value, deferred) if callable(value) else sourced(value, deferred)

    def builtin(self) -> Any:
        """This value as its builtin type (items of a container unchanged)."""
        raise NotImplementedError

    def resolve_deferred(self, context: Any) -> Any:
        return resolve(self.builtin(), context)  # at run time: the plain value

    def __reduce__(self) -> tuple:
        return (type(self.builtin()), (plain(self),))  # pickled: the plain value alone


class _ScalarValue(SourcedValue):
    def __new__(cls, value: Any, deferred: Deferred) -> Any:
        made = super().__new__(cls, value)
        made.deferred = deferred
        return made

    def __copy__(self) -> Any:
        return self  # immutable

    def __deepcopy__(self, memo: dict) -> Any:
        return self


class SourcedStr(_ScalarValue, str):
    """A ``str`` read from a step in a running script (see the module docstring)."""

    def __getitem__(self, key: Any) -> Any:
        return sourced(str.__getitem__(self, key), self.deferred._then(("getitem", key)))

    def builtin(self) -> str:
        return str.__str__(self)


class SourcedInt(_ScalarValue, int):
    """An ``int`` read from a step in a running script."""

    def builtin(self) -> int:
        return int.__int__(self)


class SourcedFloat(_ScalarValue, float):
    """A ``float`` read from a step in a running script."""

    def builtin(self) -> float:
        return float.__float__(self)


class _ContainerValue(SourcedValue):
    """A list, tuple or dict: its items carry ``[i]`` / ``[key]``; ``_original`` is the
    value as read, to tell whether it was changed in place since."""

    _original: Any

    def sourced_by(self) -> Deferred | None:
        return self.deferred if _same(plain(self), self._original) else None

    def __getitem__(self, key: Any) -> Any:
        item = super().__getitem__(key)
        if isinstance(key, slice) or not isinstance(item, _ScalarValue):
            return sourced(item, self.deferred._then(("getitem", key)))
        if item.deferred.ops[-1:] == (("getitem", key),):
            return item
        return sourced(item, self.deferred._then(("getitem", key)))  # a negative index

    def __copy__(self) -> Any:
        return self.__deepcopy__({})

    def __deepcopy__(self, memo: dict) -> Any:
        if self.sourced_by() is not None:
            return sourced(plain(self), self.deferred)
        return copy.deepcopy(self.builtin(), memo)


class SourcedList(_ContainerValue, list):
    """A ``list`` read from a step in a running script."""

    def __init__(self, value: list, deferred: Deferred):
        list.__init__(self, [sourced(item, deferred._then(("getitem", i))) for i, item in enumerate(value)])
        self.deferred = deferred
        self._original = plain(value)

    def builtin(self) -> list:
        return list.copy(self)


class SourcedTuple(_ContainerValue, tuple):
    """A ``tuple`` (a method's result, such as ``str.partition``) in a running script."""

    def __new__(cls, value: tuple, deferred: Deferred) -> SourcedTuple:
        made = super().__new__(
            cls, (sourced(item, deferred._then(("getitem", i))) for i, item in enumerate(value))
        )
        made.deferred = deferred
        made._original = plain(value)
        return made

    def builtin(self) -> tuple:
        return tuple.__getitem__(self, slice(None))


class SourcedDict(_ContainerValue, dict):
    """A ``dict`` read from a step in a running script."""

    def __init__(self, value: dict, deferred: Deferred):
        dict.__init__(
            self, {key: sourced(item, deferred._then(("getitem", key))) for key, item in value.items()}
        )
        self.deferred = deferred
        self._original = plain(value)

    def builtin(self) -> dict:
        return dict.copy(self)


def _same(a: Any, b: Any) -> bool:
    """Equal, NaN equal to NaN (a read float NaN is the value as read)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(item, b[key]) for key, item in a.items())
    return a == b


#: The exact built-in type of a read value -> the class that carries its source.
_SOURCED_TYPES: dict[type, type] = {
    str: SourcedStr,
    int: SourcedInt,
    float: SourcedFloat,
    list: SourcedList,
    tuple: SourcedTuple,
    dict: SourcedDict,
}
