"""``TrainHFPPO``: DataDreamer's RL trainer, as TRL 1.x offers it (online RL with GRPO)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from ..deferred import ColumnRef
from .base import TrainingRun
from .train_hf_grpo import RAW_PROMPT, TrainHFGRPO

__all__ = ["TrainHFPPO"]

#: DataDreamer's PPO settings that GRPO has no counterpart for, with their defaults: a ported
#: script that keeps the defaults runs; one that changes them is told what to do instead.
_PPO_ONLY = {
    "adap_kl_ctrl": True,
    "adap_kl_target": 6.0,
    "max_kl": None,
    "optimizer": None,
    "lr_scheduler": None,
    "length_sampler": None,
    "reward_model_tokenizer": None,
}


class TrainHFPPO(TrainHFGRPO):
    """DataDreamer's ``TrainHFPPO``, spelled as DataDreamer spells it and trained with what TRL 1.x
    offers for online RL: Group Relative Policy Optimization (TRL removed ``PPOTrainer``).

    ``train(train_prompts, validation_prompts, reward_model, reward_model_tokenizer,
    max_new_tokens, temperature, top_p, generation_kwargs, truncate, epochs,
    batch_size, optimizer, learning_rate, weight_decay, lr_scheduler, seed,
    length_sampler, init_kl_coef, adap_kl_ctrl, adap_kl_target, max_kl, **kwargs)``.
    ``reward_model`` takes DataDreamer's forms: a :class:`TrainHFRewardModel`
    trainer (the dependency edge), a reward model's name or folder, or a function
    ``f(texts) -> scores`` called, as in DataDreamer, with each prompt and its
    completion joined (``prompt + completion``). ``init_kl_coef`` is GRPO's KL
    coefficient ``beta``. PPO's adaptive KL control, a custom optimizer or LR
    scheduler object, a length sampler and a separate reward tokenizer have no GRPO
    counterpart: left at DataDreamer's defaults they are accepted; set otherwise
    the declaration says what to use. ``num_generations`` (kwargs, default 4)
    completions are sampled a prompt. Writes what :class:`TrainHFGRPO` writes.
    """

    TRAIN_ARGS: ClassVar[Mapping[str, Any]] = {**TrainHFGRPO.TRAIN_ARGS, "reward_input": "texts"}

    def train(  # type: ignore[override]
        self,
        train_prompts: ColumnRef,
        validation_prompts: ColumnRef | None = None,
        reward_model: Any = None,
        reward_model_tokenizer: Any = None,
        max_new_tokens: int | None = None,
        temperature: float = 1.0,
        top_p: float = 1.0,
        generation_kwargs: dict | None = None,
        truncate: bool = True,
        epochs: float = 3.0,
        batch_size: int = 8,
        optimizer: Any = None,
        learning_rate: float = 1e-5,
        weight_decay: float = 0.01,
        lr_scheduler: Any = None,
        seed: int = 42,
        length_sampler: Callable | None = None,
        init_kl_coef: float = 0.2,
        adap_kl_ctrl: bool = True,
        adap_kl_target: float = 6.0,
        max_kl: float | None = None,
        **kwargs: Any,
    ) -> TrainHFPPO:
        """Declare the training; ``kwargs`` are ``trl.GRPOConfig`` fields (``num_generations``...)."""
        given = {
            "adap_kl_ctrl": adap_kl_ctrl,
            "adap_kl_target": adap_kl_target,
            "max_kl": max_kl,
            "optimizer": optimizer,
            "lr_scheduler": lr_scheduler,
            "length_sampler": length_sampler,
            "reward_model_tokenizer": reward_model_tokenizer,
        }
        for name, default in _PPO_ONLY.items():
            if given[name] != default:
                raise self.error(
                    "TrainHFPPO trains with GRPO (TRL 1.x has no PPO), which has no such setting. Fix: leave "
                    "it out (the KL penalty is init_kl_coef; an optimizer is optim='adamw_torch'; the reward "
                    "model's tokenizer is read from its folder).",
                    name,
                )
        num_generations = kwargs.pop("num_generations", 4)
        super().train(
            train_prompts=train_prompts,
            validation_prompts=validation_prompts,
            reward_model=reward_model,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            generation_kwargs=generation_kwargs,
            num_generations=num_generations,
            grpo_beta=init_kl_coef,
            truncate=truncate,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            seed=seed,
            **kwargs,
        )
        return self

    def declare_training(self, inputs: Mapping[str, Any], args: Mapping[str, Any]) -> TrainHFPPO:
        return super().declare_training(inputs, {**args, "reward_input": "texts"})

    @staticmethod
    def reward_function(reward: Any, run: TrainingRun) -> Callable[..., list[float]]:
        """DataDreamer's reward function takes the texts (prompt + completion); models as in GRPO."""
        if callable(reward) and not isinstance(reward, (str, Path)):
            user_function = reward

            def texts_reward(prompts: list, completions: list, **kwargs: Any) -> list[float]:
                raw = kwargs.get(RAW_PROMPT) or prompts
                return [float(x) for x in user_function([f"{p}{c}" for p, c in zip(raw, completions)])]

            texts_reward.__name__ = getattr(user_function, "__name__", "reward")
            return texts_reward
        return TrainHFGRPO.reward_function(reward, run)
