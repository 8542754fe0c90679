"""A ``train*`` method's arguments as a trainer declares them.

Every trainer's ``train()`` (and ``train_with_*``) keeps DataDreamer's
signature, so its parameter lists repeat on purpose; what it does with them is
one rule, :func:`train_arguments`: the parameters named after a split
(``train_*``, ``validation_*``) are the column inputs, every other one is a
training argument, and ``**kwargs`` become ``training_kwargs``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["train_arguments"]

_SPLITS = ("train", "validation")


def train_arguments(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(inputs, args)`` for ``declare_training`` from a ``train*`` method's ``locals()``
    (taken first thing in the method, so they hold its parameters only)."""
    inputs: dict[str, Any] = {}
    args: dict[str, Any] = {}
    for name, value in values.items():
        if name in ("self", "__class__"):
            continue
        if name == "kwargs":
            args["training_kwargs"] = value
        elif name.split("_", 1)[0] in _SPLITS:
            inputs[name] = value
        else:
            args[name] = value
    return inputs, args
