"""Asset checks built from what a step records about its own output.

Each step's asset carries the checks that apply to it (``check_specs``), so
they show in the asset's Checks tab; they are evaluated right after the step
runs (or reuses its finished output), from its record (``step.json``: row
count, stats, metrics), never by a second pass over a model:

============================  ======================================  =====================
check                         measures                                default: warn / error
============================  ======================================  =====================
``row_count``                 rows produced (fails *below*)           error below 1 row
``empty_generations``         share of empty or None generations      above 10 % / 50 %
``duplicate_generations``     exact-duplicate share of generations    above 20 % / 50 %
``response_format_failures``  share of rows whose JSON did not parse  above 5 % / 50 %
``kept_ratio``                rows a filter kept (fails *below*)      below 5 % / -
``eval_loss``                 trainers: the final eval loss's rise    any rise / -;
                              over the epoch before (non-finite:      non-finite: error
                              error)
============================  ======================================  =====================

Thresholds and severity are set per step (or on ``Pipeline`` for all its
steps)::

    checks={"duplicate_generations": {"warn": 0.1, "error": 0.3, "blocking": True},
            "empty_generations": False}        # off;  checks=False: no checks at all

A failed check with ``blocking=True`` and ERROR severity stops the steps
downstream of it in the same run (a trainer never starts on it). No check
blocks by default: a step downstream of an empty output fails with its own
message, or passes the emptiness on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import dagster as dg

from .occurrences import OccurrenceCounter
from .step_like import StepLike

__all__ = [
    "CHECKS",
    "CheckThresholds",
    "build_check_specs",
    "check_results",
    "generation_columns",
    "GenerationCounter",
    "generation_counts",
    "normalize_checks",
]


@dataclass(frozen=True)
class CheckThresholds:
    """When a check fails: ``warn`` / ``error`` thresholds (a share, a row count or a
    rise, per check), and ``blocking`` (an ERROR stops downstream steps in the run)."""

    warn: float | None = None
    error: float | None = None
    blocking: bool = False


@dataclass(frozen=True)
class _Check:
    name: str
    description: str
    #: ``above``: fails when the measure exceeds a threshold; ``below``: when under it.
    direction: str
    default: CheckThresholds
    applies: Callable[[StepLike], bool]
    #: record -> (the measure, or None where nothing could be measured; metadata).
    measure: Callable[[Mapping[str, Any]], tuple[float | None, dict[str, Any]]]


def _stats(record: Mapping[str, Any]) -> Mapping[str, Any]:
    return record.get("stats") or {}


def _share(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


def _row_count(record: Mapping[str, Any]) -> tuple[float | None, dict]:
    rows = record.get("num_rows") or 0
    return float(rows), {"rows": rows}


def _empty(record: Mapping[str, Any]) -> tuple[float | None, dict]:
    stats = _stats(record)
    total, empty = stats.get("generations", 0), stats.get("empty_generations", 0)
    return _share(empty, total), {"generations": total, "empty": empty}


def _duplicates(record: Mapping[str, Any]) -> tuple[float | None, dict]:
    stats = _stats(record)
    total = stats.get("generations", 0) - stats.get("empty_generations", 0)
    duplicates = stats.get("duplicate_generations", 0)
    return _share(duplicates, total), {"non_empty_generations": total, "duplicates": duplicates}


def _format_failures(record: Mapping[str, Any]) -> tuple[float | None, dict]:
    failures = _stats(record).get("response_format_failures", 0)
    rows = record.get("num_rows") or 0
    return _share(failures, rows), {"rows": rows, "failures": failures}


def _kept(record: Mapping[str, Any]) -> tuple[float | None, dict]:
    stats = _stats(record)
    kept, removed = stats.get("rows_kept", 0), stats.get("rows_removed", 0)
    return (_share(kept, kept + removed) if kept + removed else 1.0), {"kept": kept, "removed": removed}


def _eval_loss(record: Mapping[str, Any]) -> tuple[float | None, dict]:
    losses = [row["eval_loss"] for row in record.get("metrics_table") or [] if "eval_loss" in row]
    final = (record.get("metrics") or {}).get("eval_loss")
    if final is not None and (not losses or losses[-1] != final):
        losses.append(final)
    if not losses:
        return None, {"reason": "no eval_loss was recorded"}
    metadata = {"eval_loss": losses[-1], "epochs": len(losses)}
    if not all(isinstance(loss, (int, float)) and math.isfinite(loss) for loss in losses):
        return math.inf, {**metadata, "reason": "an eval loss is not finite"}
    if len(losses) < 2:
        return 0.0, metadata
    previous, last = losses[-2], losses[-1]
    rise = (last - previous) / abs(previous) if previous else (0.0 if last <= previous else math.inf)
    return max(rise, 0.0) if last > previous else 0.0, {**metadata, "previous_eval_loss": previous}


def _has_validation(step: StepLike) -> bool:
    inputs = getattr(step, "inputs", None) or {}  # a trainer has inputs once .train() declared them
    return type(step).KIND == "trainer" and any(name.startswith("validation_") for name in inputs)


def _has_response_format(step: StepLike) -> bool:
    return (getattr(step, "args", None) or {}).get("response_format") is not None


CHECKS: dict[str, _Check] = {
    check.name: check
    for check in (
        _Check(
            "row_count",
            "The step produced rows (fails below the thresholds; no rows is an error).",
            "below",
            CheckThresholds(warn=None, error=1),
            lambda step: type(step).KIND != "trainer",
            _row_count,
        ),
        _Check(
            "empty_generations",
            "Share of empty or None generations.",
            "above",
            CheckThresholds(warn=0.10, error=0.50),
            lambda step: bool(generation_columns(step)),
            _empty,
        ),
        _Check(
            "duplicate_generations",
            "Share of generations that exactly repeat an earlier one.",
            "above",
            CheckThresholds(warn=0.20, error=0.50),
            lambda step: bool(generation_columns(step)),
            _duplicates,
        ),
        _Check(
            "response_format_failures",
            "Share of rows whose generation did not parse as the response_format asked.",
            "above",
            CheckThresholds(warn=0.05, error=0.50),
            _has_response_format,
            _format_failures,
        ),
        _Check(
            "kept_ratio",
            "Share of rows the filter kept.",
            "below",
            CheckThresholds(warn=0.05, error=None),
            lambda step: bool(getattr(step, "FILTERS_ROWS", False)),
            _kept,
        ),
        _Check(
            "eval_loss",
            "The eval loss is finite and does not rise at the end of training (relative rise over "
            "the epoch before).",
            "above",
            CheckThresholds(warn=0.0, error=None),
            _has_validation,
            _eval_loss,
        ),
    )
}


# -- declaration ----------------------------------------------------------------------


def normalize_checks(value: Any) -> dict[str, CheckThresholds | bool] | bool:
    """``checks=`` validated: False, or check name -> ``CheckThresholds`` (or False: off).

    A dict of thresholds may give ``warn``, ``error`` and ``blocking``; what it
    leaves out keeps the check's default.
    """
    if value is False:
        return False
    if not isinstance(value, Mapping):
        raise TypeError(
            "must be a dict of check name -> thresholds (such as {'duplicate_generations': "
            f"{{'warn': 0.1, 'error': 0.3}}}}) or False for no checks, got {value!r}."
        )
    normalized: dict[str, CheckThresholds | bool] = {}
    for name, setting in value.items():
        if name not in CHECKS:
            raise ValueError(f"unknown check {name!r}; the checks are {sorted(CHECKS)}.")
        if isinstance(setting, bool):
            normalized[name] = setting
            continue
        if isinstance(setting, CheckThresholds):
            setting = {"warn": setting.warn, "error": setting.error, "blocking": setting.blocking}
        if not isinstance(setting, Mapping):
            raise TypeError(
                f"check {name!r}: give a dict such as {{'warn': 0.1, 'error': 0.3, 'blocking': True}}, "
                f"True, or False; got {setting!r}."
            )
        unknown = sorted(set(setting) - {"warn", "error", "blocking"})
        if unknown:
            raise ValueError(f"check {name!r}: unknown keys {unknown}; use 'warn', 'error', 'blocking'.")
        for key in ("warn", "error"):
            number = setting.get(key)
            if number is not None and (isinstance(number, bool) or not isinstance(number, (int, float))):
                raise TypeError(f"check {name!r}: {key!r} must be a number or None, got {number!r}.")
        if not isinstance(setting.get("blocking", False), bool):
            raise TypeError(f"check {name!r}: 'blocking' must be True or False.")
        normalized[name] = replace(CHECKS[name].default, **dict(setting))
    return normalized


def applicable_checks(step: StepLike) -> list[str]:
    """The names of the checks that apply to ``step`` (by its type and arguments). A lazy
    operation (steps/lazy.py) writes only its recipe, no rows, so no check applies to it:
    its consumers' checks see the rows it streams."""
    if getattr(step, "lazy_output", False):
        return []
    return [name for name, check in CHECKS.items() if check.applies(step)]


def step_thresholds(step: StepLike) -> dict[str, CheckThresholds]:
    """The checks ``step`` runs, with their thresholds (defaults, then its ``checks=``)."""
    settings = getattr(step, "checks", None)
    if settings is False:
        return {}
    settings = settings or {}
    chosen = {}
    for name in applicable_checks(step):
        setting = settings.get(name, True)
        if setting is False:
            continue
        chosen[name] = setting if isinstance(setting, CheckThresholds) else CHECKS[name].default
    return chosen


def build_check_specs(step: StepLike, asset_key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    """The ``dg.AssetCheckSpec`` of each check ``step`` runs, on its asset."""
    specs = []
    for name, thresholds in step_thresholds(step).items():
        check = CHECKS[name]
        specs.append(
            dg.AssetCheckSpec(
                name,
                asset=asset_key,
                description=f"{check.description} {_describe(check, thresholds)}",
                blocking=thresholds.blocking,
            )
        )
    return specs


# -- evaluation -----------------------------------------------------------------------


def check_results(
    step: StepLike,
    asset_key: dg.AssetKey,
    record: Mapping[str, Any],
    selected: Iterable[dg.AssetCheckKey] | None = None,
) -> list[dg.AssetCheckResult]:
    """Each selected check of ``step`` evaluated on its ``record``."""
    wanted = None if selected is None else {key.name for key in selected if key.asset_key == asset_key}
    results = []
    for name, thresholds in step_thresholds(step).items():
        if wanted is not None and name not in wanted:
            continue
        check = CHECKS[name]
        value, metadata = check.measure(record)
        severity = _severity(check, thresholds, value)
        results.append(
            dg.AssetCheckResult(
                asset_key=asset_key,
                check_name=name,
                passed=severity is None,
                severity=severity or dg.AssetCheckSeverity.WARN,
                metadata={
                    **({} if value is None else {"value": _metadata_value(value)}),
                    **{key: _metadata_value(item) for key, item in metadata.items()},
                    "warn": _threshold_text(check, thresholds.warn),
                    "error": _threshold_text(check, thresholds.error),
                },
            )
        )
    return results


def _severity(
    check: _Check, thresholds: CheckThresholds, value: float | None
) -> dg.AssetCheckSeverity | None:
    if value is None:
        return dg.AssetCheckSeverity.WARN  # nothing to measure where there should be
    if math.isinf(value) and check.direction == "above":
        return dg.AssetCheckSeverity.ERROR  # a non-finite loss
    for threshold, severity in (
        (thresholds.error, dg.AssetCheckSeverity.ERROR),
        (thresholds.warn, dg.AssetCheckSeverity.WARN),
    ):
        if threshold is None:
            continue
        if (check.direction == "above" and value > threshold) or (
            check.direction == "below" and value < threshold
        ):
            return severity
    return None


def _describe(check: _Check, thresholds: CheckThresholds) -> str:
    parts = []
    for label, threshold in (("warn", thresholds.warn), ("error", thresholds.error)):
        if threshold is not None:
            parts.append(f"{label} {check.direction} {_threshold_text(check, threshold)}")
    text = "; ".join(parts) if parts else "reports only"
    return f"({text}{'; blocking' if thresholds.blocking else ''})."


def _threshold_text(check: _Check, threshold: float | None) -> str:
    if threshold is None:
        return "none"
    if check.name == "row_count":
        return f"{threshold:g} rows"
    return f"{100 * threshold:g} %"


def _metadata_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


# -- what the checks measure, collected when a step runs --------------------------------


def generation_columns(step: StepLike) -> list[str]:
    """The output column holding a step's own generations (its ``generations`` output, renamed)."""
    if "generations" not in (type(step).OUTPUTS or ()):
        return []  # a step that passes its input's columns through generates none of them
    return [step.output_mapping.get("generations", "generations")]


def generation_counts(dataset: Any, columns: list[str], batch_size: int = 10_000) -> dict[str, int]:
    """``generations``, ``empty_generations`` and ``duplicate_generations`` counted over
    ``columns`` of a Dataset (each generation of an ``n > 1`` list counts once)."""
    counter = GenerationCounter(columns)
    present = [column for column in columns if column in dataset.column_names]
    if present:
        for table in dataset.select_columns(present).with_format("arrow").iter(batch_size=batch_size):
            counter.add(table)
    return counter.counts()


class GenerationCounter:
    """:func:`generation_counts` as rows go by: ``add`` each row dict or ``pyarrow`` table
    of a step's output as it is written, then read ``counts()``.

    Duplicates are told by a digest of each generation, kept in a compact table
    (:class:`~dreamer_dagster.occurrences.OccurrenceCounter`, 12 bytes a slot),
    so counting a large step adds little memory a row.
    """

    def __init__(self, columns: list[str]):
        self.columns = list(columns)
        self.total = self.empty = self.duplicates = 0
        self.present = False
        self._seen = OccurrenceCounter()

    def add(self, rows: Any) -> None:
        """Count one row dict, or every row of a ``pyarrow`` table."""
        for column in self.columns:
            if isinstance(rows, dict):
                if column not in rows:
                    continue
                values = [rows[column]]
            elif column in rows.column_names:
                values = rows.column(column).to_pylist()
            else:
                continue
            self.present = True
            for value in values:
                for item in value if isinstance(value, list) else [value]:
                    self._count(item)

    def _count(self, item: Any) -> None:
        self.total += 1
        if item is None or (isinstance(item, str) and not item.strip()):
            self.empty += 1
            return
        text = item if isinstance(item, str) else json.dumps(item, sort_keys=True, default=str)
        if self._seen.next(text):
            self.duplicates += 1

    def counts(self) -> dict[str, int]:
        if not self.present:
            return {}
        return {
            "generations": self.total,
            "empty_generations": self.empty,
            "duplicate_generations": self.duplicates,
        }
