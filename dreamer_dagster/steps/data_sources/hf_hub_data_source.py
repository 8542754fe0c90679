"""``HFHubDataSource``: rows from a dataset on the Hugging Face Hub (or a local dataset folder)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

from ...cards import CITATION, DATASET_CARD, DATASET_NAME, LICENSE, URL
from ...fingerprint import DataFile
from ..step import Step
from .data_source import DataSource
from .file_data_source import split_step_options

__all__ = ["HFHubDataSource", "dataset_card_fields"]


class HFHubDataSource(DataSource):
    """One split of ``datasets.load_dataset(path, ...)``; writes it as ``_dataset``.

    ``HFHubDataSource(name, path, config_name=None, split=None, revision=None,
    trust_remote_code=False, streaming=False, **config_kwargs)``, DataDreamer's order. ``path`` is a Hub dataset id or a local
    folder that ``load_dataset`` reads; a local folder's files enter the
    fingerprint by content. With ``split=None`` the dataset must have one split.
    ``streaming=True`` streams the rows to disk instead of downloading the
    whole dataset first. ``trust_remote_code`` is accepted and recorded, and
    changes nothing: ``datasets`` 4 and later run no dataset scripts (a dataset
    that needs one fails with ``datasets``' own error), so it is not
    fingerprinted either. The data card takes the dataset's name, card URL,
    license and citation (from its README when it is available locally).
    """

    ARGS: ClassVar = {
        "path": None,
        "config_name": None,
        "split": None,
        "revision": None,
        "trust_remote_code": False,
        "streaming": False,
        "config_kwargs": None,
    }
    #: ``datasets`` 4+ runs no dataset scripts: ``trust_remote_code`` cannot change the rows.
    UNFINGERPRINTED_ARGS: ClassVar = frozenset({"trust_remote_code"})

    def __init__(
        self,
        name: str,
        path: str,
        config_name: str | None = None,
        split: str | None = None,
        revision: str | None = None,
        trust_remote_code: bool = False,
        streaming: bool = False,
        **kwargs: Any,
    ):
        options, config_kwargs = split_step_options(kwargs)
        Step.__init__(
            self,
            name,
            args={
                "path": str(path) if isinstance(path, os.PathLike) else path,
                "config_name": config_name,
                "split": None if split is None else str(split),
                "revision": None if revision is None else str(revision),
                "trust_remote_code": trust_remote_code,
                "streaming": streaming,
                "config_kwargs": config_kwargs,
            },
            **options,
        )

    @property
    def local_folder(self) -> Path | None:
        """The dataset's folder when ``path`` is a local folder, else None."""
        path = Path(os.path.expanduser(self.args["path"]))
        return path.resolve() if path.is_dir() else None

    def validate(self) -> None:
        path = self.args["path"]
        if not isinstance(path, str) or not path:
            raise self.error("give a Hub dataset id ('user/name') or a local dataset folder.", "path")
        looks_local = path.startswith((".", "/", "~")) or path.count("/") > 1
        if self.local_folder is None and looks_local:
            raise self.error(
                f"the local folder {path!r} does not exist. Fix: pass an existing folder, or a Hub "
                "dataset id such as 'user/name'.",
                "path",
            )
        for flag in ("trust_remote_code", "streaming"):
            if not isinstance(self.args[flag], bool):
                raise self.error(f"must be True or False, got {self.args[flag]!r}.", flag)

    def declared_columns(self) -> list[str] | None:
        return None

    def fingerprint_content(self) -> dict:
        content = super().fingerprint_content()
        folder = self.local_folder
        if folder is not None:
            content["path"] = folder.name
            content["data_files"] = {
                str(file.relative_to(folder)): DataFile(file)
                for file in sorted(folder.rglob("*"))
                if file.is_file() and not any(p.startswith(".") for p in file.relative_to(folder).parts)
            }
        return content

    def run(self, context: Any) -> Any:
        from datasets import DatasetDict, IterableDatasetDict, load_dataset

        folder = self.local_folder
        extra: dict[str, Any] = {}
        if folder is not None:
            # A local folder is read into the staging folder, not the user's HF cache.
            extra["cache_dir"] = str(context.staged / "hf_cache")
        result = load_dataset(
            str(folder) if folder is not None else self.args["path"],
            name=self.args["config_name"],
            split=self.args["split"],
            revision=self.args["revision"],
            streaming=self.args["streaming"],
            **extra,
            **(self.args["config_kwargs"] or {}),
        )
        if isinstance(result, (DatasetDict, IterableDatasetDict)):
            if len(result) != 1:
                raise ValueError(
                    f"Step {self.name!r}: {self.args['path']!r} has the splits {sorted(result)}. "
                    "Fix: choose one with split=..."
                )
            result = next(iter(result.values()))
        self._record_info(getattr(result, "info", None), context)
        if self.args["streaming"]:
            return iter(result)
        return result

    def _record_info(self, info: Any, context: Any) -> None:
        if info is None:
            return
        if getattr(info, "homepage", None):
            context.add_card_entry(URL, info.homepage)
        if getattr(info, "license", None):
            context.add_card_entry(LICENSE, info.license)
        if getattr(info, "citation", None):
            context.add_card_entry(CITATION, info.citation.strip())

    def card_entries(self, context: Any) -> dict[str, list[str]]:
        path = self.args["path"]
        folder = self.local_folder
        entries: dict[str, list[str]] = {DATASET_NAME: [folder.name if folder is not None else path]}
        if folder is not None:
            entries[URL] = [str(folder)]
            readme = folder / "README.md"
        else:
            entries[DATASET_CARD] = [f"https://huggingface.co/datasets/{path}"]
            readme = _cached_hub_readme(path, self.args["revision"])
        fields = dataset_card_fields(readme) if readme is not None else {}
        licenses = fields.get("license")
        if licenses:
            entries[LICENSE] = [
                str(item) for item in (licenses if isinstance(licenses, list) else [licenses])
            ]
        return entries


def _cached_hub_readme(repo_id: str, revision: str | None) -> Path | None:
    """The Hub dataset's README.md if it is in the local Hugging Face cache (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, "README.md", revision=revision, repo_type="dataset")
    except Exception:  # a malformed id or an unreadable cache: no card, not a failed step
        return None
    return Path(found) if isinstance(found, str) else None


def dataset_card_fields(readme: Path) -> dict:
    """The YAML front matter of a dataset card (README.md), or {}."""
    import yaml

    try:
        text = readme.read_text(encoding="utf-8")
    except OSError:
        return {}
    if not text.startswith("---"):
        return {}
    end = text.find("\n---", 3)
    if end < 0:
        return {}
    try:
        fields = yaml.safe_load(text[3:end])
    except yaml.YAMLError:
        return {}
    return fields if isinstance(fields, dict) else {}
