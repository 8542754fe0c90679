"""``Trainer``: the base of every trainer step (a step whose output is ``_model``).

A trainer is declared in two calls, as in DataDreamer::

    trainer = TrainX("Name", model_name="...", peft_config={...})   # the model
    trainer.train(train_input=..., train_output=..., epochs=1)       # the training

The first call stores the model arguments and declares nothing; the second
checks every argument and column reference, computes the fingerprint and
registers the step, exactly as ``Step(...)`` does for other steps. Before
``.train()`` a trainer has no fingerprint and no asset (using one says so).
``trainer.model_path`` is a :class:`~dreamer_dagster.Deferred` resolved at run
time to ``<output>/<trainer>/_model``; a trainer (or its ``model_path``) passed
where a model is expected adds the dependency edge.

At run time :meth:`Trainer.execute` builds a :class:`TrainingRun` (resolved
args, the train / validation datasets, the staged ``_model`` folder, the
``_checkpoints`` folder and the checkpoint to resume from), calls
:meth:`Trainer.train_model`, writes the model card (``README.md``) and the data
card into ``_model`` (:mod:`.model_card`) and returns step.json's fields; the IO manager commits
``_model`` and writes step.json last.

Writing a trainer (see ``train_hf_fine_tune.py`` for a full one)::

    class TrainMine(Trainer):
        \"\"\"What it trains; what ``_model`` holds.\"\"\"

        INPUTS = {"train_input": True, "train_output": True,
                  "validation_input": False, "validation_output": False}
        MODEL_ARGS = {"model_name": REQUIRED, "device": None}
        TRAIN_ARGS = {"epochs": 3.0, "batch_size": 8, "seed": 42}

        def __init__(self, name, model_name, device=None, **kwargs):
            super().__init__(name, model_name=model_name, device=device, **kwargs)

        def train(self, train_input, train_output, validation_input=None,
                  validation_output=None, epochs=3.0, batch_size=8, seed=42):
            return self.declare_training(
                inputs={"train_input": train_input, ...},
                args={"epochs": epochs, "batch_size": batch_size, "seed": seed})

        def train_model(self, run):          # at run time; heavy imports here
            data = run.split("train")         # columns "input", "output"
            ...                               # train, checkpoint into run.checkpoints_dir
            model.save_pretrained(run.model_dir)
            return {"metrics": {...}, "metrics_table": [...]}
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..cards import CITATION, MODEL_NAME, merge_cards
from ..deferred import Deferred, ModelPath
from ..pools import trainer_pool
from ..steps.step import REQUIRED, Step, StepDeclarationError
from .datadreamer_api import DataDreamerTrainerAPI
from .model_card import MODEL_DIR_INFO, TrainerModelCard
from .publishing import TrainerPublishing
from .training_run import TrainingDataError, TrainingRun, latest_checkpoint

if TYPE_CHECKING:
    from ..steps.run_context import StepRunContext

__all__ = ["MODEL_DIR_INFO", "Trainer", "TrainingDataError", "TrainingRun", "latest_checkpoint"]


class Trainer(DataDreamerTrainerAPI, TrainerPublishing, TrainerModelCard, Step):
    """Base of trainer steps: a Dagster asset that writes ``<output>/<trainer>/_model``.

    Subclasses set ``INPUTS`` (the column inputs ``train()`` takes),
    ``MODEL_ARGS`` (the constructor's arguments and defaults) and
    ``TRAIN_ARGS`` (``train()``'s), write ``__init__`` and ``train`` with
    DataDreamer's signatures (``train`` calls :meth:`declare_training`), and
    implement :meth:`train_model`. ``_model`` then holds what ``train_model``
    wrote, plus ``README.md`` (the model card, with the training data's data
    card), ``data_card.json`` and ``dreamer_trainer.json``.
    """

    OUTPUTS: ClassVar[tuple[str, ...] | None] = ()
    KIND: ClassVar[str] = "trainer"
    INPUTS: ClassVar[Mapping[str, bool]] = {
        "train_input": True,
        "train_output": True,
        "validation_input": False,
        "validation_output": False,
    }
    MODEL_ARGS: ClassVar[Mapping[str, Any]] = {"model_name": REQUIRED, "device": None}
    TRAIN_ARGS: ClassVar[Mapping[str, Any]] = {}
    #: Args that never change the trained model (where it runs, how it logs).
    UNFINGERPRINTED_ARGS: ClassVar[frozenset[str]] = frozenset({"device"})
    #: Args hashed only when training is distributed (``device`` is a list).
    DISTRIBUTED_ARGS: ClassVar[frozenset[str]] = frozenset()
    #: The input splits: input names start with one of these and an underscore.
    SPLITS: ClassVar[tuple[str, ...]] = ("train", "validation")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.ARGS = {**cls.MODEL_ARGS, **cls.TRAIN_ARGS}

    def __init__(
        self,
        name: str,
        force: bool = False,
        verbose: bool | None = None,
        log_level: int | None = None,
        **model_args: Any,
    ):
        self._model_args = dict(model_args)
        self._training_declared = False
        self._fingerprint: str | None = None
        super().__init__(name, force=force, verbose=verbose, log_level=log_level)
        for arg_name in self._model_args:
            if arg_name not in self.MODEL_ARGS:
                raise self.error(
                    f"unknown argument. {type(self).__name__} takes {sorted(self.MODEL_ARGS)}.", arg_name
                )
        for arg_name, default in self.MODEL_ARGS.items():
            if default is REQUIRED and self._model_args.get(arg_name, REQUIRED) is REQUIRED:
                raise self.error("this argument is required but was not given.", arg_name)
        if "device" in self.MODEL_ARGS:
            self._model_args["device"] = _normalize_device(self._model_args.get("device"))
        self.validate_model_args()

    # -- declaration ----------------------------------------------------------------

    def _declare(self, inputs: Any, args: Any, outputs: Any) -> None:
        if not self._training_declared:
            return  # Step.__init__ calls this; a trainer is declared by .train()
        super()._declare(inputs, args, outputs)

    def validate_model_args(self) -> None:
        """Subclass hook: check the constructor's arguments; raise ``self.error(...)``."""

    def declare_training(self, inputs: Mapping[str, Any], args: Mapping[str, Any]) -> Trainer:
        """Declare the training (called by ``train``): check, fingerprint, register.

        ``inputs`` maps input names to column references (None means not
        given); ``args`` holds the training arguments. Returns the trainer.
        """
        if self._training_declared:
            raise self.error(
                "train() was already called on this trainer. Fix: declare a new trainer "
                "(with its own name) for another training.",
                "train",
            )
        given_inputs = {name: ref for name, ref in inputs.items() if ref is not None}
        for split in self.SPLITS[1:]:
            present = [name for name in given_inputs if name.startswith(f"{split}_")]
            expected = [name for name in self.INPUTS if name.startswith(f"{split}_")]
            if present and sorted(present) != sorted(expected):
                missing = sorted(set(expected) - set(present))
                raise self.error(f"give all of {expected} or none of them (missing {missing}).", missing[0])
        self._training_declared = True
        try:
            self._declare(given_inputs, {**self._model_args, **args}, None)
        except BaseException:
            self._training_declared = False
            self._fingerprint = None
            raise
        return self

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            raise self._untrained("fingerprint")
        return self._fingerprint

    @fingerprint.setter
    def fingerprint(self, value: str) -> None:
        self._fingerprint = value

    @property
    def is_declared(self) -> bool:
        """Whether ``.train()`` has declared the training."""
        return self._fingerprint is not None

    def _untrained(self, what: str) -> StepDeclarationError:
        return self.error(
            f"has no {what} yet: a trainer is declared by .train(...). Fix: call "
            f"trainer.train(train_input=..., train_output=..., ...) before using the trainer.",
            "train",
        )

    def upstream(self) -> list[Step]:
        if not self.is_declared:
            raise self._untrained("asset")
        return super().upstream()

    @property
    def model_path(self) -> Deferred | ModelPath:
        """``<output>/<trainer>/_model``: a :class:`Deferred` resolved at run time (adds the
        dependency edge); in a running script, the trainer trains first and this is the
        path, a ``str`` (:class:`~dreamer_dagster.deferred.ModelPath`) that fingerprints as
        the deferred value does."""
        if not self.is_declared:
            raise self._untrained("model_path")
        deferred = Deferred(self, ("model_path",))
        if self.pipeline is not None and self.pipeline.script_mode:
            from ..script_mode import deferred_value

            return ModelPath(deferred_value(deferred, "trainer.model_path"), deferred)
        return deferred

    @property
    def device_count(self) -> int:
        """How many devices train (several only for distributed training)."""
        device = self._model_args.get("device")
        return len(device) if isinstance(device, list) else 1

    @property
    def is_distributed(self) -> bool:
        return self.device_count > 1

    def fingerprint_content(self) -> dict:
        """Type, model args, training args and the input columns' step fingerprints.

        ``batch_size`` enters as the global batch (per device x devices), as in
        DataDreamer; distributed-only settings enter only when distributed.
        """
        content = super().fingerprint_content()
        args = content["args"]
        if isinstance(args.get("batch_size"), int):
            args["batch_size"] = args["batch_size"] * self.device_count
        if not self.is_distributed:
            for name in self.DISTRIBUTED_ARGS:
                args.pop(name, None)
        return content

    def default_pool(self) -> str | None:
        """Trainers run in the ``gpu`` pool, or ``cpu`` when pinned to the CPU."""
        return trainer_pool(self._model_args.get("device"))

    def base_model_name(self) -> str:
        """The base model as the model card names it."""
        model = self._model_args.get("model_name")
        if isinstance(model, Step):
            return f"{model.name} (a trained model)"
        if isinstance(model, (Deferred, ModelPath)):
            return model.describe()
        return str(model)

    def card_entries(self, context: StepRunContext) -> dict[str, list[str]]:
        entries = super().card_entries(context)
        model = self._model_args.get("model_name")
        if isinstance(model, str) and not isinstance(model, ModelPath):
            entries.setdefault(MODEL_NAME, [])
            if model not in entries[MODEL_NAME]:
                entries[MODEL_NAME].append(model)
        for citation in self.citations():
            entries.setdefault(CITATION, [])
            if citation not in entries[CITATION]:
                entries[CITATION].append(citation)
        return entries

    def citations(self) -> list[str]:
        """Citations of the libraries this trainer trains with (for the data card)."""
        return []

    # -- running --------------------------------------------------------------------

    def execute(self, context: StepRunContext) -> dict:
        """Train into ``context.staged/_model``; return step.json's fields."""
        from ..integrity import seal_model

        run = self.training_run(context)
        resumed = run.resume_from_checkpoint
        if resumed:
            run.info(f"Resuming {self.name!r} from {Path(resumed).name}.")
        else:
            run.info(f"Training {self.name!r} from the start.")
        results = self.run_training(run) or {}
        data_card = self.upstream_data_card(context)
        self.write_model_files(run, data_card, results)
        for name, value in (results.get("metrics") or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                context.stats[name] = value
        context.stats["resumed"] = bool(resumed)
        return {
            "model": True,
            "outputs": [],
            "num_rows": None,
            "metrics": results.get("metrics") or {},
            "metrics_table": results.get("metrics_table") or [],
            **seal_model(run.model_dir),  # data_version and manifest
        }

    def training_run(self, context: StepRunContext) -> TrainingRun:
        """The :class:`TrainingRun` for this materialization."""
        checkpoints = context.step_folder.checkpoints_path
        checkpoints.mkdir(parents=True, exist_ok=True)
        model_dir = context.staged / "_model"
        model_dir.mkdir(parents=True, exist_ok=True)
        datasets = {}
        for split in self.SPLITS:
            dataset = self.split_dataset(context, split)
            if dataset is not None and len(dataset) == 0:
                names = [ref.describe() for name, ref in self.inputs.items() if name.startswith(f"{split}_")]
                if split == self.SPLITS[0]:
                    raise TrainingDataError(
                        f"Step {self.name!r} ({type(self).__name__}): the {split} inputs {names} have no "
                        "rows, so there is nothing to train on. Fix: check the steps that make them (a "
                        "filter that removed every row? an empty split?)."
                    )
                raise TrainingDataError(
                    f"Step {self.name!r} ({type(self).__name__}): the {split} inputs {names} have no rows, "
                    f"so there is nothing to evaluate on. Fix: give the {split} split some rows (a larger "
                    f"validation_size= in splits()), or leave the {split}_* arguments out."
                )
            if dataset is not None:
                # A private copy: tokenizing it caches files beside it, which must
                # never land in an upstream step's _dataset folder.
                dataset = _private_copy(dataset, context.staged / f"_{split}_data")
            datasets[split] = dataset
        return TrainingRun(
            step_name=self.name,
            step_key=self.key,
            fingerprint=self.fingerprint,
            args=context.resolve(dict(self.args)),
            datasets=datasets,
            model_dir=model_dir,
            checkpoints_dir=checkpoints,
            resume_from_checkpoint=latest_checkpoint(checkpoints),
            work_dir=context.staged,
            log=context.log,
        )

    def split_dataset(self, context: StepRunContext, split: str) -> Any:
        """The inputs named ``<split>_*`` as one Dataset (columns without the prefix)."""
        import datasets

        prefix = f"{split}_"
        columns = []
        for name, ref in self.inputs.items():
            if not name.startswith(prefix):
                continue
            column = context.dataset(ref.step).select_columns([ref.column])
            if ref.column != name[len(prefix) :]:  # datasets refuses a rename to the same name
                column = column.rename_column(ref.column, name[len(prefix) :])
            columns.append(column)
        if not columns:
            return None
        lengths = {column.column_names[0]: len(column) for column in columns}
        if len(set(lengths.values())) > 1:
            raise TrainingDataError(
                f"Step {self.name!r} ({type(self).__name__}): the {split} columns have different lengths: "
                f"{lengths}. Fix: give columns of one step (or of steps with as many rows)."
            )
        return datasets.concatenate_datasets(columns, axis=1) if len(columns) > 1 else columns[0]

    def run_training(self, run: TrainingRun) -> dict:
        """Run :meth:`train_model` (subclasses may launch it on several devices)."""
        return self.train_model(run)

    def train_model(self, run: TrainingRun) -> dict:
        """Train and save into ``run.model_dir``; resume from ``run.resume_from_checkpoint``.

        Returns ``{"metrics": {name: number}, "metrics_table": [row, ...],
        "model_info": {...}}``; metrics become ``dreamer/<name>`` metadata, the
        table (one row an epoch) the ``dreamer/metrics`` table, ``model_info``
        joins ``dreamer_trainer.json``.
        """
        raise NotImplementedError(f"{type(self).__name__}.train_model")

    def upstream_data_card(self, context: StepRunContext) -> dict:
        """The merged data cards of the steps this trainer reads."""
        cards = []
        for parent in self.upstream():
            record = context.output_folder.step(parent.folder).step_json() or {}
            cards.append(record.get("data_card") or {})
        merged = merge_cards(cards, self.name, self.card_entries(context))
        return merged


def _private_copy(dataset: Any, path: Path) -> Any:
    import datasets

    dataset.save_to_disk(str(path))
    return datasets.load_from_disk(str(path))


def _normalize_device(device: Any) -> Any:
    """``device`` as plain data: None, an int, a string, or a list of those."""
    if device is None or isinstance(device, (int, str)):
        return device
    if isinstance(device, (list, tuple)):
        items = [_normalize_device(item) for item in device]
        return items[0] if len(items) == 1 else items
    return str(device)  # a torch.device
