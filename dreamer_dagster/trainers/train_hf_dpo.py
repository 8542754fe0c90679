"""``TrainHFDPO``: aligns a causal language model with preference pairs (TRL's ``DPOTrainer``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

from ..citations import DPO_CITATION, TRL_CITATION
from ..deferred import ColumnRef
from .base import TrainingRun
from .hf_base import HFTrainer
from .kto_pair import DPO_LOSS_TYPES, KTO_PAIR, dpo_trainer_class
from .train_arguments import train_arguments
from .train_hf_fine_tune import TrainHFFineTune

__all__ = ["TrainHFDPO", "trl_defaults"]


def trl_defaults(run: TrainingRun) -> dict[str, Any]:
    """TRL config fields whose TRL defaults do not suit every device, unless ``train(**kwargs)`` sets them.

    TRL turns on bf16 mixed precision and gradient checkpointing by default;
    here they follow the model's ``dtype`` and stay off, as in ``TrainingArguments``.
    """
    given = set(run.args.get("training_kwargs") or {})
    defaults: dict[str, Any] = {}
    if not given & {"bf16", "fp16"}:
        defaults["bf16"] = run.args.get("dtype") == "bfloat16"
    if not given & {"gradient_checkpointing", "activation_checkpointing"}:
        defaults["activation_checkpointing"] = False  # the new name of gradient_checkpointing
    return defaults


class TrainHFDPO(TrainHFFineTune):
    """Aligns a causal LM to prefer ``train_chosen`` over ``train_rejected`` for each of
    ``train_prompts`` with Direct Preference Optimization (TRL's ``DPOTrainer``).

    Prompts are formatted as :class:`TrainHFFineTune` formats inputs (a chat
    model's chat template by default), so the aligned model answers in the
    format it is prompted with. ``dpo_beta`` is DPO's β, ``loss_type``
    DataDreamer's default ``kto_pair`` (implemented here: see :mod:`.kto_pair`) or
    any of TRL's DPO losses (``sigmoid``, ``ipo``, ``hinge``, ...) or a list of
    them (weighted by ``loss_weights=``). With ``peft_config``
    only a LoRA adapter is trained and the reference model is the base model
    with the adapter switched off; without it the reference is the model as it
    starts. ``precompute_ref_log_probs`` (keyword, after ``seed``; True by default,
    as DataDreamer's) computes the reference log probabilities once before
    training, so no reference model stays in memory; False keeps a frozen copy. Writes ``_model``: the
    model or its adapter (``HFTransformers(base, adapter_name=trainer.model_path)``
    generates with it), the tokenizer, ``training_args.json``, ``seed.json``,
    the model card and ``dreamer_trainer.json`` (``task``: ``causal_lm``).
    Per-epoch metrics: DPO loss, reward margins and accuracies; the best
    model is the one with the largest validation reward margin.
    """

    INPUTS: ClassVar[Mapping[str, bool]] = {
        "train_prompts": True,
        "train_chosen": True,
        "train_rejected": True,
        "validation_prompts": False,
        "validation_chosen": False,
        "validation_rejected": False,
    }
    TRAIN_ARGS: ClassVar[Mapping[str, Any]] = {
        **TrainHFFineTune.TRAIN_ARGS,
        "dpo_beta": 0.1,
        "loss_type": KTO_PAIR,
        "disable_dropout": True,
        "precompute_ref_log_probs": True,
    }
    BEST_METRIC: ClassVar[str] = "eval_rewards/margins"
    GREATER_IS_BETTER: ClassVar[bool] = True

    def train(  # type: ignore[override]
        self,
        train_prompts: ColumnRef,
        train_chosen: ColumnRef,
        train_rejected: ColumnRef,
        validation_prompts: ColumnRef | None = None,
        validation_chosen: ColumnRef | None = None,
        validation_rejected: ColumnRef | None = None,
        truncate: bool = True,
        epochs: float = 3.0,
        batch_size: int = 8,
        optim: str = "adamw_torch",
        learning_rate: float = 1e-3,
        weight_decay: float = 0.01,
        lr_scheduler_type: str = "linear",
        warmup_steps: int = 0,
        neftune_noise_alpha: float | None = None,
        dpo_beta: float = 0.1,
        loss_type: str | list[str] = KTO_PAIR,
        disable_dropout: bool = True,
        seed: int = 42,
        *,
        precompute_ref_log_probs: bool = True,
        early_stopping_patience: int | None = 5,
        early_stopping_threshold: float | None = 0.0,
        gradient_accumulation_steps: int = 1,
        max_length: int | None = None,
        callbacks: list | None = None,
        **kwargs: Any,
    ) -> TrainHFDPO:
        """Declare the training; ``**kwargs`` are ``trl.DPOConfig`` fields. Returns the trainer."""
        self.declare_training(*train_arguments(locals()))
        return self

    def validate(self) -> None:
        beta = self.args["dpo_beta"]
        if not isinstance(beta, (int, float)) or isinstance(beta, bool) or beta <= 0:
            raise self.error("must be a positive number (DPO's beta).", "dpo_beta")
        loss_type = self.args["loss_type"]
        losses = [loss_type] if isinstance(loss_type, str) else loss_type
        if not isinstance(losses, (list, tuple)) or not losses or not all(isinstance(x, str) for x in losses):
            raise self.error("must be a DPO loss name such as 'kto_pair', or a list of them.", "loss_type")
        unknown = [name for name in losses if name not in DPO_LOSS_TYPES]
        if unknown:
            raise self.error(
                f"unknown DPO loss {unknown[0]!r}. Fix: use one of {list(DPO_LOSS_TYPES)}.", "loss_type"
            )

    def citations(self) -> list[str]:
        return [*HFTrainer.citations(self), TRL_CITATION, DPO_CITATION]

    def derived_metrics(self, metrics: Mapping[str, Any]) -> dict:
        return HFTrainer.derived_metrics(self, metrics)

    # -- run time -------------------------------------------------------------------

    def train_model(self, run: TrainingRun) -> dict:
        from transformers import AutoModelForCausalLM
        from trl import DPOConfig

        tokenizer = self.load_tokenizer(run)
        config = self.load_config(run)
        if getattr(config, "is_encoder_decoder", False):
            raise ValueError(
                f"Trainer {run.step_name!r}: DPO trains causal language models, not encoder-decoders."
            )
        prompt = self.prompt_formatter(run, tokenizer, seq2seq=False)

        def to_preference(row: dict) -> dict:
            return {
                "prompt": prompt(str(row["prompts"])),
                "chosen": str(row["chosen"]),
                "rejected": str(row["rejected"]),
            }

        data = {}
        for split in ("train", "validation"):
            dataset = run.split(split)
            if dataset is not None:
                data[split] = dataset.map(to_preference, remove_columns=dataset.column_names)

        # TRL wraps the model in the adapter itself: the reference model is then the
        # base model with the adapter off, and only the adapter is saved.
        peft_config = self.peft_config(run, "CAUSAL_LM")
        plain = dataclasses.replace(run, args={**run.args, "peft_config": None})
        model = self.load_model(plain, AutoModelForCausalLM)
        a = run.args
        loss_type = [a["loss_type"]] if isinstance(a["loss_type"], str) else list(a["loss_type"])
        args = self.training_arguments(
            run,
            args_cls=DPOConfig,
            **{
                "beta": float(a["dpo_beta"]),
                "loss_type": loss_type,
                "disable_dropout": bool(a["disable_dropout"]),
                "precompute_ref_log_probs": bool(a["precompute_ref_log_probs"]),
                "max_length": self.max_length(run, tokenizer),
                **trl_defaults(run),
            },
        )
        trainer = dpo_trainer_class()(
            model=model,
            args=args,
            train_dataset=data["train"],
            eval_dataset=data.get("validation"),
            processing_class=tokenizer,
            peft_config=peft_config,
            callbacks=self.callbacks(run),
        )
        results = self.fit(run, trainer)
        info = {
            "task": "causal_lm",
            "chat_prompt_template": a.get("chat_prompt_template"),
            "system_prompt": a.get("system_prompt"),
        }
        self.save(run, trainer, tokenizer, info)
        return results
