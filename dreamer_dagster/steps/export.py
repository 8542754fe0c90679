"""Export methods every step has: a dict or list, JSON, CSV, a saved HF dataset, the HF Hub.

Called inside the step's ``Pipeline`` block, an export is a step of its own (see
:mod:`~dreamer_dagster.steps.export_step`): in a file Dagster loads, it becomes an
export asset downstream of the step; in a running script, it materializes and the
call returns what DataDreamer returns. ``export_to_dict`` / ``export_to_list`` hand
rows to the script, so they only work where the data can be read.

Called after the block (or on a step declared outside any block), an export runs
at once on the finished output folder: it reads the step's committed ``_dataset``
(``output_folder=`` names the folder; by default the folder of the ``Pipeline``
block the step was declared in, else ``./output``) and refuses a step that is not
materialized with its current fingerprint. Sizes split the rows as ``splits()``
does: in row order, as DataDreamer cuts them.
"""

from __future__ import annotations

import functools
import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..cards import CITATION, DATASET_NAME, LICENSE, MODEL_NAME, card_markdown, card_values
from ..errors import StepOutputError

if TYPE_CHECKING:
    from .step import Step

__all__ = ["ExportMethods", "NotMaterializedError", "export_call", "hub_readme"]

LIBRARY_NAME = "dreamer-dagster"
_SIZE_CATEGORIES = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
)
_LICENSE_ID = re.compile(r"^[a-z0-9][a-z0-9.+\-]*$")


class NotMaterializedError(FileNotFoundError, StepOutputError):
    """A step's output folder holds no finished output with the step's fingerprint."""


def export_call(method: Callable) -> Callable:
    """An export method that, called inside the step's active ``Pipeline`` block, becomes an
    export step (:func:`~dreamer_dagster.steps.export_step.declare_export`); elsewhere it
    runs at once on the finished output folder."""

    @functools.wraps(method)
    def export(self: Step, *args: Any, **kwargs: Any) -> Any:
        pipeline = self.pipeline
        if pipeline is not None and pipeline.is_active:
            from .export_step import declare_export

            return declare_export(self, method, args, kwargs)
        return method(self, *args, **kwargs)

    return export


class ExportMethods:
    """Mixin: DataDreamer's ``export_to_*`` and ``publish_to_hf_hub`` on a finished step."""

    # -- reading the finished output --------------------------------------------------

    def export_folder(self: Step, output_folder: str | os.PathLike | None = None) -> Any:
        """The output folder exports read (an :class:`~dreamer_dagster.output_folder.OutputFolder`):
        the argument, the step's ``Pipeline`` folder, the enclosing ``Pipeline`` block's
        folder, or ``./output``."""
        from ..output_folder import OutputFolder

        pipeline = self.pipeline
        if output_folder is None:
            output_folder = self.pipeline_output_folder
        if output_folder is None:
            from ..pipeline import Pipeline

            pipeline = Pipeline._active[-1] if Pipeline._active else None
            output_folder = pipeline.output_folder if pipeline is not None else "./output"
        return OutputFolder(output_folder, getattr(pipeline, "storage_options", None) or None)

    def finished_record(self: Step, output_folder: str | os.PathLike | None = None) -> tuple[Any, dict]:
        """``(step folder, step.json record)`` of this step's finished output."""
        folder = self.export_folder(output_folder).step(self.folder)
        record = folder.step_json()
        command = f"`dagster asset materialize --select {self.key} -f <your definitions file>`"
        if record is None:
            raise NotMaterializedError(
                f"Step {self.name!r} is not materialized in {str(folder.root)!r} (no "
                f"{self.folder}/step.json). Fix: materialize it first, e.g. {command}, or pass "
                "output_folder= to name the folder it was written to."
            )
        if record.get("fingerprint") != self.fingerprint:
            raise NotMaterializedError(
                f"Step {self.name!r}: {str(folder.path)!r} holds the output of another "
                f"configuration (fingerprint {record.get('fingerprint')}; this declaration is "
                f"{self.fingerprint}). Fix: materialize it again, e.g. {command}."
            )
        return folder, record

    def finished_output(self: Step, output_folder: str | os.PathLike | None = None) -> tuple[Any, dict]:
        """``(dataset, step.json record)`` of this step's finished output."""
        folder, record = self.finished_record(output_folder)
        if record.get("model"):
            raise TypeError(f"Step {self.name!r} outputs a trained model, not a dataset to export.")
        if record.get("lazy"):  # computed on demand from its upstream (steps/lazy.py)
            from ..io_manager import load_finished
            from .lazy import load_lazy

            return load_lazy(folder, record, load_finished), record
        dataset = folder.load_dataset(record)
        if record.get("pickled"):  # read after the integrity check of load_dataset
            from ..pickling import unpickled

            dataset = unpickled(dataset)
        return dataset, record

    def _export_splits(
        self: Step,
        train_size: float | int | None,
        validation_size: float | int | None,
        test_size: float | int | None,
        stratify_by_column: str | None,
        output_folder: str | os.PathLike | None,
    ) -> tuple[dict[str, Any], dict]:
        """The finished dataset cut into named splits (one ``train`` split without sizes)."""
        from .operations.splits import check_split_sizes, split_indices

        dataset, record = self.finished_output(output_folder)
        sizes = {"train": train_size, "validation": validation_size, "test": test_size}
        if all(size is None for size in sizes.values()):
            return {"train": dataset}, record
        problem = check_split_sizes(sizes)
        if problem is not None:
            raise ValueError(f"Step {self.name!r}, export argument {problem[0]!r}: {problem[1]}")
        if stratify_by_column is not None and stratify_by_column not in dataset.column_names:
            raise ValueError(
                f"Step {self.name!r}, export argument 'stratify_by_column': no column "
                f"{stratify_by_column!r}; the columns are {dataset.column_names}."
            )
        stratify = dataset[stratify_by_column] if stratify_by_column is not None else None
        try:
            indices = split_indices(len(dataset), sizes, stratify)
        except ValueError as error:
            raise ValueError(f"Step {self.name!r}, export argument 'train_size': {error}") from None
        return {split: dataset.select(rows) for split, rows in indices.items()}, record

    # -- local exports ------------------------------------------------------------------

    @export_call
    def export_to_dict(
        self: Step,
        train_size: float | int | None = None,
        validation_size: float | int | None = None,
        test_size: float | int | None = None,
        stratify_by_column: str | None = None,
        writer_batch_size: int | None = 1000,
        save_num_proc: int | None = None,
        save_num_shards: int | None = None,
        output_folder: str | os.PathLike | None = None,
    ) -> dict:
        """The rows as a dict of columns (a dict of those per split when sizes are given)."""
        splits, _ = self._export_splits(
            train_size, validation_size, test_size, stratify_by_column, output_folder
        )
        if len(splits) == 1:
            return next(iter(splits.values()))[:]
        return {split: dataset[:] for split, dataset in splits.items()}

    @export_call
    def export_to_list(
        self: Step,
        train_size: float | int | None = None,
        validation_size: float | int | None = None,
        test_size: float | int | None = None,
        stratify_by_column: str | None = None,
        writer_batch_size: int | None = 1000,
        save_num_proc: int | None = None,
        save_num_shards: int | None = None,
        output_folder: str | os.PathLike | None = None,
    ) -> list | dict:
        """The rows as a list of dicts (a dict of those per split when sizes are given)."""
        splits, _ = self._export_splits(
            train_size, validation_size, test_size, stratify_by_column, output_folder
        )
        if len(splits) == 1:
            return list(next(iter(splits.values())))
        return {split: list(dataset) for split, dataset in splits.items()}

    @export_call
    def export_to_json(
        self: Step,
        path: str | os.PathLike,
        train_size: float | int | None = None,
        validation_size: float | int | None = None,
        test_size: float | int | None = None,
        stratify_by_column: str | None = None,
        writer_batch_size: int | None = 1000,
        save_num_proc: int | None = None,
        save_num_shards: int | None = None,
        output_folder: str | os.PathLike | None = None,
        **to_json_kwargs: Any,
    ) -> str | dict[str, str]:
        """Writes the rows as JSON Lines to ``path``; returns the path.

        With sizes, each split goes to ``<stem>.train.json``, ``<stem>.val.json``,
        ``<stem>.test.json`` beside ``path`` and a dict of those paths is returned.
        """
        splits, _ = self._export_splits(
            train_size, validation_size, test_size, stratify_by_column, output_folder
        )
        return _write_files(
            splits, path, lambda ds, p: ds.to_json(p, num_proc=save_num_proc, **to_json_kwargs)
        )

    @export_call
    def export_to_csv(
        self: Step,
        path: str | os.PathLike,
        sep: str = ",",
        train_size: float | int | None = None,
        validation_size: float | int | None = None,
        test_size: float | int | None = None,
        stratify_by_column: str | None = None,
        writer_batch_size: int | None = 1000,
        save_num_proc: int | None = None,
        save_num_shards: int | None = None,
        output_folder: str | os.PathLike | None = None,
        **to_csv_kwargs: Any,
    ) -> str | dict[str, str]:
        """Writes the rows as CSV (with a header, no index) to ``path``; returns the
        path, or a dict of per-split paths as :meth:`export_to_json` does."""
        splits, _ = self._export_splits(
            train_size, validation_size, test_size, stratify_by_column, output_folder
        )
        to_csv_kwargs.setdefault("index", False)
        return _write_files(
            splits, path, lambda ds, p: ds.to_csv(p, sep=sep, num_proc=save_num_proc, **to_csv_kwargs)
        )

    @export_call
    def export_to_hf_dataset(
        self: Step,
        path: str | os.PathLike,
        train_size: float | int | None = None,
        validation_size: float | int | None = None,
        test_size: float | int | None = None,
        stratify_by_column: str | None = None,
        writer_batch_size: int | None = 1000,
        save_num_proc: int | None = None,
        save_num_shards: int | None = None,
        output_folder: str | os.PathLike | None = None,
    ) -> Any:
        """Saves the rows with ``save_to_disk`` at ``path``: a ``Dataset``, or a
        ``DatasetDict`` of the splits when sizes are given. Returns what it saved."""
        from datasets import DatasetDict

        splits, _ = self._export_splits(
            train_size, validation_size, test_size, stratify_by_column, output_folder
        )
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        if len(splits) == 1:
            result = next(iter(splits.values()))
            result.save_to_disk(str(path), num_proc=save_num_proc, num_shards=save_num_shards)
        else:
            result = DatasetDict(splits)
            result.save_to_disk(str(path), num_proc=save_num_proc)
        return result

    # -- the Hugging Face Hub -----------------------------------------------------------

    def save_hf_hub_files(
        self: Step,
        folder: str | os.PathLike,
        train_size: float | int | None = None,
        validation_size: float | int | None = None,
        test_size: float | int | None = None,
        stratify_by_column: str | None = None,
        is_synthetic: bool | None = None,
        repo_id: str | None = None,
        output_folder: str | os.PathLike | None = None,
    ) -> Path:
        """Writes what :meth:`publish_to_hf_hub` uploads into ``folder``.

        ``data/<split>-00000-of-00001.parquet`` for each split, ``step.json`` (the
        step's metadata and full data card) and ``README.md``: a dataset card
        whose YAML front matter names the splits' files, the source datasets,
        the licenses, the models (as tags) and a ``synthetic`` tag when a model
        produced the rows (``is_synthetic=None`` decides from the data card).
        """
        splits, record = self._export_splits(
            train_size, validation_size, test_size, stratify_by_column, output_folder
        )
        target = Path(folder)
        (target / "data").mkdir(parents=True, exist_ok=True)
        for split, dataset in splits.items():
            dataset.to_parquet(str(target / "data" / f"{split}-00000-of-00001.parquet"))
        with open(target / "step.json", "w") as handle:
            json.dump(record, handle, indent=2, default=str)
        readme = hub_readme(record, {s: len(d) for s, d in splits.items()}, repo_id, is_synthetic)
        (target / "README.md").write_text(readme, encoding="utf-8")
        return target

    @export_call
    def publish_to_hf_hub(
        self: Step,
        repo_id: str,
        branch: str | None = None,
        private: bool = False,
        token: str | None = None,
        train_size: float | int | None = None,
        validation_size: float | int | None = None,
        test_size: float | int | None = None,
        stratify_by_column: str | None = None,
        writer_batch_size: int | None = 1000,
        save_num_proc: int | None = None,
        save_num_shards: int | None = None,
        is_synthetic: bool | None = None,
        output_folder: str | os.PathLike | None = None,
        **kwargs: Any,
    ) -> str:
        """Uploads the step's rows and dataset card to a Hub dataset repo; returns its URL.

        The token is ``token`` or the ``HF_TOKEN`` environment variable, read
        now and never logged. ``kwargs`` go to ``HfApi.upload_folder``.
        """
        from ..hub_upload import hub_repo, upload_to_hub

        api, repo_id = hub_repo(token, repo_id)
        with tempfile.TemporaryDirectory(prefix="dreamer-publish-") as folder:
            self.save_hf_hub_files(
                folder,
                train_size=train_size,
                validation_size=validation_size,
                test_size=test_size,
                stratify_by_column=stratify_by_column,
                is_synthetic=is_synthetic,
                repo_id=repo_id,
                output_folder=output_folder,
            )
            upload_to_hub(
                api,
                folder,
                repo_id,
                "dataset",
                private=private,
                branch=branch,
                default_commit_message=f"Upload {self.name}",
                delete_patterns=["data/*"],
                **kwargs,
            )
        return f"https://huggingface.co/datasets/{repo_id}"


def _write_files(splits: dict[str, Any], path: str | os.PathLike, write: Any) -> str | dict[str, str]:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if len(splits) == 1:
        write(next(iter(splits.values())), str(path))
        return str(path)
    paths = {}
    for split, dataset in splits.items():
        label = "val" if split == "validation" else split
        paths[split] = str(path.with_name(f"{path.stem}.{label}{path.suffix}"))
        write(dataset, paths[split])
    return paths


def _size_category(num_rows: int) -> str:
    for limit, label in _SIZE_CATEGORIES:
        if num_rows < limit:
            return label
    return "n>1B"


def hub_readme(
    record: dict, split_rows: dict[str, int], repo_id: str | None = None, is_synthetic: bool | None = None
) -> str:
    """A Hub dataset card (README.md) for a finished step's ``step.json`` record."""
    import yaml

    card = record.get("data_card") or {}
    models = card_values(card, MODEL_NAME)
    datasets = card_values(card, DATASET_NAME)
    licenses = card_values(card, LICENSE)
    citations = card_values(card, CITATION)
    if is_synthetic is None:
        is_synthetic = bool(models)
    license_ids = [value.lower() for value in licenses if _LICENSE_ID.match(value.lower())]
    front: dict[str, Any] = {
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": split, "path": f"data/{split}-*"} for split in split_rows],
            }
        ],
        "library_name": LIBRARY_NAME,
        "size_categories": [_size_category(sum(split_rows.values()))],
    }
    if datasets:
        front["source_datasets"] = datasets
    if license_ids:
        front["license"] = license_ids if len(license_ids) > 1 else license_ids[0]
    elif licenses:
        front["license"] = "other"
    front["tags"] = [LIBRARY_NAME] + (["synthetic"] if is_synthetic else []) + models
    title = repo_id.split("/")[-1] if repo_id else record.get("name", "dataset")
    lines = [
        "---",
        yaml.safe_dump(front, sort_keys=False, allow_unicode=True).rstrip(),
        "---",
        f"# Dataset Card for {title}",
        "",
        f"The {'synthetic ' if is_synthetic else ''}output of the step **{record.get('name')}** "
        f"({record.get('type')}, fingerprint `{record.get('fingerprint')}`), made with "
        f"{LIBRARY_NAME} {record.get('version', '')}. The step's metadata, its arguments and the "
        "full data card of every step behind it are in [step.json](step.json).",
        "",
        "## Splits",
        "",
        "| split | rows |",
        "|---|---|",
        *[f"| {split} | {rows} |" for split, rows in split_rows.items()],
        "",
        "## Columns",
        "",
        *[f"- `{name}`: {kind}" for name, kind in (record.get("schema") or {}).items()],
        "",
    ]
    if models:
        lines += ["## Models", "", *[f"- {model}" for model in models], ""]
    if datasets:
        lines += ["## Source datasets", "", *[f"- {name}" for name in datasets], ""]
    if licenses:
        lines += ["## Licenses", "", *[f"- {value}" for value in licenses], ""]
    if citations:
        lines += ["## Citations", "", *[f"```\n{value}\n```" for value in citations], ""]
    markdown = card_markdown(card).replace("# Data Card", "## Data Card", 1)
    lines += [markdown.replace("\n## ", "\n### "), ""]
    return "\n".join(lines)
