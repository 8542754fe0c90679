"""``storage_options`` values read from the environment when the output folder is opened.

``storage_options={"key": dg.EnvVar("AWS_ACCESS_KEY_ID"), "secret": dg.EnvVar(...)}``
(on ``Pipeline``, ``dreamer_definitions`` or ``DreamerIOManager``) names environment
variables; their values are read only where the output folder's filesystem is opened, at
run time, and are kept in memory only: the IO manager's config holds the variable's name
(Dagster stores an ``EnvVar`` in a resource's config as ``{"env": NAME}``, and that form
is read the same way), and no step.json, metadata or fingerprint ever holds a storage
option.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .errors import OutputFolderError

__all__ = ["env_var_name", "resolve_storage_options"]


def env_var_name(value: Any) -> str | None:
    """The variable ``value`` stands for: a ``dg.EnvVar``, or its config form ``{"env": NAME}``;
    None for any other value."""
    if type(value).__name__ == "EnvVar" and type(value).__module__.startswith("dagster"):
        return str(getattr(value, "env_var_name", value))
    if isinstance(value, Mapping) and len(value) == 1 and isinstance(value.get("env"), str):
        return value["env"]
    return None


def resolve_storage_options(options: Mapping[str, Any] | None, where: str = "storage_options") -> dict:
    """``options`` with each ``dg.EnvVar`` (at any depth: ``client_kwargs`` too) replaced by
    its variable's value; :class:`OutputFolderError` naming the option and the variable
    when it is not set."""
    return {key: _resolve(value, f"{where}[{key!r}]") for key, value in (options or {}).items()}


def _resolve(value: Any, where: str) -> Any:
    name = env_var_name(value)
    if name is not None:
        found = os.environ.get(name)
        if found is None:
            raise OutputFolderError(
                f"The output folder's {where} is dg.EnvVar({name!r}), but the environment variable "
                f"{name} is not set in this process. Fix: set {name} in the environment of the "
                "processes that run the steps (the run worker, the code location), or give the "
                "option another way."
            )
        return found
    if isinstance(value, Mapping):
        return {key: _resolve(item, f"{where}[{key!r}]") for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_resolve(item, f"{where}[{index}]") for index, item in enumerate(value))
    return value
