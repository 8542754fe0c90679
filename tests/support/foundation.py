"""Helpers for the foundation tests: materialize steps, read step.json, ask Dagster
about staleness, count how often a step body ran."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import dagster as dg

from dreamer_dagster import dreamer_definitions
from dreamer_dagster.output_folder import OutputFolder
from dreamer_dagster.steps import DataSource, Step


def materialize(
    steps: Sequence[Step],
    instance: dg.DagsterInstance,
    output_folder: str | Path,
    only: Iterable[Step] | None = None,
) -> dg.ExecuteInProcessResult:
    """Materialize ``steps`` and everything upstream (or only ``only``) with the real
    IO manager, recording into ``instance``."""
    defs = dreamer_definitions(list(steps), output_folder=str(output_folder))
    assets = list(defs.assets)
    selection = [step.asset_key for step in only] if only is not None else None
    return dg.materialize(
        assets, instance=instance, resources=dict(defs.resources), selection=selection, raise_on_error=True
    )


def step_json(output_folder: str | Path, step: Step) -> dict:
    """The committed step.json of ``step`` (on a local disk or any fsspec URL)."""
    folder = OutputFolder(output_folder).step(step.folder)
    record = folder.files.read_json(folder.step_json_path)
    assert record is not None, f"{folder.step_json_path} is missing"
    return record


def rows(output_folder: str | Path, step: Step) -> dict[str, list]:
    """The committed ``_dataset`` of ``step`` as a dict of columns (a lazy step's: its upstream
    rows streamed through its recipe)."""
    import datasets

    folder = OutputFolder(output_folder).step(step.folder)
    if (folder.step_json() or {}).get("lazy"):
        from dreamer_dagster.steps.lazy import as_dataset

        return as_dataset(step.finished_output(str(output_folder))[0]).to_dict()
    if folder.output.remote:
        return folder.load_dataset().to_dict()
    return datasets.load_from_disk(str(folder.dataset_path)).to_dict()


def exists(output_folder: str | Path, *parts: str) -> bool:
    """Whether ``<output_folder>/<parts...>`` exists (on a local disk or any fsspec URL)."""
    folder = OutputFolder(output_folder)
    path = folder.root
    for part in parts:
        path = path / part
    return folder.files.exists(path)


def stale_statuses(instance: dg.DagsterInstance, steps: Sequence[Step]) -> dict[str, str]:
    """Dagster's own stale status (FRESH / STALE / MISSING) of every step, by asset key."""
    from dagster._utils.test.data_versions import get_stale_status_resolver

    defs = dreamer_definitions(list(steps))
    resolver = get_stale_status_resolver(instance, list(defs.assets))
    return {asset.key.to_user_string(): resolver.get_status(asset.key).value for asset in defs.assets}


def materialization_metadata(result: dg.ExecuteInProcessResult, step: Step) -> dict[str, Any]:
    [event] = result.asset_materializations_for_node(step.key)
    return {key: value.value for key, value in event.metadata.items()}


def counting_source(name: str, counter: Path, values: list[str], **kwargs: Any) -> DataSource:
    """A generator-function DataSource that appends a line to ``counter`` each time it runs."""

    path = str(counter)  # a str: a Path to an existing file would enter the fingerprint by content

    def generate():
        with open(path, "a") as handle:
            handle.write("ran\n")
        for value in values:
            yield {"text": value}

    return DataSource(name, generate, columns=["text"], **kwargs)


def runs(counter: Path) -> int:
    return len(counter.read_text().splitlines()) if counter.exists() else 0
