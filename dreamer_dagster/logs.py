"""What the library logs, and where: a step's run log, the terminal of a running script,
and the Hugging Face libraries' own logs while a step runs.

Every message about a step goes through :func:`report`: it is dropped below the
step's threshold (DataDreamer's ``verbose`` / ``log_level``, the step's own over its
``Pipeline``'s), sent to Dagster's run log when one is given (the web UI shows it), and
to the ``dreamer_dagster`` Python logger, which prints to the terminal while a
``Pipeline`` block runs as a script (:func:`terminal`) and is silent otherwise (it has
no handler, and INFO is below Python's last-resort level).

``quiet_hf_logs`` is DataDreamer's ``hf_log=False``: while a step runs, the logs of
transformers, datasets, huggingface_hub, peft, trl... are cut to errors and their
progress bars are off; everything is restored afterwards.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = [
    "LOGGER",
    "quiet_hf_logs",
    "report",
    "session_threshold",
    "step_threshold",
    "terminal",
    "threshold",
]

LOGGER = logging.getLogger("dreamer_dagster")
TERMINAL_FORMAT = "[ dreamer_dagster ] %(message)s"
DATED_FORMAT = "%(asctime)s [ dreamer_dagster ] %(message)s"
DATE_FORMAT = "[%Y-%m-%d %H:%M:%S %z]"
#: The threshold of ``verbose=False``: nothing is logged.
SILENT = logging.CRITICAL + 1

#: The libraries ``hf_log=False`` quiets, and the environment variables they read when imported.
_HF_LOGGERS = (
    "datasets",
    "transformers",
    "huggingface_hub",
    "peft",
    "trl",
    "accelerate",
    "sentence_transformers",
    "setfit",
    "torch.distributed",
)
_HF_VERBOSITY_VARIABLES = ("TRANSFORMERS_VERBOSITY", "DATASETS_VERBOSITY")


def threshold(verbose: bool | None, log_level: int | None, default: int = logging.INFO) -> int:
    """DataDreamer's rule: ``log_level`` (else ``default``); ``verbose=True`` adds DEBUG,
    ``verbose=False`` silences everything."""
    level = default if log_level is None else int(log_level)
    if verbose:
        return min(logging.DEBUG, level)
    if verbose is False:
        return SILENT
    return level


def session_threshold(pipeline: Any) -> int:
    """The threshold of a ``Pipeline`` (INFO when there is none)."""
    if pipeline is None:
        return logging.INFO
    return threshold(getattr(pipeline, "verbose", None), getattr(pipeline, "log_level", None))


def step_threshold(step: Any) -> int:
    """A step's threshold: its own ``verbose`` / ``log_level`` over its pipeline's."""
    return threshold(
        getattr(step, "verbose", None),
        getattr(step, "log_level", None),
        session_threshold(getattr(step, "pipeline", None)),
    )


def report(
    step: Any, message: str, level: int = logging.INFO, run_log: Any = None, terminal: bool = True
) -> None:
    """Log ``message`` about ``step`` (to Dagster's ``run_log`` too, when given; to the
    ``dreamer_dagster`` logger unless ``terminal=False``) if the step's threshold lets it
    through."""
    if level < step_threshold(step):
        return
    if run_log is not None:
        run_log.log(level, message)
    if terminal:
        LOGGER.log(level, message)


def report_session(pipeline: Any, message: str, level: int = logging.INFO) -> None:
    """Log a message about the whole pipeline (``Initialized...``, ``Done...``)."""
    if level >= session_threshold(pipeline):
        LOGGER.log(level, message)


@contextmanager
def terminal(log_date: bool = False) -> Iterator[logging.Handler]:
    """Print the ``dreamer_dagster`` logger to stderr while the block runs (as DataDreamer
    prints its session); thresholds are applied by :func:`report`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(DATED_FORMAT if log_date else TERMINAL_FORMAT, datefmt=DATE_FORMAT)
    )
    saved = (LOGGER.level, LOGGER.propagate)
    LOGGER.addHandler(handler)
    LOGGER.setLevel(logging.DEBUG)
    LOGGER.propagate = False
    try:
        yield handler
    finally:
        LOGGER.removeHandler(handler)
        LOGGER.setLevel(saved[0])
        LOGGER.propagate = saved[1]


@contextmanager
def quiet_hf_logs(quiet: bool = True) -> Iterator[None]:
    """While the block runs, the Hugging Face libraries log errors only and show no
    progress bars (DataDreamer's ``hf_log=False``); ``quiet=False`` changes nothing."""
    if not quiet:
        yield
        return
    levels = {name: logging.getLogger(name).level for name in _HF_LOGGERS}
    variables = {name: os.environ.get(name) for name in _HF_VERBOSITY_VARIABLES}
    had_transformers = "transformers" in sys.modules
    for name in _HF_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    for name in _HF_VERBOSITY_VARIABLES:
        # read when transformers / datasets configure their loggers (on import)
        os.environ[name] = "error"
    restore_bars = _progress_bars_off()
    try:
        yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        for name, value in variables.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        for restore in restore_bars:
            restore()
        if not had_transformers and "transformers" in sys.modules:
            # imported while the bars were off: it took that state as its default
            from transformers.utils import logging as transformers_logging

            transformers_logging.enable_progress_bar()


def _progress_bars_off() -> list[Any]:
    """Turn the progress bars of huggingface_hub, datasets and transformers off; return
    the functions that turn back on those that were on."""
    restore = []
    import datasets
    from huggingface_hub import utils as hub_utils

    if not hub_utils.are_progress_bars_disabled():
        hub_utils.disable_progress_bars()
        restore.append(hub_utils.enable_progress_bars)
    if datasets.is_progress_bar_enabled():
        datasets.disable_progress_bars()
        restore.append(datasets.enable_progress_bars)
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        if transformers_logging.is_progress_bar_enabled():
            transformers_logging.disable_progress_bar()
            restore.append(transformers_logging.enable_progress_bar)
    return restore
