"""Which steps are stale, and why, read from Dagster's public API.

Dagster records on every materialization the asset's code version
(``dagster/code_version``), its data version (``dagster/data_version``) and the
data version of each input it read (``dagster/input_data_version/<key>``).
Comparing the latest materialization of each step with the current
definitions gives what Dagster's web UI calls *unsynced* and its schedules
call stale, with the same causes:

- never materialized (MISSING);
- "has a new code version": the step's fingerprint changed;
- "upstream <key> has a new data version": an input was re-materialized with
  different data since this step read it;
- "has a new dependency on <key>" / "removed dependency on <key>".

Since a fingerprint chains through its inputs' fingerprints, changing one
step gives it and every step downstream a new code version.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import dagster as dg

__all__ = ["MISSING", "STALE", "StepStatus", "stale_statuses"]

MISSING = "MISSING"
STALE = "STALE"
FRESH = "FRESH"

CODE_VERSION_TAG = "dagster/code_version"
DATA_VERSION_TAG = "dagster/data_version"
INPUT_DATA_VERSION_PREFIX = "dagster/input_data_version/"
INPUT_EVENT_POINTER_PREFIX = "dagster/input_event_pointer/"
#: Dagster's data version of an asset never materialized, and of a source assumed to exist.
NULL_DATA_VERSION = "NULL"
DEFAULT_DATA_VERSION = "INITIAL"


@dataclass(frozen=True)
class StepStatus:
    """One asset's status (``MISSING``, ``STALE`` or ``FRESH``) and the causes of it."""

    key: dg.AssetKey
    status: str
    causes: list[str] = field(default_factory=list)

    @property
    def needs_run(self) -> bool:
        return self.status in (MISSING, STALE)


def stale_statuses(
    definitions: dg.Definitions, instance: dg.DagsterInstance, keys: Iterable[dg.AssetKey] | None = None
) -> list[StepStatus]:
    """The status of each asset of ``definitions`` (or of ``keys``), upstream first."""
    specs = {spec.key: spec for spec in definitions.resolve_all_asset_specs()}
    materializable = {
        key
        for asset in definitions.assets or []
        if isinstance(asset, dg.AssetsDefinition)
        for key in asset.keys
    }
    wanted = (
        list(keys) if keys is not None else [key for key in _upstream_first(specs) if key in materializable]
    )
    events: dict[dg.AssetKey, dg.EventLogEntry | None] = {}

    def latest(key: dg.AssetKey) -> dg.EventLogEntry | None:
        if key not in events:
            events[key] = instance.get_latest_materialization_event(key)
        return events[key]

    def current_data_version(key: dg.AssetKey) -> str:
        entry = latest(key)
        if entry is None:
            return NULL_DATA_VERSION if key in materializable else DEFAULT_DATA_VERSION
        return (entry.tags or {}).get(DATA_VERSION_TAG) or DEFAULT_DATA_VERSION

    statuses = []
    for key in wanted:
        spec = specs[key]
        entry = latest(key)
        if entry is None:
            statuses.append(StepStatus(key, MISSING, ["never materialized"]))
            continue
        causes = _causes(spec, entry, current_data_version, latest)
        statuses.append(StepStatus(key, STALE if causes else FRESH, causes))
    return statuses


def _causes(spec: dg.AssetSpec, entry: dg.EventLogEntry, current_data_version, latest) -> list[str]:  # noqa: ANN001
    tags: Mapping[str, str] = entry.tags or {}
    deps = [dep.asset_key for dep in spec.deps]
    causes = []
    recorded_code = tags.get(CODE_VERSION_TAG)
    if recorded_code is None:  # no provenance recorded: compare materialization times
        for dep in deps:
            dep_entry = latest(dep)
            if dep_entry is not None and dep_entry.timestamp > entry.timestamp:
                causes.append(f"upstream {dep.to_user_string()} has a new materialization")
        return causes
    if spec.code_version and recorded_code != spec.code_version:
        causes.append(f"has a new code version ({_short(recorded_code)} -> {_short(spec.code_version)})")
    inputs = _tagged_keys(tags, INPUT_DATA_VERSION_PREFIX)
    pointers = _tagged_keys(tags, INPUT_EVENT_POINTER_PREFIX)
    for removed in sorted(set(inputs) - set(deps), key=lambda key: key.to_user_string()):
        causes.append(f"removed dependency on {removed.to_user_string()}")
    for dep in sorted(deps, key=lambda key: key.to_user_string()):
        if dep not in inputs or dep not in pointers:
            causes.append(f"has a new dependency on {dep.to_user_string()}")
            continue
        recorded, current = inputs[dep], current_data_version(dep)
        if recorded == DEFAULT_DATA_VERSION and current == NULL_DATA_VERSION:
            continue  # Dagster's own exception: an assumed-present source never materialized
        if recorded != current:
            causes.append(f"upstream {dep.to_user_string()} has a new data version")
    return causes


def _tagged_keys(tags: Mapping[str, str], prefix: str) -> dict[dg.AssetKey, str]:
    return {
        dg.AssetKey.from_user_string(name[len(prefix) :]): value
        for name, value in tags.items()
        if name.startswith(prefix)
    }


def _upstream_first(specs: Mapping[dg.AssetKey, dg.AssetSpec]) -> list[dg.AssetKey]:
    ordered: list[dg.AssetKey] = []
    seen: set[dg.AssetKey] = set()

    def visit(key: dg.AssetKey) -> None:
        if key in seen or key not in specs:
            return
        seen.add(key)
        for dep in specs[key].deps:
            visit(dep.asset_key)
        ordered.append(key)

    for key in specs:
        visit(key)
    return ordered


def _short(version: str) -> str:
    return version[:12]
