"""What a trainer's ``train_model`` sees at run time, and where it resumes from.

:class:`TrainingRun` (plain, picklable data: resolved args, the splits as
Datasets, the staged ``_model`` folder, ``_checkpoints`` and the checkpoint to
resume from), :func:`latest_checkpoint` and :class:`TrainingDataError` (data
that cannot train a model).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import NonRetryableError

__all__ = ["TrainingDataError", "TrainingRun", "latest_checkpoint"]

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def latest_checkpoint(checkpoints_dir: str | Path) -> str | None:
    """The newest complete ``checkpoint-<step>`` folder under ``checkpoints_dir``, or None.

    A checkpoint counts when it holds ``trainer_state.json``, which the HF
    Trainer writes after the weights and optimizer state.
    """
    folder = Path(checkpoints_dir)
    if not folder.is_dir():
        return None
    found = []
    for child in folder.iterdir():
        match = _CHECKPOINT.match(child.name)
        if match and child.is_dir() and (child / "trainer_state.json").is_file():
            found.append((int(match.group(1)), child))
    return str(max(found)[1]) if found else None


class TrainingDataError(NonRetryableError):
    """A trainer's data cannot train a model (no rows, one class...); the message says why."""


@dataclass
class TrainingRun:
    """What :meth:`Trainer.train_model` sees: plain, picklable data.

    It travels to every worker process in distributed training, so it holds no
    Dagster object; ``log`` (the step's logger) is left behind when pickled.
    """

    step_name: str
    step_key: str
    fingerprint: str
    #: The trainer's args with every deferred value (a trainer used as
    #: ``model_name``, ``trainer.model_path``) resolved to a path.
    args: dict[str, Any]
    #: ``"train"`` / ``"validation"`` -> a ``datasets.Dataset`` (None when absent)
    #: whose columns are the input names less their prefix (``train_input`` -> ``input``).
    datasets: dict[str, Any]
    #: Write the trained model here; it becomes ``<output>/<trainer>/_model``.
    model_dir: Path
    #: ``<output>/<trainer>/_checkpoints``: resumable checkpoints.
    checkpoints_dir: Path
    #: The checkpoint to resume from (an unfinished run of this fingerprint), or None.
    resume_from_checkpoint: str | None
    #: A scratch folder, deleted after the commit.
    work_dir: Path
    log: Any = field(default=None, repr=False, compare=False)

    def split(self, name: str) -> Any:
        """The ``train`` or ``validation`` dataset, or None when it was not given."""
        return self.datasets.get(name)

    def info(self, message: str) -> None:
        """Log ``message`` to the step's log (the module's logger in a worker process)."""
        if self.log is not None:
            self.log.info(message)
        else:
            import logging

            logging.getLogger("dreamer_dagster.trainers").info(message)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["log"] = None
        return state
