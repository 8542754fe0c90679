"""Step names made safe for asset keys and folder names."""

from __future__ import annotations

import keyword
import re

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
