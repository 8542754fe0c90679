"""``TrainHFGRPO``: reinforcement learning of a causal LM against a reward (TRL's ``GRPOTrainer``)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from ..citations import GRPO_CITATION, TRL_CITATION
from ..deferred import ColumnRef, Deferred
from ..steps.step import REQUIRED, Step
from ..steps.user_code import user_code_error
from .base import TrainingRun
from .hf_base import HFTrainer
from .train_arguments import train_arguments
from .train_hf_dpo import trl_defaults
from .train_hf_fine_tune import TrainHFFineTune
from .train_hf_reward_model import TrainHFRewardModel, load_reward_model

__all__ = ["TrainHFGRPO"]


#: The dataset column holding each prompt as the user wrote it (reward functions get these).
RAW_PROMPT = "raw_prompt"
#: The dataset column holding each prompt's row index (named when a reward function raises).
ROW_INDEX = "dreamer_row"


class TrainHFGRPO(TrainHFFineTune):
    """Trains a causal LM with Group Relative Policy Optimization (TRL's ``GRPOTrainer``):
    for each of ``train_prompts`` it samples ``num_generations`` completions, scores
    them with ``reward_model`` and moves the model toward the better ones.

    Not in DataDreamer (its RL trainer, :class:`TrainHFPPO`, is here too); it
    takes the same kinds of reward:
    ``reward_model`` is a :class:`TrainHFRewardModel` trainer (which adds the
    dependency edge), its ``model_path``, the name or folder of a reward model
    (a one-output sequence classifier, or a ``_model`` adapter), or a Python
    function ``f(prompts, completions) -> list[float]`` (``prompts`` as given
    in ``train_prompts``); a list of these sums their rewards. Prompts are
    formatted as :class:`TrainHFFineTune` formats inputs (a chat model's chat
    template by default). ``batch_size`` counts completions, so it (times
    ``gradient_accumulation_steps``) must be a multiple of ``num_generations``.
    Writes ``_model``: the model or its LoRA adapter, the tokenizer,
    ``training_args.json``, ``seed.json``, the model card and
    ``dreamer_trainer.json`` (``task``: ``causal_lm``). Metrics: the mean
    reward (``train_reward``, and ``eval_reward`` on validation prompts).
    """

    INPUTS: ClassVar[Mapping[str, bool]] = {"train_prompts": True, "validation_prompts": False}
    TRAIN_ARGS: ClassVar[Mapping[str, Any]] = {
        **TrainHFFineTune.TRAIN_ARGS,
        "reward_model": REQUIRED,
        "max_new_tokens": None,
        "temperature": 1.0,
        "top_p": 1.0,
        "generation_kwargs": None,
        "num_generations": 4,
        "grpo_beta": 0.0,
        "loss_type": None,
        "learning_rate": 1e-5,
    }
    BEST_METRIC: ClassVar[str] = "eval_reward"
    GREATER_IS_BETTER: ClassVar[bool] = True

    def train(  # type: ignore[override]
        self,
        train_prompts: ColumnRef,
        validation_prompts: ColumnRef | None = None,
        reward_model: Any = None,
        max_new_tokens: int | None = None,
        temperature: float = 1.0,
        top_p: float = 1.0,
        generation_kwargs: dict | None = None,
        num_generations: int = 4,
        grpo_beta: float = 0.0,
        loss_type: str | None = None,
        truncate: bool = True,
        epochs: float = 3.0,
        batch_size: int = 8,
        optim: str = "adamw_torch",
        learning_rate: float = 1e-5,
        weight_decay: float = 0.01,
        lr_scheduler_type: str = "linear",
        warmup_steps: int = 0,
        neftune_noise_alpha: float | None = None,
        seed: int = 42,
        early_stopping_patience: int | None = 5,
        early_stopping_threshold: float | None = 0.0,
        gradient_accumulation_steps: int = 1,
        max_length: int | None = None,
        callbacks: list | None = None,
        **kwargs: Any,
    ) -> TrainHFGRPO:
        """Declare the training; ``**kwargs`` are ``trl.GRPOConfig`` fields. Returns the trainer."""
        if reward_model is None:
            raise self.error(
                "a reward is required: a TrainHFRewardModel trainer, a reward model's name or folder, "
                "or a function f(prompts, completions) -> list[float].",
                "reward_model",
            )
        self.declare_training(*train_arguments(locals()))
        return self

    def validate(self) -> None:
        rewards = self.args["reward_model"]
        for reward in rewards if isinstance(rewards, list) else [rewards]:
            if isinstance(reward, Step) and not isinstance(reward, TrainHFRewardModel):
                raise self.error(f"{reward!r} is not a TrainHFRewardModel trainer.", "reward_model")
            if not isinstance(reward, (str, Path, Step, Deferred)) and not callable(reward):
                raise self.error(
                    f"got {type(reward).__name__}; give a TrainHFRewardModel trainer, its model_path, a "
                    "reward model's name or folder, or a function f(prompts, completions) -> list[float].",
                    "reward_model",
                )
        generations = self.args["num_generations"]
        if not isinstance(generations, int) or generations < 2:
            raise self.error("GRPO compares at least 2 completions a prompt.", "num_generations")
        batch = self.args["batch_size"] * self.args["gradient_accumulation_steps"]
        if batch % generations:
            raise self.error(
                f"batch_size x gradient_accumulation_steps ({batch}) must be a multiple of "
                f"num_generations ({generations}): a batch holds whole groups of completions.",
                "batch_size",
            )
        if self.inputs.get("validation_prompts") is not None and self.args["batch_size"] % generations:
            raise self.error(
                f"with validation prompts, batch_size ({self.args['batch_size']}) must be a multiple of "
                f"num_generations ({generations}).",
                "batch_size",
            )

    def citations(self) -> list[str]:
        return [*HFTrainer.citations(self), TRL_CITATION, GRPO_CITATION]

    def derived_metrics(self, metrics: Mapping[str, Any]) -> dict:
        return HFTrainer.derived_metrics(self, metrics)

    # -- run time -------------------------------------------------------------------

    def train_model(self, run: TrainingRun) -> dict:
        from transformers import AutoModelForCausalLM
        from trl import GRPOConfig, GRPOTrainer

        tokenizer = self.load_tokenizer(run)
        tokenizer.padding_side = "left"  # GRPO generates from left-padded prompts
        prompt = self.prompt_formatter(run, tokenizer, seq2seq=False)

        def to_prompt(row: dict, index: int) -> dict:
            return {"prompt": prompt(str(row["prompts"])), RAW_PROMPT: str(row["prompts"]), ROW_INDEX: index}

        data = {}
        for split in ("train", "validation"):
            dataset = run.split(split)
            if dataset is not None:
                data[split] = dataset.map(to_prompt, with_indices=True, remove_columns=dataset.column_names)

        a = run.args
        rewards = a["reward_model"] if isinstance(a["reward_model"], list) else [a["reward_model"]]
        reward_funcs = [self.reward_function(reward, run) for reward in rewards]

        peft_config = self.peft_config(run, "CAUSAL_LM")
        plain = dataclasses.replace(run, args={**a, "peft_config": None})
        model = self.load_model(plain, AutoModelForCausalLM)
        options: dict[str, Any] = {
            "num_generations": int(a["num_generations"]),
            "temperature": float(a["temperature"]),
            "top_p": float(a["top_p"]),
            "beta": float(a["grpo_beta"]),
            "remove_unused_columns": False,
            **trl_defaults(run),
        }
        if a["max_new_tokens"] is not None:
            options["max_completion_length"] = int(a["max_new_tokens"])
        if a["generation_kwargs"]:
            options["generation_kwargs"] = dict(a["generation_kwargs"])
        if a["loss_type"] is not None:
            options["loss_type"] = a["loss_type"]
        args = self.training_arguments(run, args_cls=GRPOConfig, **options)
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=reward_funcs,
            args=args,
            train_dataset=data["train"],
            eval_dataset=data.get("validation"),
            processing_class=tokenizer,
            peft_config=peft_config,
            callbacks=self.callbacks(run),
        )
        results = self.fit(run, trainer)
        rewards_logged = [e["reward"] for e in trainer.state.log_history if "reward" in e]
        if rewards_logged:
            results["metrics"]["train_reward"] = float(sum(rewards_logged) / len(rewards_logged))
            results["metrics"]["final_train_reward"] = float(rewards_logged[-1])
        tokenizer.padding_side = "right"
        info = {
            "task": "causal_lm",
            "chat_prompt_template": a.get("chat_prompt_template"),
            "system_prompt": a.get("system_prompt"),
        }
        self.save(run, trainer, tokenizer, info)
        return results

    def epoch_table(self, history: list[dict]) -> list[dict]:
        table = super().epoch_table(history)
        by_epoch: dict[int, list[float]] = {}
        for entry in history:
            if "reward" in entry and entry.get("epoch") is not None:
                index = max(1, math.ceil(round(float(entry["epoch"]), 6)))
                by_epoch.setdefault(index, []).append(float(entry["reward"]))
        for row in table:
            values = by_epoch.get(row["epoch"])
            if values:
                row["train_reward"] = round(sum(values) / len(values), 6)
        return table

    @staticmethod
    def reward_function(reward: Any, run: TrainingRun) -> Callable[..., list[float]]:
        """A TRL reward function for one resolved ``reward_model`` value.

        A model (a folder, a name, a resolved trainer's ``_model``) is loaded with
        :func:`load_reward_model` and reads each prompt as it was trained to; a
        Python function gets the prompts as the user wrote them.
        """
        if callable(reward) and not isinstance(reward, (str, Path)):
            user_function = reward

            def user_reward(prompts: list, completions: list, **kwargs: Any) -> list[float]:
                raw = kwargs.get(RAW_PROMPT) or prompts
                try:
                    return [float(x) for x in user_function(list(raw), list(completions))]
                except Exception as error:
                    rows = sorted(set(kwargs.get(ROW_INDEX) or []))
                    row = ", ".join(str(r) for r in rows) if rows else None
                    raise user_code_error(
                        (run.step_name, "TrainHFGRPO"), "reward_model", row, error
                    ) from error

            user_reward.__name__ = getattr(user_function, "__name__", "reward")
            return user_reward
        score = load_reward_model(str(reward), device=HFTrainer.run_device(run))

        def model_reward(prompts: list, completions: list, **kwargs: Any) -> list[float]:
            raw = kwargs.get(RAW_PROMPT) or prompts
            return score(list(raw), [str(c) for c in completions])

        model_reward.__name__ = f"reward_model_{Path(str(reward)).parent.name or 'model'}"
        return model_reward
