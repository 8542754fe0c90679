"""``FileDataSource``: the base of data sources that read local data files."""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from ...cards import DATASET_NAME, URL
from ...errors import DataFileError
from ...fingerprint import DataFile, hash_file
from ..step import Step
from .data_source import DataSource

__all__ = ["STEP_OPTIONS", "FileDataSource", "split_step_options"]

# Keyword arguments every step takes; the rest of a data source's ``**kwargs``
# are passed on to ``datasets.load_dataset`` (DataDreamer's ``config_kwargs``).
STEP_OPTIONS = frozenset(
    {
        "progress_interval",
        "force",
        "verbose",
        "log_level",
        "save_num_proc",
        "save_num_shards",
        "background",
    }
)


def split_step_options(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``kwargs`` split into (step options, the rest)."""
    options = {k: v for k, v in kwargs.items() if k in STEP_OPTIONS}
    rest = {k: v for k, v in kwargs.items() if k not in STEP_OPTIONS}
    return options, rest


class FileDataSource(DataSource):
    """Rows read from local data files by a ``datasets`` builder; writes ``_dataset``.

    ``data_folder`` alone takes every file in it (recursively) with one of the
    class's extensions; ``data_files`` (a path, a glob, or a list of them) is
    read relative to ``data_folder`` when both are given. Each file enters the
    fingerprint by its content hash, so editing a file re-runs the step.
    """

    BUILDER: ClassVar[str] = ""
    EXTENSIONS: ClassVar[tuple[str, ...]] = ()
    ARGS: ClassVar = {"data_folder": None, "data_files": None, "config_kwargs": None}
    UNFINGERPRINTED_ARGS: ClassVar = frozenset({"data_folder", "data_files"})

    def __init__(
        self,
        name: str,
        data_folder: str | None = None,
        data_files: str | Sequence[str] | None = None,
        **kwargs: Any,
    ):
        options, config_kwargs = split_step_options(kwargs)
        self.data_file_paths: list[Path] = []
        Step.__init__(
            self,
            name,
            args={
                "data_folder": _plain_path(data_folder),
                "data_files": _plain_files(data_files),
                "config_kwargs": config_kwargs,
                **self.extra_args(),
            },
            **options,
        )

    def extra_args(self) -> dict[str, Any]:
        """Format options a subclass adds to its args (``sep`` for CSV)."""
        return {}

    # -- declaration ----------------------------------------------------------------

    def validate(self) -> None:
        self.data_file_paths = self._resolve_files()
        for path in self.data_file_paths:
            if path.stat().st_size == 0:
                raise self.error(
                    f"the data file {str(path)!r} is empty. Fix: give a file with rows, or leave it out.",
                    "data_files",
                )
        #: Each file's content hash when declared: what the fingerprint promises.
        self.data_file_hashes = {path: hash_file(path) for path in self.data_file_paths}

    def _resolve_files(self) -> list[Path]:
        folder, files = self.args["data_folder"], self.args["data_files"]
        if isinstance(files, dict):
            raise self.error(
                "a dict of splits is not supported; a data source is one table. Fix: declare one "
                "data source per split, or use .splits(...) on one data source.",
                "data_files",
            )
        if folder is None and files is None:
            raise self.error("give data_folder, data_files, or both.", "data_files")
        if folder is not None and not Path(folder).is_dir():
            raise self.error(
                f"the folder {str(Path(folder).resolve())!r} does not exist. Fix: pass an existing "
                f"folder (relative paths are read from the working directory, {os.getcwd()!r}).",
                "data_folder",
            )
        if files is None:
            found = sorted(
                path
                for path in Path(folder).rglob("*")
                if path.is_file()
                and path.suffix.lower() in self.EXTENSIONS
                and not any(part.startswith(".") for part in path.relative_to(folder).parts)
            )
            if not found:
                raise self.error(
                    f"the folder {folder!r} holds no {'/'.join(self.EXTENSIONS)} file. Fix: pass "
                    "data_files=... to name the files to read.",
                    "data_folder",
                )
            return [path.resolve() for path in found]
        resolved: list[Path] = []
        for entry in [files] if isinstance(files, str) else list(files):
            path = Path(folder) / entry if folder is not None else Path(entry)
            if glob.has_magic(str(path)):
                matches = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
                if not matches:
                    raise self.error(f"the pattern {str(path)!r} matches no file.", "data_files")
                resolved.extend(match.resolve() for match in matches)
            elif not path.is_file():
                raise self.error(
                    f"the data file {str(path.resolve())!r} does not exist. Fix: check the path "
                    f"(relative paths are read from "
                    f"{'data_folder' if folder is not None else repr(os.getcwd())}).",
                    "data_files",
                )
            else:
                resolved.append(path.resolve())
        return resolved

    def declared_columns(self) -> list[str] | None:
        columns: list[str] = []
        for path in self.data_file_paths:
            found = self.peek_columns(path)
            if found is None:
                return None
            columns.extend(column for column in found if column not in columns)
        return columns

    def peek_columns(self, path: Path) -> list[str] | None:
        """The columns of one data file, read cheaply; None when unknown."""
        return None

    def fingerprint_content(self) -> dict:
        content = super().fingerprint_content()
        content["data_files"] = [DataFile(path, self.data_file_hashes[path]) for path in self.data_file_paths]
        return content

    def check_files_unchanged(self) -> None:
        """Fail when a data file changed (or went) since the step was declared: the output
        would be committed under a fingerprint that promises the old content."""
        for path, declared in self.data_file_hashes.items():
            try:
                current = hash_file(path)
            except OSError as error:
                raise DataFileError(
                    f"Step {self.name!r} ({type(self).__name__}), argument 'data_files': the data file "
                    f"{str(path)!r} cannot be read any more ({error}). Fix: put it back, then reload the "
                    "definitions and materialize again."
                ) from error
            if current != declared:
                raise DataFileError(
                    f"Step {self.name!r} ({type(self).__name__}), argument 'data_files': the data file "
                    f"{str(path)!r} changed after the step was declared (its content hash is no longer "
                    "the one in the fingerprint). Fix: reload the definitions (`dagster dev`: Reload "
                    "definitions; the CLI reloads them on every command) and materialize again."
                )

    # -- running --------------------------------------------------------------------

    def builder_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``datasets.load_dataset`` beyond the files."""
        return dict(self.args["config_kwargs"] or {})

    def run(self, context: Any) -> Any:
        from datasets import load_dataset

        self.check_files_unchanged()
        try:
            return load_dataset(
                self.BUILDER,
                data_files=[str(path) for path in self.data_file_paths],
                split="train",
                cache_dir=str(context.staged / "hf_cache"),
                **self.builder_kwargs(),
            )
        except Exception as error:
            files = ", ".join(repr(str(path)) for path in self.data_file_paths)
            raise DataFileError(
                f"Step {self.name!r} ({type(self).__name__}), argument 'data_files': {files} could not "
                f"be read as {self.BUILDER.upper()}: {type(error).__name__}: {_cause_text(error)}. Fix: "
                f"check that each file is valid {self.BUILDER.upper()} (and not empty), or use the data "
                "source for its format."
            ) from error

    def card_entries(self, context: Any) -> dict[str, list[str]]:
        folder = self.args["data_folder"]
        if folder is not None:
            names = [Path(folder).resolve().name]
            urls = [str(Path(folder).resolve())]
        else:
            names = [path.name for path in self.data_file_paths]
            urls = [str(path) for path in self.data_file_paths]
        return {DATASET_NAME: names, URL: urls}


def _cause_text(error: BaseException) -> str:
    """The message of ``error``, followed down its causes (``datasets`` wraps the parser's)."""
    texts = [str(error)]
    current = error.__cause__ or error.__context__
    while current is not None and len(texts) < 4:
        texts.append(f"{type(current).__name__}: {current}")
        current = current.__cause__ or current.__context__
    return " <- ".join(text for text in texts if text)


def _plain_path(value: Any) -> Any:
    return str(value) if isinstance(value, os.PathLike) else value


def _plain_files(value: Any) -> Any:
    if isinstance(value, (str, os.PathLike)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [str(item) for item in value]
    return value
