"""DataDreamer's trainer subclass API on :class:`~dreamer_dagster.trainers.Trainer`.

A trainer written DataDreamer's way subclasses ``Trainer`` and defines ``_train``::

    class MyTrainer(Trainer):
        def __init__(self, name, model_name, force=False, verbose=None, log_level=None):
            super().__init__(name, force=force, verbose=verbose, log_level=log_level)
            self.model_name = model_name                 # public attributes: the model args

        def train(self, train_input, epochs=1):
            self._setup_folder_and_resume(train_input=train_input, epochs=epochs)
            return self

        def _train(self, train_input, epochs):           # at run time
            ...                                           # train_input: the column's values
            self._save_resource(model, os.path.join(self._output_folder_path, "_model"))

        def _load(self, with_optimizations=True):         # trainer.model
            return AutoModel.from_pretrained(self.model_path)

        @property
        def model_path(self):
            return os.path.join(self._output_folder_path, "_model")

        @property
        def citation(self): return ["@misc{...}"]        # license, base_model_card likewise

Such a class is declared, fingerprinted and run as any trainer: ``_setup_folder_and_resume``
declares the training (column arguments become inputs and dependency edges, the others
args; the public attributes the constructor set are the model args), and at run time
``_train`` gets the columns' values as lists with ``_output_folder_path`` pointing at the
staged folder, whose ``_model`` becomes ``<output>/<trainer>/_model``. ``compute_fingerprint``
is not needed (the step's fingerprint covers the class, its attributes and its arguments).
``citation``, ``license`` and ``base_model_card`` reach the data and model cards.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..deferred import ColumnRef

if TYPE_CHECKING:
    from ..steps.run_context import StepRunContext
    from .base import Trainer, TrainingRun

__all__ = ["DataDreamerTrainerAPI", "is_datadreamer_style"]


def is_datadreamer_style(cls: type) -> bool:
    """Whether a trainer class is written DataDreamer's way (it or a base defines ``_train``)."""
    return any("_train" in vars(klass) for klass in cls.__mro__)


class DataDreamerTrainerAPI:
    """Mixin of ``Trainer``: what a DataDreamer-style subclass calls (``_setup_folder_and_resume``,
    ``_output_folder_path``, ``_save_resource``, ``logger``...); the methods it relies on are put
    on the subclass itself when it is defined (they replace ``Trainer``'s own)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "_train" not in vars(cls):
            return
        cls.MODEL_ARGS = {}
        cls.TRAIN_ARGS = {}
        cls.INPUTS = None
        cls.ACCEPTS_ANY_ARGS = True
        cls.SPLITS = property(_splits)  # type: ignore[assignment]
        for name, method in _INSTALLED.items():
            if name not in vars(cls):
                setattr(cls, name, method)
        if "__init__" in vars(cls):
            cls.__init__ = _recording_model_attributes(vars(cls)["__init__"])  # type: ignore[method-assign]

    def train(self: Trainer) -> Trainer:
        """Train the model: each trainer defines it (DataDreamer's abstract ``train``)."""
        raise NotImplementedError(
            f"{type(self).__name__} does not define train(...). Fix: define train(...) and call "
            "self._setup_folder_and_resume(**arguments) (DataDreamer's way) or self.declare_training(...)."
        )

    # -- what a DataDreamer-style subclass calls ------------------------------------

    def _setup_folder_and_resume(self: Trainer, **kwargs: Any) -> None:
        """Declare the training with ``train()``'s arguments (DataDreamer's call); in a running
        script the trainer trains now, as DataDreamer's does."""
        inputs = {name: value for name, value in kwargs.items() if _is_column(value)}
        args = {name: value for name, value in kwargs.items() if name not in inputs}
        model_args = {name: getattr(self, name) for name in self.__dict__.get("_dd_model_attributes", ())}
        self.__dict__["_dd_train_args"] = tuple(kwargs)
        self.declare_training(inputs, {**args, "trainer_attributes": model_args})
        if self.pipeline is not None and self.pipeline.script_mode:
            from ..script_mode import require_output

            require_output(self, "trainer.train()")

    @property
    def _output_folder_path(self: Trainer) -> str:
        """The trainer's folder: the staged one while ``_train`` runs, else ``<output>/<trainer>``."""
        running = self.__dict__.get("_dd_running_folder")
        if running is not None:
            return running
        return str(self.export_folder().step(self.folder).path)

    def _save_resource(self, resource: Any, path: str) -> None:
        """Save a model or tokenizer into ``path`` (DataDreamer's: ``save_pretrained``, safetensors)."""
        resource.save_pretrained(path, safe_serialization=True)

    @property
    def logger(self: Trainer) -> Any:
        """The trainer's logger: the step's log while training, else ``datadreamer.trainer.<name>``."""
        return self.__dict__.get("_dd_logger") or logging.getLogger(f"datadreamer.trainer.{self.folder}")

    @property
    def resumable(self) -> bool:
        return True

    @property
    def version(self) -> float:
        return 1.0

    @property
    def display_name(self: Trainer) -> str:
        return self.name

    @property
    def base_model_card(self) -> str | None:
        return None

    @property
    def license(self) -> str | None:
        return None

    @property
    def citation(self: Trainer) -> list[str] | None:
        """The BibTeX citations of what trains the model (a DataDreamer-style subclass sets its own)."""
        if is_datadreamer_style(type(self)):
            return None
        return self.citations() or None


# -- installed on a DataDreamer-style subclass ----------------------------------------


def _validate_model_args(self: Trainer) -> None:
    """At the end of ``Trainer.__init__``: what the trainer holds before the subclass's own."""
    self.__dict__["_dd_base_attributes"] = frozenset(vars(self))


def _recording_model_attributes(init: Any) -> Any:
    """The subclass's ``__init__``, then: its public attributes are the model args."""

    @functools.wraps(init)
    def __init__(self: Trainer, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        base = self.__dict__.get("_dd_base_attributes", frozenset())
        self.__dict__["_dd_model_attributes"] = tuple(
            name for name in vars(self) if name not in base and not name.startswith("_")
        )

    return __init__


def _splits(self: Trainer) -> tuple[str, ...]:
    """At run time each column input is read alone, by its name (none before the declaration)."""
    return tuple(getattr(self, "inputs", None) or ()) if self.is_declared else ()


def _split_dataset(self: Trainer, context: StepRunContext, split: str) -> Any:
    """Each column input alone, by its name."""
    ref = self.inputs.get(split)
    return None if ref is None else context.dataset(ref.step).select_columns([ref.column])


def _train_model(self: Trainer, run: TrainingRun) -> dict:
    """Call the subclass's ``_train`` with ``train()``'s arguments, the columns as lists of values."""
    kwargs = {}
    for name in self.__dict__.get("_dd_train_args", ()):
        if name in self.inputs:
            dataset = run.split(name)
            kwargs[name] = list(dataset[dataset.column_names[0]])
        else:
            kwargs[name] = run.args[name]
    self.__dict__["_dd_running_folder"] = str(run.work_dir)
    self.__dict__["_dd_logger"] = run.log
    try:
        results = self._train(**kwargs)
    finally:
        self.__dict__.pop("_dd_running_folder", None)
        self.__dict__.pop("_dd_logger", None)
    return results if isinstance(results, Mapping) else {}


def _load_trained(self: Trainer, model_dir: str) -> Any:
    """``trainer.model``: the subclass's ``_load`` with ``_output_folder_path`` at the folder."""
    self.__dict__["_dd_running_folder"] = os.path.dirname(os.path.abspath(model_dir))
    try:
        return self._load()
    finally:
        self.__dict__.pop("_dd_running_folder", None)


def _citations(self: Trainer) -> list[str]:
    return list(self.citation or [])


def _card_entries(self: Trainer, context: StepRunContext) -> dict[str, list[str]]:
    from ..cards import LICENSE, MODEL_CARD
    from .base import Trainer

    entries = Trainer.card_entries(self, context)
    for key, value in ((LICENSE, self.license), (MODEL_CARD, self.base_model_card)):
        if value and value not in entries.setdefault(key, []):
            entries[key].append(value)
    return entries


def _base_model_name(self: Trainer) -> str:
    return str(getattr(self, "model_name", None) or type(self).__name__)


def _is_column(value: Any) -> bool:
    from ..steps.output_data import ColumnData

    return isinstance(value, (ColumnRef, ColumnData))


_INSTALLED = {
    "validate_model_args": _validate_model_args,
    "split_dataset": _split_dataset,
    "train_model": _train_model,
    "load_trained": _load_trained,
    "citations": _citations,
    "card_entries": _card_entries,
    "base_model_name": _base_model_name,
}
