"""``HFDatasetDataSource``: rows from a dataset saved with ``Dataset.save_to_disk``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar

from ...cards import CITATION, DATASET_NAME, LICENSE, URL
from ...fingerprint import DataFile
from ..step import Step
from .data_source import DataSource
from .file_data_source import split_step_options

__all__ = ["HFDatasetDataSource"]


class HFDatasetDataSource(DataSource):
    """Rows of a ``save_to_disk`` folder (``load_from_disk``); writes them as ``_dataset``.

    ``HFDatasetDataSource(name, dataset_path)``. The columns come from the
    folder's ``dataset_info.json`` when the step is declared; its data files
    enter the fingerprint by content. A saved ``DatasetDict`` is refused: pass
    one split's folder.
    """

    ARGS: ClassVar = {"dataset_path": None}
    UNFINGERPRINTED_ARGS: ClassVar = frozenset({"dataset_path"})

    def __init__(self, name: str, dataset_path: str | os.PathLike, **kwargs: Any):
        options, unknown = split_step_options(kwargs)
        if unknown:
            raise TypeError(f"HFDatasetDataSource got unexpected arguments {sorted(unknown)}.")
        Step.__init__(self, name, args={"dataset_path": str(dataset_path)}, **options)

    @property
    def dataset_folder(self) -> Path:
        return Path(self.args["dataset_path"]).resolve()

    def validate(self) -> None:
        folder = self.dataset_folder
        if not folder.is_dir():
            raise self.error(
                f"the folder {str(folder)!r} does not exist. Fix: pass a folder written by "
                f"Dataset.save_to_disk (relative paths are read from {os.getcwd()!r}).",
                "dataset_path",
            )
        if (folder / "dataset_dict.json").exists():
            splits = sorted(p.name for p in folder.iterdir() if p.is_dir())
            raise self.error(
                f"{str(folder)!r} holds a DatasetDict with splits {splits}. Fix: pass one split's "
                f"folder, e.g. {str(folder / (splits[0] if splits else 'train'))!r}.",
                "dataset_path",
            )
        if not (folder / "state.json").exists():
            raise self.error(
                f"{str(folder)!r} is not a folder written by Dataset.save_to_disk (no state.json).",
                "dataset_path",
            )

    def _info(self) -> dict:
        try:
            with open(self.dataset_folder / "dataset_info.json") as handle:
                info = json.load(handle)
        except (OSError, ValueError):
            return {}
        return info if isinstance(info, dict) else {}

    def declared_columns(self) -> list[str] | None:
        features = self._info().get("features")
        return list(features) if isinstance(features, dict) and features else None

    def fingerprint_content(self) -> dict:
        content = super().fingerprint_content()
        # state.json holds a fingerprint that changes on every save of the same rows.
        files = sorted(p for p in self.dataset_folder.iterdir() if p.is_file() and p.name != "state.json")
        content["data_files"] = [DataFile(path) for path in files]
        return content

    def run(self, context: Any) -> Any:
        from datasets import load_from_disk

        return load_from_disk(str(self.dataset_folder))

    def card_entries(self, context: Any) -> dict[str, list[str]]:
        info = self._info()
        entries = {DATASET_NAME: [info.get("dataset_name") or self.dataset_folder.name]}
        entries[URL] = [info["homepage"]] if info.get("homepage") else [str(self.dataset_folder)]
        if info.get("license"):
            entries[LICENSE] = [info["license"]]
        if info.get("citation"):
            entries[CITATION] = [info["citation"]]
        return entries
