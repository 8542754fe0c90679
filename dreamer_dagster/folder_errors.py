"""Failed writes in the output folder as :class:`~dreamer_dagster.errors.OutputFolderError`:
a full disk, a read-only or locked folder, an output folder path that is a file, each
with the folder and the fix; and the early check that the folder can be written at all
(``check_writable``)."""

from __future__ import annotations

import errno
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import OutputFolderError
from .layout import LOCKS

if TYPE_CHECKING:
    from .output_folder import OutputFolder

__all__ = ["check_writable", "folder_errors", "output_folder_error"]

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
_NOT_WRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)


def output_folder_error(
    error: BaseException, root: Path, step_name: str | None = None
) -> OutputFolderError | None:
    """The :class:`OutputFolderError` for a write that failed in the output folder
    ``root``, or None when ``error`` is not such a failure."""
    code = getattr(error, "errno", None)
    text = str(error)
    filename = getattr(error, "filename", None)
    inside = filename is None or str(filename).startswith(str(root)) or not os.path.isabs(str(filename))
    step = f"Step {step_name!r}: " if step_name else ""
    if code in _NO_SPACE or "No space left on device" in text or "Disk quota exceeded" in text:
        return OutputFolderError(
            f"{step}the disk of the output folder {root} is full ({text}). Nothing was committed; the "
            "unfinished work folder was removed, and answers already received are in the model cache. "
            "Fix: free space (or point output_folder= at a larger disk) and run again."
        )
    if code == errno.ENOTDIR or (code == errno.EEXIST and root.exists() and not root.is_dir()):
        return OutputFolderError(
            f"{step}the output folder {root} (or a folder above it) is a file, not a folder ({text}). "
            "Fix: pass a folder path as output_folder=, or move the file away."
        )
    if code in _NOT_WRITABLE and inside:
        what = (
            "is on a read-only filesystem"
            if code == errno.EROFS
            else "is locked or not writable by this user"
        )
        return OutputFolderError(
            f"{step}the output folder {root} {what} ({text}). Nothing was committed. Fix: make it "
            "writable (remount it read-write, `chattr -i`, `chmod u+w`), or point output_folder= at "
            "a writable folder."
        )
    return None


@contextmanager
def folder_errors(root: Path, step_name: str | None = None) -> Iterator[None]:
    """Within the block, a failed write in the output folder raises :class:`OutputFolderError`."""
    try:
        yield
    except OutputFolderError:
        raise
    except Exception as error:
        translated = output_folder_error(error, root, step_name)
        if translated is None:
            raise
        raise translated from error


def check_writable(output: OutputFolder, step_name: str | None = None) -> None:
    """Fail early, with the fix, when the output folder (or the step's folder in it)
    cannot be written: a path that is a file, a read-only or locked folder, a bucket
    that does not exist or refuses the credentials."""
    if output.remote:
        _check_remote_writable(output, step_name)
        return
    root = output.root
    if root.exists() and not root.is_dir():
        raise OutputFolderError(
            f"The output folder {root} is a file, not a folder. Fix: pass a folder path as "
            "output_folder= (Pipeline(...), dreamer_definitions(...) or DreamerIOManager(...)), or "
            "move the file away."
        )
    targets = [root]
    if step_name is not None and (root / step_name).is_dir():
        targets.append(root / step_name)
    try:
        root.mkdir(parents=True, exist_ok=True)
        for folder in targets:
            probe = folder / f".write-check-{os.getpid()}-{uuid.uuid4().hex}"
            probe.write_bytes(b"")
            probe.unlink()
    except OSError as error:
        raise output_folder_error(error, root, step_name) or error from error


def _check_remote_writable(output: OutputFolder, step_name: str | None) -> None:
    probe = output.root / LOCKS / f".write-check-{uuid.uuid4().hex}"
    try:
        output.files.write_bytes(probe, b"")
        output.files.remove_file(probe)
    except Exception as error:
        step = f"Step {step_name!r}: " if step_name else ""
        raise OutputFolderError(
            f"{step}the output folder {output.url} cannot be written ({type(error).__name__}: {error}). "
            "Fix: check that the bucket exists and that the credentials (AWS_ACCESS_KEY_ID / "
            "AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL for an S3-compatible server, or "
            "storage_options=) allow writing to it."
        ) from error
