"""PPO's arithmetic, as TRL 0.7's ``PPOTrainer`` (DataDreamer's ``TrainHFPPO``) computed it.

Plain tensor functions, one a formula, so each can be checked against a hand computation:
the per-token rewards (the score on the last response token, a KL penalty on every token),
GAE advantages (whitened) and returns, the clipped policy and value losses, the running
score scaling and the adaptive KL coefficient. Tensors are ``[batch, tokens]``; ``mask``
is 1 on response tokens. torch is imported by the caller (it is passed tensors).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "AdaptiveKLController",
    "PPOLosses",
    "RunningMoments",
    "gae_advantages",
    "kl_penalty",
    "masked_mean",
    "masked_whiten",
    "ppo_losses",
    "token_rewards",
]


def masked_mean(values: Any, mask: Any) -> Any:
    """The mean of ``values`` where ``mask`` is 1."""
    return (values * mask).sum() / mask.sum()


def masked_whiten(values: Any, mask: Any, shift_mean: bool = True) -> Any:
    """``values`` scaled to unit variance (and zero mean with ``shift_mean``) over the mask;
    the variance is the unbiased one, as TRL's."""
    import torch

    mean = masked_mean(values, mask)
    centered = values - mean
    variance = masked_mean(centered**2, mask)
    count = mask.sum()
    if count > 1:
        variance = variance * count / (count - 1)
    whitened = centered * torch.rsqrt(variance + 1e-8)
    return whitened if shift_mean else whitened + mean


def kl_penalty(logprobs: Any, ref_logprobs: Any, kind: str = "kl") -> Any:
    """The per-token KL estimate between the policy and the reference (TRL's ``kl_penalty``):
    ``kl`` (the log ratio), ``abs`` (its absolute value) or ``mse`` (half its square)."""
    diff = logprobs - ref_logprobs
    if kind == "kl":
        return diff
    if kind == "abs":
        return diff.abs()
    if kind == "mse":
        return 0.5 * diff.square()
    raise ValueError(f"kl_penalty must be 'kl', 'abs' or 'mse', not {kind!r}")


def token_rewards(scores: Any, logprobs: Any, ref_logprobs: Any, mask: Any, kl_coef: float, kind: str = "kl"):
    """Per-token rewards: ``-kl_coef * KL`` on each response token, plus each sequence's score on
    its last response token. Returns ``(rewards, kl)``, both masked."""
    kl = kl_penalty(logprobs, ref_logprobs, kind) * mask
    rewards = -kl_coef * kl
    positions = mask.shape[1] - 1 - mask.flip(1).argmax(dim=1)  # each row's last response token
    rewards[range(mask.shape[0]), positions] += scores
    return rewards * mask, kl


def gae_advantages(
    values: Any, rewards: Any, mask: Any, gamma: float = 1.0, lam: float = 0.95, whiten: bool = True
):
    """Generalized advantage estimation: ``delta_t = r_t + gamma * V_{t+1} - V_t`` and
    ``A_t = delta_t + gamma * lam * A_{t+1}``; the returns are ``A + V`` (before whitening).
    Returns ``(advantages, returns)``; the advantages whitened over the mask (TRL's)."""
    import torch

    values = values * mask
    rewards = rewards * mask
    length = rewards.shape[-1]
    last = torch.zeros_like(rewards[:, 0])
    reversed_advantages = []
    for t in reversed(range(length)):
        next_values = values[:, t + 1] if t < length - 1 else torch.zeros_like(values[:, t])
        delta = rewards[:, t] + gamma * next_values - values[:, t]
        last = delta + gamma * lam * last
        reversed_advantages.append(last)
    advantages = torch.stack(reversed_advantages[::-1], dim=1)
    returns = advantages + values
    if whiten:
        advantages = masked_whiten(advantages, mask)
    return advantages.detach(), returns.detach()


@dataclass
class PPOLosses:
    """One minibatch's losses: ``total = policy + vf_coef * value``, and what they measured."""

    total: Any
    policy: Any
    value: Any
    ratio: float
    policy_clipfrac: float
    value_clipfrac: float


def ppo_losses(
    logprobs: Any,
    old_logprobs: Any,
    values: Any,
    old_values: Any,
    advantages: Any,
    returns: Any,
    mask: Any,
    cliprange: float = 0.2,
    cliprange_value: float = 0.2,
    vf_coef: float = 0.1,
    ratio_threshold: float = 10.0,
) -> PPOLosses:
    """The clipped surrogate losses: ``max(-A * r, -A * clip(r, 1 - eps, 1 + eps))`` with
    ``r = exp(logp - old_logp)`` for the policy, ``0.5 * max((V - R)^2, (clip(V) - R)^2)``
    (``V`` clipped to ``old_V +- cliprange_value``) for the value head, masked means.
    A batch whose mean ratio passes ``ratio_threshold`` contributes nothing (TRL's guard)."""
    import torch

    clipped_values = torch.clamp(values, old_values - cliprange_value, old_values + cliprange_value)
    value_losses = (values - returns) ** 2
    clipped_value_losses = (clipped_values - returns) ** 2
    value_loss = 0.5 * masked_mean(torch.max(value_losses, clipped_value_losses), mask)
    ratio = torch.exp(logprobs - old_logprobs)
    policy_losses = -advantages * ratio
    clipped_policy_losses = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    policy_loss = masked_mean(torch.max(policy_losses, clipped_policy_losses), mask)
    total = policy_loss + vf_coef * value_loss
    mean_ratio = float(masked_mean(ratio, mask).detach())
    if mean_ratio > ratio_threshold:
        total, policy_loss, value_loss = total * 0.0, policy_loss * 0.0, value_loss * 0.0
    return PPOLosses(
        total=total,
        policy=policy_loss,
        value=value_loss,
        ratio=mean_ratio,
        policy_clipfrac=float(masked_mean((clipped_policy_losses > policy_losses).float(), mask)),
        value_clipfrac=float(masked_mean((clipped_value_losses > value_losses).float(), mask)),
    )


class RunningMoments:
    """The running mean and standard deviation of the scores (TRL's ``use_score_scaling``:
    each batch's scores are divided by the running std; with ``use_score_norm`` also centred)."""

    def __init__(self) -> None:
        self.mean, self.var, self.std, self.count = 0.0, 1.0, 1.0, 1e-24

    def update(self, scores: Any) -> None:
        n = int(scores.numel())
        batch_mean = float(scores.mean())
        batch_var = float(scores.var(unbiased=False)) if n > 1 else 0.0
        delta = batch_mean - self.mean
        total = self.count + n
        sum_squares = self.var * self.count + delta**2 * self.count * n / total + batch_var * n
        self.mean += delta * n / total
        self.var = sum_squares / total
        self.std = (self.var * total / max(total - 1, 1e-24)) ** 0.5
        self.count = total

    def scale(self, scores: Any, normalize: bool = False) -> Any:
        """Update with ``scores``, then return them scaled."""
        import torch

        self.update(scores)
        # TRL divides by std + eps; identical scores (std 0) would then blow up: keep them as they are
        factor = self.std + torch.finfo(scores.dtype).eps if self.std > 1e-6 else 1.0
        return (scores - self.mean) / factor if normalize else scores / factor


class AdaptiveKLController:
    """The KL coefficient (Ziegler et al.): fixed, or moved toward ``target`` KL over ``horizon``
    samples: ``coef *= 1 + clip(kl / target - 1, -0.2, 0.2) * n / horizon``."""

    def __init__(self, init_kl_coef: float, target: float | None, horizon: float) -> None:
        self.value, self.target, self.horizon = float(init_kl_coef), target, float(horizon)

    def update(self, kl: float, n_steps: int) -> None:
        if self.target is None:
            return
        error = min(max(kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon
