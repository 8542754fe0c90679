"""The Dagster settings every step and trainer takes besides DataDreamer's arguments.

::

    DataFromPrompt("Abstracts", args={...}, pool="openai_shared", checks={...},
                   retry_policy=dg.RetryPolicy(max_retries=2), owners=["team:ml"])

- ``automation_condition``: a ``dg.AutomationCondition`` for the asset (opt in);
- ``pool``: the Dagster concurrency pool (default: from the step's model);
- ``retry_policy``: a ``dg.RetryPolicy`` (steps that call a model get one by
  default, unless a model has ``retry_on_fail=False``), or ``False`` for none;
- ``checks``: asset check thresholds by check name, or ``False`` for no checks
  (see :mod:`~dreamer_dagster.checks`);
- ``budget_usd``: the most this step may spend on model calls;
- ``owners``, ``tags``, ``op_tags``, ``group_name``: as on a Dagster asset;
- ``pipes_client``: a Dagster Pipes client (or a ``dreamer_dagster.pipes.PipesLaunch``) that
  runs the step out of the orchestrator's process (see :mod:`~dreamer_dagster.pipes`).

None of them enters the fingerprint: they change how a step runs, not what it
outputs. ``Pipeline(...)`` takes the same keywords as defaults for the steps
declared in its block; a step's own value wins (``checks`` and the tag dicts
merge, the step's entries over the pipeline's).
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

import dagster as dg

from ..pools import check_pool

__all__ = ["SETTING_NAMES", "check_settings", "merge_setting"]

SETTING_NAMES = (
    "automation_condition",
    "pool",
    "retry_policy",
    "checks",
    "budget_usd",
    "owners",
    "tags",
    "op_tags",
    "group_name",
    "pipes_client",
)

#: Settings whose values merge (the step's entries over the pipeline's).
_MERGED = frozenset({"checks", "tags", "op_tags"})


class SettingError(ValueError):
    """A bad Dagster setting; the message says what is expected."""


def check_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings validated and normalized; raises :class:`SettingError` (with the
    setting's name in ``.argument``) on the first bad one."""
    checked: dict[str, Any] = {}
    for name, value in settings.items():
        if name not in SETTING_NAMES:
            raise _error(name, f"unknown Dagster setting; the settings are {list(SETTING_NAMES)}.")
        if value is None:
            checked[name] = None
            continue
        try:
            checked[name] = _CHECKERS[name](value)
        except (TypeError, ValueError) as error:
            raise _error(name, str(error)) from None
    return checked


def merge_setting(name: str, default: Any, own: Any) -> Any:
    """A step's value of setting ``name`` given the pipeline's ``default`` and its ``own``."""
    if own is None:
        return default
    if default is None or name not in _MERGED or not isinstance(default, Mapping):
        return own
    if not isinstance(own, Mapping):
        return own  # checks=False turns every check off
    return {**default, **own}


def _error(name: str, message: str) -> SettingError:
    error = SettingError(message)
    error.argument = name
    return error


def _automation_condition(value: Any) -> Any:
    if not isinstance(value, dg.AutomationCondition):
        raise TypeError(
            f"must be a dg.AutomationCondition (such as dg.AutomationCondition.eager()), got {value!r}."
        )
    return value


def _retry_policy(value: Any) -> Any:
    if value is False or isinstance(value, dg.RetryPolicy):
        return value
    raise TypeError(
        "must be a dg.RetryPolicy (such as dg.RetryPolicy(max_retries=3, delay=10, "
        f"backoff=dg.Backoff.EXPONENTIAL)) or False for none, got {value!r}."
    )


def _checks(value: Any) -> Any:
    from ..checks import normalize_checks

    return normalize_checks(value)


def _budget(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value <= 0:
        raise ValueError(f"must be a number of US dollars > 0, got {value!r}.")
    return float(value)


def _owners(value: Any) -> list[str]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise TypeError(f"must be a list of owners (emails or 'team:name'), got {value!r}.")
    for owner in value:
        if not isinstance(owner, str) or not ("@" in owner or owner.startswith("team:")):
            raise ValueError(f"{owner!r} is not an owner: give an email or 'team:name'.")
    return list(value)


def _string_tags(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise TypeError(f"must be a dict of str -> str, got {value!r}.")
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise TypeError(f"must map strings to strings; {key!r}: {item!r} is not.")
    return dict(value)


def _op_tags(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise TypeError(f"must be a dict with string keys, got {value!r}.")
    return dict(value)


def _group_name(value: Any) -> str:
    if not isinstance(value, str) or not value.replace("_", "a").isalnum():
        raise ValueError(f"must be a name of letters, digits and '_', got {value!r}.")
    return value


def _pipes_client(value: Any) -> Any:
    from ..pipes.launch import check_pipes_client

    return check_pipes_client(value)


_CHECKERS = {
    "automation_condition": _automation_condition,
    "pool": check_pool,
    "retry_policy": _retry_policy,
    "checks": _checks,
    "budget_usd": _budget,
    "owners": _owners,
    "tags": _string_tags,
    "op_tags": _op_tags,
    "group_name": _group_name,
    "pipes_client": _pipes_client,
}
