"""The PPO loop of ``TrainHFPPO`` (TRL 1.x ships no PPO trainer; this is TRL 0.7's, compactly).

Each step takes a batch of prompts: the policy samples a response to each (``generate``),
the reward scores prompt + response, the policy, its value head and the frozen reference
(the base model with the LoRA adapter off, or a frozen copy) score the response tokens,
and :mod:`.ppo_math` turns that into per-token rewards (score minus the KL penalty), GAE
advantages and returns; then ``ppo_epochs`` passes over shuffled minibatches minimize the
clipped policy loss plus ``vf_coef`` times the clipped value loss. Evaluation generates
greedily and averages the rewards (``eval_rewards``).
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .ppo_math import (
    AdaptiveKLController,
    RunningMoments,
    gae_advantages,
    masked_mean,
    ppo_losses,
    token_rewards,
)

__all__ = ["SAMPLING_KWARGS", "PPOLoop", "PPOSettings", "value_head"]

#: Generation kwargs that sample; evaluation drops them and decodes greedily (DataDreamer's rule).
SAMPLING_KWARGS = ("temperature", "top_p", "typical_p", "top_k", "epsilon_cutoff", "eta_cutoff")


@dataclass
class PPOSettings:
    """TRL 0.7's ``PPOConfig`` fields as DataDreamer set them (``ppo_epochs=4``,
    ``mini_batch_size=batch_size``, ``use_score_scaling=True``), the rest at TRL's defaults."""

    batch_size: int = 8
    mini_batch_size: int | None = None
    ppo_epochs: int = 4
    learning_rate: float = 1e-5
    weight_decay: float = 0.01
    gamma: float = 1.0
    lam: float = 0.95
    cliprange: float = 0.2
    cliprange_value: float = 0.2
    vf_coef: float = 0.1
    kl_penalty: str = "kl"
    init_kl_coef: float = 0.2
    adap_kl_ctrl: bool = True
    target: float = 6.0
    horizon: float = 10000.0
    max_kl: float | None = None
    use_score_scaling: bool = True
    use_score_norm: bool = False
    score_clip: float | None = None
    whiten_rewards: bool = False
    ratio_threshold: float = 10.0
    max_grad_norm: float | None = None
    seed: int = 42
    generation_kwargs: dict = field(default_factory=dict)
    length_sampler: Callable[[], int] | None = None


def value_head(hidden_size: int, device: Any) -> Any:
    """TRL's value head: a linear layer from the last hidden state to one value a token."""
    import torch

    return torch.nn.Linear(hidden_size, 1).to(device)


class PPOLoop:
    """PPO of ``model`` (a causal LM, optionally a PEFT model) against ``reward(prompts, responses)``."""

    def __init__(
        self, model: Any, tokenizer: Any, reward: Callable, settings: PPOSettings, log: Callable
    ) -> None:
        import torch

        self.model, self.tokenizer, self.reward, self.s, self.log = model, tokenizer, reward, settings, log
        self.device = next(model.parameters()).device
        torch.manual_seed(settings.seed)
        self.value_head = value_head(model.config.hidden_size, self.device)
        self.is_peft = hasattr(model, "disable_adapter") and hasattr(model, "peft_config")
        self.reference = None if self.is_peft else _frozen_copy(model)
        params = [p for p in model.parameters() if p.requires_grad] + list(self.value_head.parameters())
        self.optimizer = torch.optim.AdamW(
            params, lr=settings.learning_rate, weight_decay=settings.weight_decay
        )
        self.kl_control = AdaptiveKLController(
            settings.init_kl_coef, settings.target if settings.adap_kl_ctrl else None, settings.horizon
        )
        self.scores_moments = RunningMoments()
        self.rng = random.Random(settings.seed)

    # -- generation and scoring -----------------------------------------------------

    def generate(self, prompts: list[str], greedy: bool = False) -> tuple[Any, Any, Any, list[str]]:
        """``(input_ids, attention_mask, response_mask, responses)`` for the formatted prompts."""
        import torch

        self.tokenizer.padding_side = "left"
        encoded = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        encoded = {k: v.to(self.device) for k, v in encoded.items()}
        kwargs = dict(self.s.generation_kwargs)
        if self.s.length_sampler is not None:
            kwargs["max_new_tokens"] = int(self.s.length_sampler())
        if greedy:
            kwargs = {k: v for k, v in kwargs.items() if k not in SAMPLING_KWARGS}
            kwargs["do_sample"] = False
        self.model.eval()
        with torch.no_grad():
            sequences = self.model.generate(**encoded, **kwargs, pad_token_id=self.tokenizer.pad_token_id)
        prompt_length = encoded["input_ids"].shape[1]
        response = sequences[:, prompt_length:]
        if response.shape[1] == 0:  # nothing generated: one EOS a row keeps the shapes
            response = torch.full((len(prompts), 1), self.tokenizer.eos_token_id, device=self.device)
            sequences = torch.cat([encoded["input_ids"], response], dim=1)
        is_eos = response == self.tokenizer.eos_token_id
        after_eos = (is_eos.cumsum(dim=1) - is_eos.long()) > 0  # tokens after the first EOS
        response_mask = (~after_eos).long()
        attention = torch.cat([encoded["attention_mask"], response_mask], dim=1)
        texts = [
            self.tokenizer.decode(row[mask.bool()], skip_special_tokens=True)
            for row, mask in zip(response, response_mask)
        ]
        return sequences, attention, response_mask, texts

    def forward(
        self, model: Any, sequences: Any, attention: Any, response_length: int, values: bool
    ) -> tuple:
        """Log-probabilities of the response tokens (and the value of each one's context)."""
        import torch

        output = model(input_ids=sequences, attention_mask=attention, output_hidden_states=values)
        start = sequences.shape[1] - response_length - 1
        logits = output.logits[:, start:-1].float()
        logprobs = torch.log_softmax(logits, dim=-1).gather(-1, sequences[:, start + 1 :, None]).squeeze(-1)
        if not values:
            return logprobs, None
        hidden = output.hidden_states[-1][:, start:-1]
        return logprobs, self.value_head(hidden.to(self.value_head.weight.dtype)).squeeze(-1).float()

    def reference_logprobs(self, sequences: Any, attention: Any, response_length: int) -> Any:
        if self.reference is not None:
            return self.forward(self.reference, sequences, attention, response_length, values=False)[0]
        with self.model.disable_adapter():
            return self.forward(self.model, sequences, attention, response_length, values=False)[0]

    # -- one PPO step ---------------------------------------------------------------

    def step(self, prompts: list[str], raw_prompts: list[str]) -> dict[str, float]:
        """Roll out, score and optimize on one batch; return its logged numbers."""
        import torch

        s = self.s
        sequences, attention, mask, responses = self.generate(prompts)
        raw_scores = torch.tensor(
            self.reward(raw_prompts, responses), dtype=torch.float32, device=self.device
        )
        scores = raw_scores.clone()
        if s.use_score_scaling:
            scores = self.scores_moments.scale(scores, normalize=s.use_score_norm)
        if s.score_clip is not None:
            scores = scores.clamp(-s.score_clip, s.score_clip)
        length = mask.shape[1]
        mask_f = mask.float()
        with torch.no_grad():
            old_logprobs, old_values = self.forward(self.model, sequences, attention, length, values=True)
            ref_logprobs = self.reference_logprobs(sequences, attention, length)
            rewards, kl = token_rewards(
                scores, old_logprobs, ref_logprobs, mask_f, self.kl_control.value, s.kl_penalty
            )
            if s.whiten_rewards:
                from .ppo_math import masked_whiten

                rewards = masked_whiten(rewards, mask_f, shift_mean=False)
            advantages, returns = gae_advantages(old_values, rewards, mask_f, s.gamma, s.lam)
        self.model.train()
        self.value_head.train()
        size = s.mini_batch_size or s.batch_size
        stats: dict[str, list[float]] = {"policy": [], "value": [], "ratio": [], "clipfrac": []}
        for _ in range(s.ppo_epochs):
            order = list(range(len(prompts)))
            self.rng.shuffle(order)
            for first in range(0, len(order), size):
                rows = torch.tensor(order[first : first + size], device=self.device)
                logprobs, values = self.forward(
                    self.model, sequences[rows], attention[rows], length, values=True
                )
                losses = ppo_losses(
                    logprobs,
                    old_logprobs[rows],
                    values,
                    old_values[rows],
                    advantages[rows],
                    returns[rows],
                    mask_f[rows],
                    s.cliprange,
                    s.cliprange_value,
                    s.vf_coef,
                    s.ratio_threshold,
                )
                self.optimizer.zero_grad()
                losses.total.backward()
                if s.max_grad_norm:
                    params = [p for group in self.optimizer.param_groups for p in group["params"]]
                    torch.nn.utils.clip_grad_norm_(params, s.max_grad_norm)
                self.optimizer.step()
                stats["policy"].append(float(losses.policy.detach()))
                stats["value"].append(float(losses.value.detach()))
                stats["ratio"].append(losses.ratio)
                stats["clipfrac"].append(losses.policy_clipfrac)
        mean_kl = float(kl.sum(dim=1).mean())
        coefficient = self.kl_control.value
        self.kl_control.update(mean_kl, len(prompts))
        return {
            "train_rewards": float(raw_scores.mean()),
            "train_scaled_rewards": float(scores.mean()),
            "train_kl_scaled_rewards_penalty": float((-coefficient * kl).sum(dim=1).mean()),
            "train_kl": mean_kl,
            "train_kl_coef": coefficient,
            "train_policy_alignment_loss": _mean(stats["policy"]),
            "train_value_estimation_loss": _mean(stats["value"]),
            "train_avg_ratio": _mean(stats["ratio"]),
            "train_clipfrac": _mean(stats["clipfrac"]),
            "train_response_length": float(masked_mean(mask_f, torch.ones_like(mask_f)) * length),
        }

    def evaluate(self, prompts: list[str], raw_prompts: list[str], batch_size: int) -> float:
        """The mean reward of greedy responses to the prompts."""
        scores: list[float] = []
        for first in range(0, len(prompts), batch_size):
            _, _, _, responses = self.generate(prompts[first : first + batch_size], greedy=True)
            scores += [float(x) for x in self.reward(raw_prompts[first : first + batch_size], responses)]
        return _mean(scores)

    # -- the whole training ---------------------------------------------------------

    def train(
        self,
        train: tuple[list[str], list[str]],
        validation: tuple[list[str], list[str]] | None,
        epochs: float,
        max_steps: int | None = None,
        early_stopping_patience: int | None = 5,
        early_stopping_threshold: float = 0.0,
    ) -> dict:
        """Train; keep the best model by ``eval_rewards`` when there is validation data."""
        s = self.s
        prompts, raw = train
        per_epoch = max(1, math.ceil(len(prompts) / s.batch_size))
        total = int(max_steps) if max_steps and max_steps > 0 else max(1, math.ceil(epochs * per_epoch))
        history: list[dict] = []
        table: list[dict] = []
        best: tuple[float, Any] | None = None
        worse = 0
        step = 0
        stopped = ""
        epoch = 0
        order: list[int] = []
        while step < total and not stopped:
            epoch += 1
            order = list(range(len(prompts)))
            self.rng.shuffle(order)
            epoch_rows: list[dict] = []
            for first in range(0, len(order), s.batch_size):
                rows = order[first : first + s.batch_size]
                logged = self.step([prompts[i] for i in rows], [raw[i] for i in rows])
                step += 1
                logged.update(step=step, epoch=round((epoch - 1) + (first + len(rows)) / len(order), 4))
                history.append(logged)
                epoch_rows.append(logged)
                self.log(f"step {step}/{total}: " + ", ".join(f"{k}={_short(v)}" for k, v in logged.items()))
                if s.max_kl is not None and logged["train_kl"] > s.max_kl:
                    stopped = f"kl {logged['train_kl']:.4g} > max_kl {s.max_kl}"
                    self.log(f"Stopping training: {stopped} (set max_kl=None to continue).")
                    break
                if step >= total:
                    break
            row = {"epoch": epoch, "train_rewards": round(_mean([r["train_rewards"] for r in epoch_rows]), 6)}
            if validation is not None:
                reward = self.evaluate(validation[0], validation[1], s.batch_size)
                row["eval_rewards"] = round(reward, 6)
                self.log(f"epoch {epoch}: eval_rewards={_short(reward)}")
                if best is None or reward > best[0] + early_stopping_threshold:
                    best, worse = (reward, self.snapshot()), 0
                else:
                    worse += 1
                    if early_stopping_patience is not None and worse >= early_stopping_patience:
                        stopped = f"eval_rewards did not improve for {worse} epochs"
            table.append(row)
        metrics: dict[str, Any] = {
            "global_step": step,
            "epoch": float(history[-1]["epoch"]) if history else 0.0,
        }
        if history:
            metrics["train_rewards"] = _mean([h["train_rewards"] for h in history])
            metrics["final_train_rewards"] = history[-1]["train_rewards"]
            metrics["train_kl"] = history[-1]["train_kl"]
            metrics["train_kl_coef"] = self.kl_control.value
        if best is not None:
            self.restore(best[1])
            metrics["eval_rewards"] = best[0]
            metrics["best_metric"] = best[0]
        if stopped:
            metrics["stopped"] = stopped
        return {"metrics": metrics, "metrics_table": table, "history": history}

    def snapshot(self) -> dict:
        """The trainable weights (all of them, or the adapter's), copied to the CPU."""
        return {
            k: v.detach().to("cpu", copy=True)
            for k, v in self.model.state_dict().items()
            if _trained(k, self)
        }

    def restore(self, weights: dict) -> None:
        self.model.load_state_dict(weights, strict=False)


def _trained(name: str, loop: PPOLoop) -> bool:
    return not loop.is_peft or "lora_" in name or "modules_to_save" in name


def _frozen_copy(model: Any) -> Any:
    reference = copy.deepcopy(model)
    reference.eval()
    for parameter in reference.parameters():
        parameter.requires_grad_(False)
    return reference


def _mean(values: list[float]) -> float:
    return float(sum(values) / len(values)) if values else 0.0


def _short(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value
