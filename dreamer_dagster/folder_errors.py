"""Failed writes in the output folder as :class:`~dreamer_dagster.errors.OutputFolderError`:
a full disk, a read-only or locked folder, an output folder path that is a file, each
with the folder and the fix."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import OutputFolderError

__all__ = ["folder_errors", "output_folder_error"]

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
