"""``DreamerIOManager``: steps in and out of DataDreamer's output folder.

It owns the output folder (see :mod:`~dreamer_dagster.output_folder`): it
commits each step's staged ``_dataset`` / ``_model`` and writes ``step.json``
last, loads finished steps for downstream steps (``load_from_disk``, or the
model folder's path for a trainer), and tells the models where the SQLite
model cache is. It also works with plain ``@dg.asset`` functions that return a
``datasets.Dataset``, a dict of columns or a list of rows.
"""

from __future__ import annotations

import datetime as _dt
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from .cards import card_markdown
from .output_folder import OutputFolder, StepFolder, dataset_data_version, folder_errors

__all__ = ["IO_MANAGER_KEY", "CommittedStep", "DreamerIOManager", "StagedStep", "step_metadata"]

IO_MANAGER_KEY = "dreamer_io_manager"


@dataclass
class StagedStep:
    """A step's finished work in a staging folder, waiting to be committed."""

    folder: StepFolder
    staged: Path
    record: dict


@dataclass
class CommittedStep:
    """A step whose folder already holds a finished output (reused or restored)."""

    folder: StepFolder
    record: dict = field(default_factory=dict)


def step_metadata(folder: StepFolder, record: dict) -> dict[str, Any]:
    """Materialization metadata: row count, schema, fingerprint, path, card, stats."""
    metadata: dict[str, Any] = {
        "dreamer/fingerprint": record.get("fingerprint"),
        "dreamer/path": dg.MetadataValue.path(str(folder.path)),
    }
    if record.get("num_rows") is not None:
        metadata["dagster/row_count"] = record["num_rows"]
    if record.get("schema"):
        metadata["dagster/column_schema"] = dg.TableSchema(
            columns=[dg.TableColumn(name=name, type=kind) for name, kind in record["schema"].items()]
        )
    if record.get("data_card"):
        metadata["dreamer/data_card"] = dg.MetadataValue.md(card_markdown(record["data_card"]))
    for name, value in (record.get("stats") or {}).items():
        metadata[f"dreamer/{name}"] = value
    if record.get("metrics_table"):
        rows = record["metrics_table"]
        columns = sorted({key for row in rows for key in row})
        metadata["dreamer/metrics"] = dg.MetadataValue.md(_markdown_table(columns, rows))
    return metadata


def _markdown_table(columns: list[str], rows: list[dict]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)


def dataset_schema(dataset: Any) -> dict[str, str]:
    return {name: str(feature) for name, feature in dataset.features.items()}


class DreamerIOManager(dg.ConfigurableIOManager):
    """Writes each asset to ``<output_folder>/<asset>/`` in DataDreamer's layout.

    ``<asset>/_dataset`` is ``save_to_disk`` output, ``<asset>/_model`` a trained
    model, and ``<asset>/step.json`` is written last, atomically: a folder without
    it is never loaded as finished.
    """

    output_folder: str = "./output"

    def folder(self) -> OutputFolder:
        return OutputFolder(self.output_folder)

    @property
    def cache_path(self) -> Path:
        return self.folder().cache_path

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        if isinstance(obj, StagedStep):
            try:
                with folder_errors(obj.folder.root, obj.folder.name):
                    obj.folder.commit(obj.staged, obj.record)
            except BaseException:
                shutil.rmtree(obj.staged, ignore_errors=True)
                raise
            return
        if isinstance(obj, CommittedStep):
            return
        self._write_plain_asset(context, obj)

    def _write_plain_asset(self, context: dg.OutputContext, obj: Any) -> None:
        """A plain ``@dg.asset`` that returned rows: write it as a step of its own."""
        import datasets

        if isinstance(obj, list):
            obj = datasets.Dataset.from_list(obj)
        elif isinstance(obj, dict):
            obj = datasets.Dataset.from_dict(obj)
        if not isinstance(obj, datasets.Dataset):
            raise TypeError(
                f"DreamerIOManager: asset {context.asset_key.to_user_string()} returned a "
                f"{type(obj).__name__}; return a datasets.Dataset, a dict of columns or a list of rows."
            )
        output = self.folder()
        name = "_".join(context.asset_key.path)
        step_folder = output.step(name)
        staged = output.staging(name)
        dataset = output.write_dataset(staged, obj)
        data_version = dataset_data_version(staged / "_dataset")
        record = {
            "name": name,
            "type": "asset",
            "fingerprint": context.definition_metadata.get("dreamer/fingerprint")
            if context.definition_metadata
            else None,
            "version": _library_version(),
            "datetime": _dt.datetime.now(_dt.UTC).isoformat(),
            "args": {},
            "inputs": {},
            "outputs": dataset.column_names,
            "num_rows": dataset.num_rows,
            "schema": dataset_schema(dataset),
            "data_version": data_version,
            "data_card": {},
        }
        record["fingerprint"] = record["fingerprint"] or data_version
        step_folder.commit(staged, record)
        context.add_output_metadata(step_metadata(step_folder, record))

    def load_input(self, context: dg.InputContext) -> Any:
        key = context.upstream_output.asset_key if context.upstream_output else context.asset_key
        name = "_".join(key.path)
        step_folder = self.folder().step(name)
        record = step_folder.step_json()
        if record is None:
            raise FileNotFoundError(
                f"Step {name!r} has no finished output in {step_folder.path} (no step.json). "
                f"Materialize it first, e.g. `dagster asset materialize --select {name}`."
            )
        expected = _declared_fingerprint(context)
        if expected is not None and record.get("fingerprint") != expected:
            # Reading it would compute this step from an output of another configuration
            # and commit that under a fingerprint that promises the declared one.
            raise FileNotFoundError(
                f"Step {name!r} is unsynced: {step_folder.path} holds the output of fingerprint "
                f"{record.get('fingerprint')}, but the step is declared with {expected}. "
                f"Materialize it first, e.g. `dagster asset materialize --select {name}`."
            )
        if record.get("model"):
            return str(step_folder.model_path)
        return step_folder.load_dataset()


def _declared_fingerprint(context: dg.InputContext) -> str | None:
    """The upstream step's declared fingerprint (its asset's metadata), if it is a step."""
    upstream = context.upstream_output
    if upstream is None:
        return None
    try:
        metadata = upstream.definition_metadata or {}
    except Exception:  # an upstream output context without definition metadata
        return None
    value = metadata.get("dreamer/fingerprint")
    value = getattr(value, "value", value)
    return value if isinstance(value, str) else None


def _library_version() -> str:
    from . import __version__

    return __version__
