"""TrainHFGRPO through Dagster: GRPO against a TrainHFRewardModel step (the dependency edge)
or a Python reward function; the trained adapter or model loads back and generates."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from dreamer_dagster import dreamer_definitions
from dreamer_dagster.steps import DataSource
from dreamer_dagster.trainers import TrainHFDPO, TrainHFGRPO, TrainHFRewardModel
from tests.support.trainers import merged_adapter, moved_weights

pytestmark = pytest.mark.slow  # trains real models (still part of the suite)

PROMPTS = ["Say hi.", "Greet me.", "Hello?", "Wave.", "Say hey.", "Hi there."]


def prompts() -> DataSource:
    return DataSource("GRPO Prompts", data={"prompt": PROMPTS})


def materialize(steps: list, instance: dg.DagsterInstance, output: Path) -> dg.ExecuteInProcessResult:
    defs = dreamer_definitions(steps, output_folder=str(output))
    return dg.materialize(list(defs.assets), instance=instance, resources=dict(defs.resources))


def exclamations(prompts: list[str], completions: list[str]) -> list[float]:
    """A rule-based reward: the more exclamation marks, the better."""
    assert prompts and prompts[0] in PROMPTS  # the prompts as written, not chat-formatted
    return [float(c.count("!")) for c in completions]


def test_grpo_against_a_reward_model_trainer(
    tiny_llama: Path, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    pairs = DataSource(
        "GRPO Preference Pairs",
        data={
            "prompt": PROMPTS[:4],
            "chosen": ["Hi!", "Hello!", "Hey!", "Yo!"],
            "rejected": ["No.", "No.", "No.", "No."],
        },
    )
    reward = TrainHFRewardModel("GRPO Reward Model", model_name=str(tiny_llama)).train_with_pairs(
        train_prompts=pairs.output["prompt"],
        train_chosen=pairs.output["chosen"],
        train_rejected=pairs.output["rejected"],
        epochs=1,
        batch_size=4,
        max_length=48,
    )
    policy = TrainHFGRPO("GRPO Policy", model_name=str(tiny_llama), peft_config={"r": 4, "lora_alpha": 8})
    policy.train(
        train_prompts=prompts().output["prompt"],
        reward_model=reward,
        max_new_tokens=6,
        num_generations=2,
        epochs=1,
        batch_size=4,
        learning_rate=1e-2,
    )
    assert reward in policy.upstream()  # the reward model is a dependency of the policy
    defs = dreamer_definitions([policy], output_folder=str(tmp_path / "output"))
    graph = defs.resolve_asset_graph()
    assert reward.asset_key in graph.get(policy.asset_key).parent_keys

    output = tmp_path / "output"
    assert materialize([policy], instance, output).success
    model_dir = output / policy.folder / "_model"
    assert (model_dir / "adapter_config.json").is_file()
    record = json.loads((output / policy.folder / "step.json").read_text())
    assert record["metrics"]["global_step"] == 3  # 6 prompts x 2 completions / 4 a batch
    assert isinstance(record["metrics"]["train_reward"], float)
    assert record["args"]["reward_model"]["step"] == "GRPO Reward Model"

    # The adapter was trained: merged into the base, it moved the base's weights.
    original = AutoModelForCausalLM.from_pretrained(str(tiny_llama))
    assert moved_weights(original, merged_adapter(tiny_llama, model_dir))

    base = AutoModelForCausalLM.from_pretrained(str(tiny_llama))
    model = PeftModel.from_pretrained(base, str(model_dir))
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    inputs = tokenizer("Say hi.", return_tensors="pt")
    generated = model.generate(
        **inputs, max_new_tokens=3, do_sample=False, pad_token_id=tokenizer.pad_token_id
    )
    assert generated.shape[1] <= inputs["input_ids"].shape[1] + 3

    # The reward model's model_path adds the same edge; its folder, given as a path, adds none.
    by_path = TrainHFGRPO("GRPO By Model Path", model_name=str(tiny_llama)).train(
        train_prompts=prompts().output["prompt"],
        reward_model=reward.model_path,
        num_generations=2,
        batch_size=4,
    )
    assert reward in by_path.upstream()
    folder = str(output / reward.folder / "_model")
    by_folder = TrainHFGRPO("GRPO By Folder", model_name=str(tiny_llama)).train(
        train_prompts=prompts().output["prompt"],
        reward_model=folder,
        max_new_tokens=4,
        num_generations=2,
        epochs=1,
        batch_size=4,
    )
    assert reward not in by_folder.upstream()
    assert materialize([by_folder], instance, output).success
    assert (output / by_folder.folder / "_model" / "model.safetensors").is_file()
    trained = AutoModelForCausalLM.from_pretrained(str(output / by_folder.folder / "_model"))
    assert moved_weights(original, trained)


def test_grpo_with_a_reward_function_and_validation(
    tiny_llama: Path, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    from transformers import AutoModelForCausalLM

    splits = prompts().splits(train_size=4, validation_size=2)
    policy = TrainHFGRPO("GRPO With A Function", model_name=str(tiny_llama)).train(
        train_prompts=splits["train"].output["prompt"],
        validation_prompts=splits["validation"].output["prompt"],
        reward_model=exclamations,
        max_new_tokens=4,
        num_generations=2,
        epochs=1,
        batch_size=2,
        learning_rate=1e-3,
    )
    output = tmp_path / "output"
    assert materialize([policy], instance, output).success
    model_dir = output / policy.folder / "_model"
    assert not (model_dir / "adapter_config.json").exists()
    trained = AutoModelForCausalLM.from_pretrained(str(model_dir))
    assert trained.config.num_hidden_layers == 1
    assert moved_weights(AutoModelForCausalLM.from_pretrained(str(tiny_llama)), trained)
    metrics = json.loads((output / policy.folder / "step.json").read_text())["metrics"]
    assert "eval_reward" in metrics and metrics["global_step"] == 4


def no_leading_space(prompts: list[str], completions: list[str]) -> list[float]:
    """A rule-based reward a tiny model learns in a few steps: completions that do not
    begin with a space (roughly 30 % of the untrained model's first tokens)."""
    return [0.0 if c.startswith(" ") else 1.0 for c in completions]


def rewarded_mass(model, tokenizer) -> float:
    """The probability the model gives a first completion token that ``no_leading_space``
    rewards, averaged over the prompts: the expected reward, computed without sampling."""
    import torch

    rewarded = torch.tensor([not tokenizer.decode([i]).startswith(" ") for i in range(len(tokenizer))])
    masses = []
    for question in PROMPTS:
        prompt = tokenizer.apply_chat_template(
            [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
        )
        with torch.no_grad():
            logits = model(tokenizer(prompt, return_tensors="pt")["input_ids"]).logits[0, -1]
        masses.append(float(logits.softmax(-1)[rewarded].sum()))
    return sum(masses) / len(masses)


def test_grpo_moves_the_policy_toward_higher_reward(
    peaked_llama: Path, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    policy = TrainHFGRPO("GRPO Direction", model_name=str(peaked_llama)).train(
        train_prompts=prompts().output["prompt"],
        reward_model=no_leading_space,
        max_new_tokens=2,
        num_generations=4,
        epochs=1,
        batch_size=4,
        learning_rate=1e-2,
    )
    output = tmp_path / "output"
    assert materialize([policy], instance, output).success
    metrics = json.loads((output / policy.folder / "step.json").read_text())["metrics"]
    assert metrics["global_step"] == 6
    assert 0.0 < metrics["train_reward"] <= 1.0  # the reward as the function gave it
    tokenizer = AutoTokenizer.from_pretrained(str(peaked_llama))
    before = rewarded_mass(AutoModelForCausalLM.from_pretrained(str(peaked_llama)), tokenizer)
    after = rewarded_mass(
        AutoModelForCausalLM.from_pretrained(str(output / policy.folder / "_model")), tokenizer
    )
    # Trainer seeds 1, 2 and 42 raised it by 0.07 to 0.18; a flipped reward sign lowers it.
    assert after > before + 0.03, (before, after)


def test_grpo_declaration_is_checked(tiny_llama: Path) -> None:
    column = prompts().output["prompt"]
    with pytest.raises(ValueError, match="reward_model"):
        TrainHFGRPO("GRPO No Reward", model_name=str(tiny_llama)).train(train_prompts=column)
    with pytest.raises(ValueError, match="multiple of num_generations"):
        TrainHFGRPO("GRPO Odd Batch", model_name=str(tiny_llama)).train(
            train_prompts=column, reward_model=exclamations, batch_size=3, num_generations=2
        )
    pairs = DataSource("GRPO Not A Reward", data={"p": ["a"], "c": ["b"], "r": ["c"]})
    dpo = TrainHFDPO("GRPO A DPO Trainer", model_name=str(tiny_llama)).train(
        train_prompts=pairs.output["p"], train_chosen=pairs.output["c"], train_rejected=pairs.output["r"]
    )
    with pytest.raises(ValueError, match="not a TrainHFRewardModel"):
        TrainHFGRPO("GRPO Wrong Reward", model_name=str(tiny_llama)).train(
            train_prompts=column, reward_model=dpo
        )
