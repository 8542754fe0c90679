"""DataDreamer's default DPO loss, ``kto_pair``, on the pinned TRL (which no longer ships it).

``kto_pair`` is eqn (7) of the HALOs paper as TRL 0.7 had it (and DataDreamer's
vendored ``DPOTrainer`` has it): with ``chosen_logratios = log pi(chosen) - log
pi_ref(chosen)`` (likewise rejected) for each pair of a batch,

    chosen_KL   = mean(chosen_logratios).clamp(min=0)
    rejected_KL = mean(rejected_logratios).clamp(min=0)
    losses = cat(1 - sigmoid(beta * (chosen_logratios - rejected_KL)),
                 1 - sigmoid(beta * (chosen_KL - rejected_logratios)))

and the loss is their mean. :func:`kto_pair_losses` is that formula;
:func:`dpo_trainer_class` is TRL's ``DPOTrainer`` with ``kto_pair`` added as a
loss name beside TRL's own (alone, or mixed with them by ``loss_weights``).

The hook: TRL computes every loss inside ``_compute_loss`` from local values.
The subclass hands TRL the reference log-probabilities as precomputed ones
(TRL's ``compute_ref_log_probs``, unless ``precompute_ref_log_probs`` already
did), records the policy model's output of TRL's own forward pass, and lets TRL
run with ``kto_pair`` swapped for a zero-weight ``sigmoid``: TRL's metrics
(``rewards/chosen``, ``rewards/rejected``, ``rewards/margins``,
``rewards/accuracies``, log-probs, entropy...) stay TRL's, and ``kto_pair`` is
added to TRL's loss from the same forward pass.
"""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["DPO_LOSS_TYPES", "KTO_PAIR", "dpo_trainer_class", "kto_pair_losses"]

#: The loss name, as DataDreamer and TRL 0.7 spell it.
KTO_PAIR = "kto_pair"
#: ``TrainHFDPO``'s ``loss_type`` names: ``kto_pair`` and the pinned TRL 1.16's own.
DPO_LOSS_TYPES = (
    KTO_PAIR,
    "sigmoid",
    "hinge",
    "ipo",
    "exo_pair",
    "nca_pair",
    "robust",
    "bco_pair",
    "sppo_hard",
    "aot",
    "aot_unpaired",
    "apo_zero",
    "apo_down",
    "discopop",
    "sft",
    "sigmoid_norm",
)


def kto_pair_losses(chosen_logratios: Any, rejected_logratios: Any, beta: float) -> Any:
    """The ``kto_pair`` per-sequence losses (a tensor of 2 x batch) from the policy's
    log-probability ratios to the reference model for each chosen and rejected answer."""
    import torch

    chosen_kl = chosen_logratios.mean().clamp(min=0)
    rejected_kl = rejected_logratios.mean().clamp(min=0)
    return torch.cat(
        (
            1 - torch.sigmoid(beta * (chosen_logratios - rejected_kl)),
            1 - torch.sigmoid(beta * (chosen_kl - rejected_logratios)),
        ),
        0,
    )


class _Recorded:
    """The policy model, recording the output of each call (TRL's own forward pass)."""

    def __init__(self, model: Any):
        self.__dict__["_model"] = model
        self.__dict__["outputs"] = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        outputs = self._model(*args, **kwargs)
        if self.__dict__["outputs"] is None:
            self.__dict__["outputs"] = outputs
        return outputs

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


@functools.cache
def dpo_trainer_class() -> type:
    """TRL's ``DPOTrainer`` with the ``kto_pair`` loss (imports trl: call at run time)."""
    from trl import DPOTrainer

    class DreamerDPOTrainer(DPOTrainer):
        """``DPOTrainer`` that also knows DataDreamer's ``kto_pair`` loss."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            if KTO_PAIR in self.loss_types and self.ld_alpha is not None:
                raise ValueError(
                    "loss_type 'kto_pair' uses whole-sequence log-probabilities; ld_alpha (LD-DPO) does "
                    "not apply to it. Fix: leave ld_alpha unset, or pick another loss_type."
                )

        def _compute_loss(self, model: Any, inputs: dict, return_outputs: bool) -> Any:
            if KTO_PAIR not in self.loss_types:
                return super()._compute_loss(model, inputs, return_outputs)
            loss_types, loss_weights = self.loss_types, self.loss_weights
            kto_weight = sum(w for t, w in zip(loss_types, loss_weights, strict=True) if t == KTO_PAIR)
            others = [(t, w) for t, w in zip(loss_types, loss_weights, strict=True) if t != KTO_PAIR]
            others = others or [("sigmoid", 0.0)]  # TRL still logs its metrics from the same pass
            inputs = dict(inputs)
            if not self.precompute_ref_logps:
                reference = self.ref_model or self.model
                inputs["ref_chosen_logps"], inputs["ref_rejected_logps"] = self.compute_ref_log_probs(
                    reference, inputs
                )
            recorded = _Recorded(model)
            precomputed = self.precompute_ref_logps
            self.loss_types, self.loss_weights = [t for t, _ in others], [w for _, w in others]
            self.precompute_ref_logps = True
            try:
                result = super()._compute_loss(recorded, inputs, return_outputs)
            finally:
                self.loss_types, self.loss_weights = loss_types, loss_weights
                self.precompute_ref_logps = precomputed
            loss, outputs = result if return_outputs else (result, None)
            # TRL's own forward pass: the policy's per-token log-probs of the completions
            seq_len = inputs["completion_mask"].size(1) - 1
            logps = recorded.outputs.log_probs[:, -seq_len:].sum(dim=1)
            chosen_logps, rejected_logps = logps.chunk(2, dim=0)
            losses = kto_pair_losses(
                chosen_logps - inputs["ref_chosen_logps"].to(logps.device),
                rejected_logps - inputs["ref_rejected_logps"].to(logps.device),
                self.beta,
            )
            loss = loss + losses.mean() * kto_weight
            return (loss, outputs) if return_outputs else loss

    return DreamerDPOTrainer
