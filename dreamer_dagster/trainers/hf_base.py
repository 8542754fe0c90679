"""``HFTrainer``: what every Hugging Face trainer shares.

Model arguments (DataDreamer's names): ``model_name`` (a hub name, a local
folder, another trainer or its ``model_path``), ``revision``,
``trust_remote_code``, ``device``, ``dtype``, ``quantization_config`` (QLoRA: a
``BitsAndBytesConfig`` or a dict of its fields, see :mod:`.quantization`), ``peft_config`` (a dict of
``peft.LoraConfig`` fields or any ``peft`` config object), ``fsdp``,
``fsdp_config``, ``distributed_config`` and, as extra keyword arguments, the
``from_pretrained`` kwargs.

Training arguments: ``epochs``, ``batch_size``, ``optim``, ``learning_rate``,
``weight_decay``, ``lr_scheduler_type``, ``warmup_steps``,
``neftune_noise_alpha``, ``seed``, ``early_stopping_patience``,
``early_stopping_threshold``, ``gradient_accumulation_steps``; any other
keyword of ``train()`` is a ``transformers.TrainingArguments`` field
(``max_steps``, ``save_steps``...) and enters the fingerprint, except
``callbacks`` (extra ``TrainerCallback`` objects, which only observe).

At run time a subclass's :meth:`Trainer.train_model` uses the helpers of
:mod:`.hf_loading` and :mod:`.hf_training` (mixed into ``HFTrainer``):
:meth:`HFTrainer.load_tokenizer`, :meth:`HFTrainer.load_model` (with the
PEFT adapter applied), :meth:`HFTrainer.training_arguments` (evaluation and
checkpoints each epoch, the best model loaded at the end, checkpoints in
``_checkpoints``), :meth:`HFTrainer.callbacks` (early stopping, logging),
:meth:`HFTrainer.fit` (trains, resuming from the last checkpoint, and
collects the metrics) and :meth:`HFTrainer.save` (the model or adapter, the
tokenizer, ``training_args.json``, ``seed.json``).

With ``device=[0, 1, ...]`` training is launched in one process per device
through ``torch.distributed`` (FSDP by default, DDP with ``fsdp=False``);
without that many GPUs it trains in one process.

After training: ``trainer.export_merged(path, output_folder=...)`` (or
:func:`merge_adapter`) writes the model with its adapter merged in, and
:func:`load_trained_model` loads any trainer's ``_model`` for inference (a full
model, or the base model with the adapter; a classifier with its label maps).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

from ..citations import HF_TRANSFORMERS_CITATION, PEFT_CITATION
from ..deferred import Deferred
from ..library_defaults import normalize_peft_config
from ..llms.hf_transformers import looks_like_missing_path
from ..model import dtype_name
from ..steps.step import REQUIRED, Step
from .base import MODEL_DIR_INFO, Trainer, TrainingRun
from .distributed import launch_distributed
from .hf_loading import HFModelLoading
from .hf_training import HFTraining
from .quantization import check_quantization_config
from .trained_models import merge_adapter

__all__ = ["HFTrainer"]


#: TrainingArguments fields that ``train(**kwargs)`` may not set: the trainer owns them.
_OWNED_FIELDS = frozenset({"output_dir", "resume_from_checkpoint", "do_train", "do_eval", "local_rank"})


class HFTrainer(HFModelLoading, HFTraining, Trainer):
    """Base of the Hugging Face trainers: model loading, PEFT, TrainingArguments, fitting.

    ``_model`` holds ``save_pretrained`` output (the full model, or only the
    PEFT adapter: ``adapter_config.json`` + ``adapter_model.safetensors``),
    the tokenizer, ``training_args.json``, ``seed.json``, the model card and
    ``dreamer_trainer.json`` (``task``, ``base_model``, ``adapter``).
    """

    KINDS: ClassVar[tuple[str, ...]] = ("huggingface", "pytorch")

    MODEL_ARGS: ClassVar[Mapping[str, Any]] = {
        "model_name": REQUIRED,
        "revision": None,
        "trust_remote_code": False,
        "device": None,
        "dtype": None,
        "quantization_config": None,
        "peft_config": None,
        "distributed_config": None,
        "fsdp": True,
        "fsdp_config": None,
        "model_kwargs": None,
    }
    TRAIN_ARGS: ClassVar[Mapping[str, Any]] = {
        "epochs": 3.0,
        "batch_size": 8,
        "optim": "adamw_torch",
        "learning_rate": 1e-3,
        "weight_decay": 0.01,
        "lr_scheduler_type": "linear",
        "warmup_steps": 0,
        "neftune_noise_alpha": None,
        "seed": 42,
        "early_stopping_patience": 5,
        "early_stopping_threshold": 0.0,
        "gradient_accumulation_steps": 1,
        "training_kwargs": None,
        "callbacks": None,
    }
    UNFINGERPRINTED_ARGS: ClassVar[frozenset[str]] = frozenset({"device", "callbacks"})
    DISTRIBUTED_ARGS: ClassVar[frozenset[str]] = frozenset({"fsdp", "fsdp_config", "distributed_config"})
    #: Whether ``quantization_config`` reaches the model (``load_model`` loads it): a trainer
    #: that loads its model otherwise refuses one when declared.
    QUANTIZABLE: ClassVar[bool] = False

    def __init__(
        self,
        name: str,
        model_name: Any,
        revision: str | None = None,
        trust_remote_code: bool = False,
        device: Any = None,
        dtype: Any = None,
        quantization_config: Any = None,
        peft_config: Any = None,
        distributed_config: dict | None = None,
        fsdp: bool | str | list[str] = True,
        fsdp_config: dict | None = None,
        force: bool = False,
        verbose: bool | None = None,
        log_level: int | None = None,
        **kwargs: Any,
    ):
        model_kwargs = dict(kwargs.pop("model_kwargs", None) or {})
        own = {key: kwargs.pop(key) for key in list(kwargs) if key in self.MODEL_ARGS}
        model_kwargs.update(kwargs)
        super().__init__(
            name,
            force=force,
            verbose=verbose,
            log_level=log_level,
            model_name=model_name,
            revision=revision,
            trust_remote_code=trust_remote_code,
            device=device,
            dtype=dtype_name(dtype),
            quantization_config=quantization_config,
            peft_config=peft_config,
            distributed_config=distributed_config,
            fsdp=fsdp,
            fsdp_config=fsdp_config,
            model_kwargs=model_kwargs or None,
            **own,
        )

    def validate_model_args(self) -> None:
        model = self._model_args["model_name"]
        if not isinstance(model, (str, Path, Step, Deferred)):
            raise self.error(
                f"got {type(model).__name__}; give a model name, a local folder, a trainer or "
                "trainer.model_path.",
                "model_name",
            )
        if looks_like_missing_path(model):
            raise self.error(
                f"{str(model)!r} is a local path, and there is no folder "
                f"{str(Path(model).expanduser().resolve())!r}. Fix: pass an existing folder (relative "
                "paths are read from the working directory), a model name, or a trainer.",
                "model_name",
            )
        if isinstance(model, Path):
            self._model_args["model_name"] = str(model)
        if isinstance(model, Step) and not isinstance(model, Trainer):
            raise self.error(f"{model!r} is a step, not a trainer.", "model_name")
        quantization = check_quantization_config(self, self._model_args.get("quantization_config"))
        self._model_args["quantization_config"] = quantization
        peft_config = self._model_args["peft_config"]
        if peft_config is not None and not isinstance(peft_config, Mapping):
            if not type(peft_config).__module__.startswith("peft"):
                raise self.error(
                    f"got {type(peft_config).__name__}; give a dict of LoraConfig fields "
                    "(e.g. {'r': 8, 'lora_alpha': 16}) or a peft config object.",
                    "peft_config",
                )
            if type(peft_config).__name__ == "LoraConfig":
                self._model_args["peft_config"] = normalize_peft_config(peft_config)
        elif isinstance(peft_config, Mapping):
            self._model_args["peft_config"] = normalize_peft_config(peft_config)

    def declare_training(self, inputs: Mapping[str, Any], args: Mapping[str, Any]) -> Trainer:
        args = dict(args)
        extra = dict(args.get("training_kwargs") or {})
        owned = sorted(set(extra) & _OWNED_FIELDS)
        if owned:
            raise self.error(f"{owned} are set by the trainer itself.", owned[0])
        args["training_kwargs"] = extra or None
        callbacks = args.get("callbacks")
        args["callbacks"] = list(callbacks) if callbacks else None
        return super().declare_training(inputs, args)

    def citations(self) -> list[str]:
        citations = [HF_TRANSFORMERS_CITATION]
        if self._model_args.get("peft_config") is not None:
            citations.append(PEFT_CITATION)
        return citations

    def describe_args(self) -> dict:
        described = super().describe_args()
        callbacks = self.args.get("callbacks") or []
        described["callbacks"] = [f"{type(c).__module__}.{type(c).__qualname__}" for c in callbacks] or None
        return described

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("asset", None)  # the Dagster asset stays in the launching process
        return state

    def save(
        self, run: TrainingRun, trainer: Any, tokenizer: Any, info: Mapping[str, Any] | None = None
    ) -> None:
        """Save the model (or its adapter), the tokenizer, training_args.json and seed.json."""
        model_dir = str(run.model_dir)
        trainer.save_model(model_dir)
        if trainer.args.should_save:
            tokenizer.save_pretrained(model_dir)
            with open(run.model_dir / "training_args.json", "w") as handle:
                json.dump(trainer.args.to_dict(), handle, indent=2, default=str)
            with open(run.model_dir / "seed.json", "w") as handle:
                json.dump(run.args.get("seed"), handle)
            partial = dict(info or {})
            partial.setdefault("adapter", (run.model_dir / "adapter_config.json").is_file())
            with open(run.model_dir / MODEL_DIR_INFO, "w") as handle:
                json.dump(partial, handle, indent=2, default=str)

    def model_info(self, run: TrainingRun, results: dict) -> dict:
        info = super().model_info(run, results)
        saved = run.model_dir / MODEL_DIR_INFO
        if saved.is_file():
            info = {**info, **json.loads(saved.read_text())}
        info.setdefault("adapter", (run.model_dir / "adapter_config.json").is_file())
        if info["adapter"]:
            adapter = json.loads((run.model_dir / "adapter_config.json").read_text())
            info["base_model"] = adapter.get("base_model_name_or_path") or info.get("base_model")
        return info

    def run_training(self, run: TrainingRun) -> dict:
        """One process on CPU or one device; one process a device when ``device`` is a list."""
        with _restored_environ():
            if not self.is_distributed:
                return self.train_model(run)
            import torch

            devices = run.args["device"]
            if torch.cuda.device_count() < len(devices):
                run.info(
                    f"{len(devices)} devices were asked for but {torch.cuda.device_count()} CUDA GPUs "
                    "are visible: training in one process."
                )
                return self.train_model(dataclasses.replace(run, args={**run.args, "device": None}))
            return launch_distributed(self, run)

    # -- after training -------------------------------------------------------------

    def export_merged(self, path: str | Path, output_folder: str | Path) -> Path:
        """Write the trained model with its PEFT adapter merged in to ``path``.

        ``output_folder`` is the pipeline's output folder (the trainer must be
        materialized). A trainer without an adapter is copied as it is.
        """
        from ..output_folder import OutputFolder

        folder = OutputFolder(output_folder).step(self.folder)
        model_dir = folder.model_path
        if not model_dir.is_dir():
            raise FileNotFoundError(
                f"Trainer {self.name!r} has no trained model in {model_dir}. Materialize it first."
            )
        folder.verify_output()  # its files as step.json recorded them (see integrity.py)
        return merge_adapter(model_dir, path)


@contextlib.contextmanager
def _restored_environ() -> Iterator[None]:
    """TrainingArguments and accelerate change ``os.environ``; undo that after training."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
