"""How a Hugging Face trainer trains, at run time: the HF ``Trainer``'s settings and the fit.

``TrainingArguments`` from the train args (evaluation and a checkpoint each
epoch, the best model loaded at the end, checkpoints in ``_checkpoints``), the
callbacks (the step's log, early stopping, the user's), the fit (resuming from
the last checkpoint, a checkpoint on SIGTERM) and its metrics (the model kept,
one row an epoch): :class:`HFTraining`, a mixin of ``HFTrainer``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from .distributed import pinned_device
from .interrupts import checkpoint_on_interrupt
from .training_run import TrainingRun

__all__ = ["HFTraining"]


class HFTraining:
    """``training_arguments``, ``callbacks``, ``fit``, ``derived_metrics`` and ``epoch_table``
    of ``HFTrainer`` (which supplies ``run_device``)."""

    #: ``metric_for_best_model`` and its direction.
    BEST_METRIC: ClassVar[str] = "eval_loss"
    GREATER_IS_BETTER: ClassVar[bool] = False

    run_device: Any

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
