"""``TrainHFRewardModel``: a reward model (a one-output sequence classifier) from preferences or scores."""

from __future__ import annotations

import json
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from ..citations import RLHF_CITATION, TRL_CITATION
from ..deferred import ColumnRef
from .base import TrainingRun
from .hf_base import HFTrainer
from .train_arguments import train_arguments
from .train_hf_classifier import TrainHFClassifier
from .train_hf_dpo import trl_defaults
from .train_hf_fine_tune import AUTO, TrainHFFineTune, validate_chat_args
from .trained_models import adapter_base, trained_model_info

__all__ = ["TrainHFRewardModel", "load_reward_model", "reward_texts"]


#: The three ways to train, by the method that declares them.
OBJECTIVES = ("pairs", "pairs_and_scores", "scores")
_INPUTS_BY_OBJECTIVE: dict[str, tuple[str, ...]] = {
    "pairs": ("prompts", "chosen", "rejected"),
    "pairs_and_scores": ("prompts", "chosen", "chosen_scores", "rejected", "rejected_scores"),
    "scores": ("prompts", "generations", "scores"),
}


def _inputs(objective: str, validation_required: bool = False) -> dict[str, bool]:
    names = _INPUTS_BY_OBJECTIVE[objective]
    return {**{f"train_{n}": True for n in names}, **{f"validation_{n}": validation_required for n in names}}


class TrainHFRewardModel(TrainHFClassifier):
    """Trains a reward model: a sequence classifier with one output, the reward of a response to a prompt.

    Declare the training with one of DataDreamer's three methods:

    - ``train_with_pairs``: prompts with a chosen and a rejected response (TRL's
      ``RewardTrainer``: the chosen response must score higher);
    - ``train_with_pairs_and_scores``: the same pairs with each response's score;
      the chosen response must win by at least the score difference (the margin);
    - ``train_with_scores``: prompts, responses and their scores (regression).

    The model reads the prompt formatted as :class:`TrainHFFineTune` formats
    inputs (a chat model's chat template by default) followed by the response;
    :func:`load_reward_model` loads ``_model`` with that formatting, and
    :class:`TrainHFGRPO` scores completions with it. ``train()`` is not a
    method of this trainer. Writes ``_model``: the model (or its LoRA adapter
    with the score head), the tokenizer, the config (``num_labels=1``),
    ``training_args.json``, ``seed.json``, the model card and
    ``dreamer_trainer.json`` (``task``: ``sequence_classification``,
    ``reward_model``: true, the prompt formatting).
    """

    INPUTS: ClassVar[Mapping[str, bool]] = _inputs("pairs")
    MODEL_ARGS: ClassVar[Mapping[str, Any]] = {
        **HFTrainer.MODEL_ARGS,
        "chat_prompt_template": AUTO,
        "system_prompt": AUTO,
    }
    TRAIN_ARGS: ClassVar[Mapping[str, Any]] = {**TrainHFClassifier.TRAIN_ARGS, "objective": "pairs"}

    def __init__(
        self,
        name: str,
        model_name: Any,
        chat_prompt_template: str | None = AUTO,
        system_prompt: str | None = AUTO,
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
        super().__init__(
            name,
            model_name=model_name,
            chat_prompt_template=chat_prompt_template,
            system_prompt=system_prompt,
            revision=revision,
            trust_remote_code=trust_remote_code,
            device=device,
            dtype=dtype,
            quantization_config=quantization_config,
            peft_config=peft_config,
            distributed_config=distributed_config,
            fsdp=fsdp,
            fsdp_config=fsdp_config,
            force=force,
            verbose=verbose,
            log_level=log_level,
            **kwargs,
        )

    def validate_model_args(self) -> None:
        super().validate_model_args()
        validate_chat_args(self)

    def train(self, *args: Any, **kwargs: Any) -> TrainHFRewardModel:
        raise self.error(
            "a reward model is declared with .train_with_pairs(), .train_with_pairs_and_scores() or "
            ".train_with_scores(), not .train().",
            "train",
        )

    def _declare_objective(
        self, objective: str, columns: dict[str, Any], args: dict[str, Any]
    ) -> TrainHFRewardModel:
        self.INPUTS = _inputs(objective)  # this trainer's inputs: the declaring method's columns
        self.declare_training(inputs=columns, args={**args, "objective": objective})
        return self

    def train_with_pairs(
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
        seed: int = 42,
        *,
        early_stopping_patience: int | None = 5,
        early_stopping_threshold: float | None = 0.0,
        gradient_accumulation_steps: int = 1,
        max_length: int | None = None,
        callbacks: list | None = None,
        **kwargs: Any,
    ) -> TrainHFRewardModel:
        """Train on (prompt, chosen, rejected) pairs; ``**kwargs`` are ``trl.RewardConfig`` fields."""
        return self._declare_objective("pairs", *train_arguments(locals()))

    def train_with_pairs_and_scores(
        self,
        train_prompts: ColumnRef,
        train_chosen: ColumnRef,
        train_chosen_scores: ColumnRef,
        train_rejected: ColumnRef,
        train_rejected_scores: ColumnRef,
        validation_prompts: ColumnRef | None = None,
        validation_chosen: ColumnRef | None = None,
        validation_chosen_scores: ColumnRef | None = None,
        validation_rejected: ColumnRef | None = None,
        validation_rejected_scores: ColumnRef | None = None,
        truncate: bool = True,
        epochs: float = 3.0,
        batch_size: int = 8,
        optim: str = "adamw_torch",
        learning_rate: float = 1e-3,
        weight_decay: float = 0.01,
        lr_scheduler_type: str = "linear",
        warmup_steps: int = 0,
        neftune_noise_alpha: float | None = None,
        seed: int = 42,
        *,
        early_stopping_patience: int | None = 5,
        early_stopping_threshold: float | None = 0.0,
        gradient_accumulation_steps: int = 1,
        max_length: int | None = None,
        callbacks: list | None = None,
        **kwargs: Any,
    ) -> TrainHFRewardModel:
        """Train on scored pairs: the chosen response must win by the score difference."""
        return self._declare_objective("pairs_and_scores", *train_arguments(locals()))

    def train_with_scores(
        self,
        train_prompts: ColumnRef,
        train_generations: ColumnRef,
        train_scores: ColumnRef,
        validation_prompts: ColumnRef | None = None,
        validation_generations: ColumnRef | None = None,
        validation_scores: ColumnRef | None = None,
        truncate: bool = True,
        epochs: float = 3.0,
        batch_size: int = 8,
        optim: str = "adamw_torch",
        learning_rate: float = 1e-3,
        weight_decay: float = 0.01,
        lr_scheduler_type: str = "linear",
        warmup_steps: int = 0,
        neftune_noise_alpha: float | None = None,
        seed: int = 42,
        *,
        early_stopping_patience: int | None = 5,
        early_stopping_threshold: float | None = 0.0,
        gradient_accumulation_steps: int = 1,
        max_length: int | None = None,
        callbacks: list | None = None,
        **kwargs: Any,
    ) -> TrainHFRewardModel:
        """Train on (prompt, response, score) rows: regression onto the score."""
        return self._declare_objective("scores", *train_arguments(locals()))

    def validate(self) -> None:
        if self.args["objective"] not in OBJECTIVES:
            raise self.error(f"must be one of {list(OBJECTIVES)}.", "objective")

    def citations(self) -> list[str]:
        return [*HFTrainer.citations(self), TRL_CITATION, RLHF_CITATION]

    # -- run time -------------------------------------------------------------------

    def train_model(self, run: TrainingRun) -> dict:
        from transformers import AutoModelForSequenceClassification

        tokenizer = self.load_tokenizer(run)
        format_prompt = TrainHFFineTune.prompt_formatter(self, run, tokenizer, seq2seq=False)  # type: ignore[arg-type]
        max_length = run.args.get("max_length") or (
            min(int(tokenizer.model_max_length or 512), 4096) if run.args.get("truncate", True) else None
        )

        def encode(prompts: list, responses: list) -> list[list[int]]:
            texts = reward_texts(format_prompt, tokenizer, prompts, responses)
            return tokenizer(texts, truncation=max_length is not None, max_length=max_length)["input_ids"]

        objective = run.args["objective"]
        splits = {name: run.split(name) for name in ("train", "validation") if run.split(name) is not None}
        model = self.load_model(
            run,
            AutoModelForSequenceClassification,
            num_labels=1,
            label2id={"reward": 0},
            id2label={0: "reward"},
            problem_type="regression",
        )
        base_config = model.get_base_model().config if hasattr(model, "get_base_model") else model.config
        if base_config.pad_token_id is None:
            base_config.pad_token_id = tokenizer.pad_token_id
        if objective == "scores":
            trainer = self._regression_trainer(run, model, tokenizer, splits, encode)
        else:
            trainer = self._preference_trainer(run, model, tokenizer, splits, encode, max_length)
        results = self.fit(run, trainer)
        info = {
            "task": "sequence_classification",
            "reward_model": True,
            "objective": objective,
            "label2id": {"reward": 0},
            "id2label": {"0": "reward"},
            "problem_type": "regression",
            "is_multi_target": False,
            "chat_prompt_template": run.args.get("chat_prompt_template"),
            "system_prompt": run.args.get("system_prompt"),
        }
        self.save(run, trainer, tokenizer, info)
        if trainer.args.should_save:
            base_config.save_pretrained(str(run.model_dir))  # num_labels=1, also beside an adapter
            (run.model_dir / "label2id.json").write_text(json.dumps(info["label2id"], indent=2))
            (run.model_dir / "id2label.json").write_text(json.dumps(info["id2label"], indent=2))
        return results

    def _preference_trainer(
        self, run: TrainingRun, model: Any, tokenizer: Any, splits: dict, encode: Callable, max_length: Any
    ) -> Any:
        from trl import RewardConfig, RewardTrainer

        scored = run.args["objective"] == "pairs_and_scores"

        def to_ids(batch: dict) -> dict:
            out = {
                "chosen_ids": encode(batch["prompts"], batch["chosen"]),
                "rejected_ids": encode(batch["prompts"], batch["rejected"]),
            }
            if scored:
                out["margin"] = [
                    float(c) - float(r) for c, r in zip(batch["chosen_scores"], batch["rejected_scores"])
                ]
            return out

        data = {
            name: ds.map(to_ids, batched=True, remove_columns=ds.column_names) for name, ds in splits.items()
        }
        args = self.training_arguments(run, args_cls=RewardConfig, max_length=max_length, **trl_defaults(run))
        return RewardTrainer(
            model=model,
            args=args,
            train_dataset=data["train"],
            eval_dataset=data.get("validation"),
            processing_class=tokenizer,
            callbacks=self.callbacks(run),
        )

    def _regression_trainer(
        self, run: TrainingRun, model: Any, tokenizer: Any, splits: dict, encode: Callable
    ) -> Any:
        from transformers import DataCollatorWithPadding, Trainer

        def to_features(batch: dict) -> dict:
            ids = encode(batch["prompts"], batch["generations"])
            return {
                "input_ids": ids,
                "attention_mask": [[1] * len(x) for x in ids],
                "labels": [float(s) for s in batch["scores"]],
            }

        data = {
            name: ds.map(to_features, batched=True, remove_columns=ds.column_names)
            for name, ds in splits.items()
        }
        return Trainer(
            model=model,
            args=self.training_arguments(run),
            train_dataset=data["train"],
            eval_dataset=data.get("validation"),
            processing_class=tokenizer,
            data_collator=DataCollatorWithPadding(tokenizer),
            callbacks=self.callbacks(run),
        )

    def usage_snippet(self, run: TrainingRun, info: dict) -> str:
        path = str(run.checkpoints_dir.parent / "_model")
        return "\n".join(
            [
                "from dreamer_dagster.trainers.train_hf_reward_model import load_reward_model",
                "",
                f"score = load_reward_model({path!r})",
                "print(score(['Your prompt'], ['A response']))  # one reward a response",
            ]
        )


def reward_texts(
    format_prompt: Callable[[str], str], tokenizer: Any, prompts: list, responses: list
) -> list[str]:
    """What a reward model reads: the formatted prompt, then the response (and the EOS token).

    A bare prompt (no chat template) is separated from its response by a newline.
    """
    eos = tokenizer.eos_token or ""
    texts = []
    for prompt, response in zip(prompts, responses):
        formatted = format_prompt(str(prompt))
        joiner = "\n" if format_prompt is str else ""
        text = f"{formatted}{joiner}{response}"
        texts.append(text if not eos or text.endswith(eos) else text + eos)
    return texts


def load_reward_model(model_dir: str | Path, device: str = "cpu") -> Callable[[list, list], list[float]]:
    """A scoring function ``score(prompts, responses) -> rewards`` for a reward model's ``_model``.

    An adapter is merged into its base model; prompts are formatted as in training.
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model_dir = Path(model_dir)
    info = trained_model_info(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    base_path = adapter_base(str(model_dir))
    if base_path is not None:
        from peft import PeftModel

        base = AutoModelForSequenceClassification.from_pretrained(base_path, num_labels=1)
        model = PeftModel.from_pretrained(base, str(model_dir)).merge_and_unload()
    else:
        model = AutoModelForSequenceClassification.from_pretrained(str(model_dir), num_labels=1)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    model.to(device).eval()
    run = types.SimpleNamespace(
        args={
            "chat_prompt_template": info.get("chat_prompt_template", AUTO),
            "system_prompt": info.get("system_prompt", AUTO),
        }
    )
    format_prompt = TrainHFFineTune.prompt_formatter(None, run, tokenizer, seq2seq=False)  # type: ignore[arg-type]

    def score(prompts: list, responses: list) -> list[float]:
        texts = reward_texts(format_prompt, tokenizer, prompts, responses)
        inputs = tokenizer(texts, padding=True, truncation=True, return_tensors="pt").to(device)
        with torch.no_grad():
            return [float(x) for x in model(**inputs).logits[:, 0]]

    score.model = model  # type: ignore[attr-defined]
    score.tokenizer = tokenizer  # type: ignore[attr-defined]
    return score
