"""Step names made safe for asset keys and folder names."""

from __future__ import annotations

import keyword
import re
from collections.abc import Iterator

__all__ = ["SUPER_STEP_PREFIXES", "derived_names", "safe_name", "scoped_name"]

_UNSAFE = re.compile(r"[^a-z0-9]+")


def safe_name(name: str) -> str:
    """``"Generate Tweets from Abstracts"`` -> ``"generate_tweets_from_abstracts"``.

    Lower case; every run of characters other than letters and digits becomes one
    ``_``; leading and trailing ``_`` are dropped. Raises ``ValueError`` for a name
    with no letter or digit.
    """
    if not isinstance(name, str):
        raise TypeError(f"A step name must be a string, got {type(name).__name__}: {name!r}.")
    safe = _UNSAFE.sub("_", name.lower()).strip("_")
    if not safe:
        raise ValueError(
            f"Step name {name!r} has no letter or digit, so it cannot become an asset key "
            "or a folder name. Fix: give the step a name such as 'Generate Abstracts'."
        )
    if keyword.iskeyword(safe):
        safe += "_"  # Dagster refuses Python keywords ("in", "for") as asset names
    return safe


def derived_names(base: str, transform: str | None = None) -> Iterator[str]:
    """The names DataDreamer gives a step an operation derives, in the order it tries them:
    ``"Src (take)"``, ``"Src (take #2)"``, ``"Src (take #3)"``...; without a transform
    ``"concat(A, B)"``, ``"concat(A, B) #2"``...; the first one not taken is used."""
    if transform:
        yield f"{base} ({transform})"
    else:
        yield base
    number = 2
    while True:
        yield f"{base} ({transform} #{number})" if transform else f"{base} #{number}"
        number += 1


#: The names of the SuperSteps being expanded (their steps are named ``"Outer / Inner"``).
SUPER_STEP_PREFIXES: list[str] = []


def scoped_name(name: str) -> str:
    """``name`` inside the SuperSteps being expanded: ``"Outer / Inner"`` (DataDreamer's rule)."""
    if not SUPER_STEP_PREFIXES or not isinstance(name, str):
        return name
    return " / ".join([*SUPER_STEP_PREFIXES, name.split(" / ")[-1]])
