"""PPO's arithmetic (trainers/ppo_math.py) against hand computations on tiny cases."""

from __future__ import annotations

import math

import pytest
import torch

from dreamer_dagster.trainers.ppo_math import (
    AdaptiveKLController,
    RunningMoments,
    gae_advantages,
    kl_penalty,
    ppo_losses,
    token_rewards,
)


def t(*rows: list[float]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


def test_gae_matches_the_hand_computation_and_ignores_masked_tokens() -> None:
    # gamma 0.9, lam 0.8: delta_1 = 1.0 - 0.4 = 0.6, A_1 = 0.6;
    # delta_0 = 0.2 + 0.9 * 0.4 - 0.5 = 0.06, A_0 = 0.06 + 0.9 * 0.8 * 0.6 = 0.492
    values, rewards = t([0.5, 0.4, 9.0]), t([0.2, 1.0, 5.0])
    mask = t([1.0, 1.0, 0.0])  # the third token is padding: its value and reward do not count
    advantages, returns = gae_advantages(values, rewards, mask, gamma=0.9, lam=0.8, whiten=False)
    assert advantages[0, :2].tolist() == pytest.approx([0.492, 0.6])
    assert returns[0, :2].tolist() == pytest.approx([0.992, 1.0])
    whitened, _ = gae_advantages(values, rewards, mask, gamma=0.9, lam=0.8)
    # mean 0.546, unbiased std of (0.492, 0.6) = 0.054 * sqrt(2): whitened to -+1/sqrt(2)
    assert whitened[0, :2].tolist() == pytest.approx([-1 / math.sqrt(2), 1 / math.sqrt(2)], abs=1e-4)


def test_clipped_policy_and_value_losses_match_the_hand_computation() -> None:
    old = t([0.0, 0.0, 0.0])
    new = torch.log(t([1.5, 0.5, 0.5]))  # ratios 1.5, 0.5, 0.5
    advantages = t([1.0, 1.0, -1.0])
    # -A*r vs -A*clip(r, 0.8, 1.2): max(-1.5, -1.2) = -1.2; max(-0.5, -0.8) = -0.5; max(0.5, 0.8) = 0.8
    values, old_values, returns = t([1.0, 0.0, 0.5]), t([0.5, 0.5, 0.5]), t([2.0, 0.0, 0.5])
    # V clipped to old +- 0.2: (0.7, 0.3, 0.5); max((V-R)^2, (Vc-R)^2) = (1.69, 0.09, 0)
    mask = torch.ones(1, 3)
    losses = ppo_losses(new, old, values, old_values, advantages, returns, mask, 0.2, 0.2, vf_coef=0.1)
    assert float(losses.policy) == pytest.approx((-1.2 - 0.5 + 0.8) / 3)
    assert float(losses.value) == pytest.approx(0.5 * (1.69 + 0.09) / 3)
    assert float(losses.total) == pytest.approx((-1.2 - 0.5 + 0.8) / 3 + 0.1 * 0.5 * (1.69 + 0.09) / 3)
    assert losses.policy_clipfrac == pytest.approx(2 / 3)
    assert losses.ratio == pytest.approx(2.5 / 3)
    # the loss moves the policy: its gradient raises the log-probability of the advantaged token
    new = torch.zeros(1, 3, requires_grad=True)
    ppo_losses(new, old, values, old_values, advantages, returns, mask).total.backward()
    assert new.grad[0, 0] < 0 < new.grad[0, 2]


def test_the_ratio_guard_zeroes_a_runaway_batch() -> None:
    ones = torch.ones(1, 2)
    losses = ppo_losses(torch.full((1, 2), 5.0), torch.zeros(1, 2), ones, ones, ones, ones, ones)
    assert losses.ratio > 10 and float(losses.total) == 0.0


def test_token_rewards_put_the_score_on_the_last_response_token_and_the_kl_on_every_one() -> None:
    logprobs, reference = t([-1.0, -2.0, -3.0], [-1.0, -1.0, -1.0]), t([-1.5, -2.0, -2.5], [-1.0, -1.0, -1.0])
    mask = t([1.0, 1.0, 0.0], [1.0, 0.0, 0.0])
    rewards, kl = token_rewards(t(2.0, -1.0).squeeze(0), logprobs, reference, mask, kl_coef=0.1)
    assert rewards.flatten().tolist() == pytest.approx([-0.05, 2.0, 0.0, -1.0, 0.0, 0.0])
    assert kl.flatten().tolist() == pytest.approx([0.5, 0.0, 0.0, 0.0, 0.0, 0.0])
    assert kl_penalty(t([-1.0]), t([-2.0]), "abs").tolist() == [[1.0]]
    assert kl_penalty(t([-1.0]), t([-3.0]), "mse").tolist() == [[2.0]]


def test_score_scaling_and_the_adaptive_kl_coefficient() -> None:
    moments = RunningMoments()
    scaled = moments.scale(torch.tensor([1.0, 3.0]))
    assert moments.mean == pytest.approx(2.0) and moments.std == pytest.approx(math.sqrt(2))
    assert scaled.tolist() == pytest.approx([1 / math.sqrt(2), 3 / math.sqrt(2)], rel=1e-5)
    control = AdaptiveKLController(0.2, target=6.0, horizon=100)
    control.update(kl=12.0, n_steps=10)  # error clipped to 0.2: 0.2 * (1 + 0.2 * 10 / 100)
    assert control.value == pytest.approx(0.204)
    control.update(kl=5.4, n_steps=10)  # error -0.1: 0.204 * (1 - 0.1 * 0.1)
    assert control.value == pytest.approx(0.204 * 0.99)
    fixed = AdaptiveKLController(0.2, target=None, horizon=100)
    fixed.update(kl=100.0, n_steps=10)
    assert fixed.value == 0.2
