"""DataDreamer's default DPO loss, ``kto_pair``, on the pinned TRL: the formula against a
hand computation, the trainer's loss against the formula on TRL's own log-probabilities,
and the declaration (default, names, signature order)."""

from __future__ import annotations

import inspect
import math
from pathlib import Path

import pytest

from dreamer_dagster.steps import DataSource
from dreamer_dagster.trainers import TrainHFDPO
from dreamer_dagster.trainers.kto_pair import kto_pair_losses


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_kto_pair_losses_match_a_hand_computation_on_two_rows() -> None:
    import torch

    beta = 0.5
    policy_chosen, reference_chosen = [-1.0, -2.0], [-2.0, -2.2]  # log-ratios 1.0, 0.2: KL 0.6
    policy_rejected, reference_rejected = [-3.0, -2.5], [-2.6, -1.5]  # log-ratios -0.4, -1.0: KL 0
    chosen = [p - r for p, r in zip(policy_chosen, reference_chosen)]
    rejected = [p - r for p, r in zip(policy_rejected, reference_rejected)]
    chosen_kl = max(0.0, sum(chosen) / 2)
    rejected_kl = max(0.0, sum(rejected) / 2)
    expected = [1 - sigmoid(beta * (c - rejected_kl)) for c in chosen] + [
        1 - sigmoid(beta * (chosen_kl - r)) for r in rejected
    ]
    assert chosen_kl == pytest.approx(0.6) and rejected_kl == 0.0
    assert expected[0] == pytest.approx(1 - sigmoid(0.5)) and expected[3] == pytest.approx(1 - sigmoid(0.8))

    losses = kto_pair_losses(
        torch.tensor(policy_chosen) - torch.tensor(reference_chosen),
        torch.tensor(policy_rejected) - torch.tensor(reference_rejected),
        beta,
    )
    assert losses.tolist() == pytest.approx(expected, abs=1e-6)
    assert float(losses.mean()) == pytest.approx(sum(expected) / 4, abs=1e-6)

    # The rejected half's KL is clamped at 0 only when negative: a positive one enters.
    losses = kto_pair_losses(torch.tensor([0.3, 0.1]), torch.tensor([0.5, 0.7]), 1.0)
    assert losses.tolist() == pytest.approx(
        [1 - sigmoid(0.3 - 0.6), 1 - sigmoid(0.1 - 0.6), 1 - sigmoid(0.2 - 0.5), 1 - sigmoid(0.2 - 0.7)],
        abs=1e-6,
    )


@pytest.mark.slow
def test_the_trainers_kto_pair_loss_is_the_formula_on_trls_log_probs(
    tiny_llama: Path, tmp_path: Path
) -> None:
    """One batch through the trainer: its loss is kto_pair of the policy's and the reference
    model's log-probabilities (TRL's own ``compute_ref_log_probs`` on each), computed by hand;
    TRL's reward metrics are still logged."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig

    from dreamer_dagster.trainers.kto_pair import dpo_trainer_class

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_llama))
    reference = AutoModelForCausalLM.from_pretrained(str(tiny_llama))
    policy = AutoModelForCausalLM.from_pretrained(str(tiny_llama))
    torch.manual_seed(1)
    with torch.no_grad():
        for parameter in policy.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.5)  # a policy that differs from its reference
    data = Dataset.from_dict(
        {"prompt": ["Say hi.", "Wave."], "chosen": ["Hi!", "Hello!"], "rejected": ["No.", "Never."]}
    )
    beta = 0.5
    args = DPOConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=2,
        loss_type=["kto_pair"],
        beta=beta,
        max_length=48,
        use_cpu=True,
        report_to="none",
        bf16=False,
        activation_checkpointing=False,
    )
    trainer = dpo_trainer_class()(
        model=policy, ref_model=reference, args=args, train_dataset=data, processing_class=tokenizer
    )
    batch = next(iter(trainer.get_train_dataloader()))
    policy.train()
    loss = trainer.compute_loss(policy, batch)

    policy_chosen, policy_rejected = trainer.compute_ref_log_probs(policy, batch)
    ref_chosen, ref_rejected = trainer.compute_ref_log_probs(reference, batch)
    chosen = (policy_chosen - ref_chosen).tolist()
    rejected = (policy_rejected - ref_rejected).tolist()
    assert any(abs(x) > 0.1 for x in chosen + rejected)  # the two models do differ
    chosen_kl = max(0.0, sum(chosen) / len(chosen))
    rejected_kl = max(0.0, sum(rejected) / len(rejected))
    expected = [1 - sigmoid(beta * (c - rejected_kl)) for c in chosen] + [
        1 - sigmoid(beta * (chosen_kl - r)) for r in rejected
    ]
    assert loss.item() == pytest.approx(sum(expected) / len(expected), abs=1e-4)
    assert loss.requires_grad  # it trains the policy
    metrics = trainer._metrics["train"]
    for name in ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"):
        assert metrics[name], name
    assert metrics["rewards/chosen"][-1] == pytest.approx(beta * sum(chosen) / len(chosen), abs=1e-4)


def test_dpo_declares_kto_pair_by_default_in_datadreamers_order(tiny_llama: Path) -> None:
    names = list(inspect.signature(TrainHFDPO.train).parameters)
    assert names[names.index("dpo_beta") :][:5] == [
        "dpo_beta",
        "loss_type",
        "disable_dropout",
        "seed",
        "precompute_ref_log_probs",
    ]
    assert inspect.signature(TrainHFDPO.train).parameters["loss_type"].default == "kto_pair"
    pairs = DataSource("KTO Pairs", data={"q": ["a"], "chosen": ["b"], "rejected": ["c"]})
    columns = {
        "train_prompts": pairs.output["q"],
        "train_chosen": pairs.output["chosen"],
        "train_rejected": pairs.output["rejected"],
    }
    default = TrainHFDPO("Default Loss", model_name=str(tiny_llama)).train(**columns)
    assert default.args["loss_type"] == "kto_pair"
    named = TrainHFDPO("Default Loss", model_name=str(tiny_llama)).train(**columns, loss_type="kto_pair")
    assert named.fingerprint == default.fingerprint
    sigmoid_loss = TrainHFDPO("Default Loss", model_name=str(tiny_llama)).train(
        **columns, loss_type="sigmoid"
    )
    assert sigmoid_loss.fingerprint != default.fingerprint
    with pytest.raises(
        ValueError, match=r"(?s)'Typo Loss'.*loss_type.*unknown DPO loss 'kto_pairs'.*kto_pair"
    ):
        TrainHFDPO("Typo Loss", model_name=str(tiny_llama)).train(**columns, loss_type="kto_pairs")
