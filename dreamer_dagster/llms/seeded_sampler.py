"""Sampling with one random generator per sequence, as a logits processor."""

from __future__ import annotations

from typing import Any

__all__ = ["SeededSampler"]


class SeededSampler:
    """Samples each row's next token with that row's own seeded generator.

    transformers samples a whole batch from one global generator, so a prompt's
    sample would depend on which prompts share its batch. This processor draws
    each row's token itself (temperature, top-k, top-p applied) and returns
    scores where only that token is finite; generation then runs greedily and
    picks it. Same seed, same prompt: same sample, at any batch size.
    """

    def __init__(self, seeds: list[int], temperature: float, top_p: float, top_k: int | None = None):
        self.seeds = seeds
        self.temperature = temperature
        self.top_p = top_p
        self.top_k = top_k
        self._generators: list[Any] | None = None

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        if self._generators is None:
            self._generators = [
                torch.Generator(device=scores.device).manual_seed(seed % (2**63)) for seed in self.seeds
            ]
        if scores.shape[0] != len(self._generators):
            raise RuntimeError(f"SeededSampler got {scores.shape[0]} rows for {len(self._generators)} seeds.")
        logits = scores.float() / max(self.temperature, 1e-5)
        if self.top_k:
            kth = torch.topk(logits, min(self.top_k, logits.shape[-1]), dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = torch.softmax(logits, dim=-1)
        if self.top_p < 1.0:
            sorted_probs, order = probs.sort(dim=-1, descending=True)
            # Keep the smallest prefix whose mass reaches top_p (always the first token).
            outside = sorted_probs.cumsum(dim=-1) - sorted_probs > self.top_p
            sorted_probs = sorted_probs.masked_fill(outside, 0.0)
            probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
        chosen = torch.stack(
            [
                torch.multinomial(probs[row], 1, generator=generator)
                for row, generator in enumerate(self._generators)
            ]
        )
        out = torch.full_like(scores, float("-inf"))
        return out.scatter(-1, chosen, 0.0)
