"""TrainHFPPO trains with PPO (trainers/ppo_loop.py) as DataDreamer's: SmolLM2 with LoRA learns
a reward on CPU (held-out reward rises), a full model trains against a frozen reference, and
DataDreamer's arguments are taken or refused at declaration with the fix."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from dreamer_dagster import dreamer_definitions
from dreamer_dagster.steps import DataSource, StepDeclarationError
from dreamer_dagster.trainers import TrainHFPPO, TrainHFRewardModel

TRAIN = ["Say hi.", "Greet me.", "Hello?", "Wave.", "Say hey.", "Hi there.", "Welcome me.", "Good morning."]
HELD_OUT = ["Greet a friend.", "Say hello.", "Good evening.", "Hi there, friend."]
SEEN: list[str] = []


def exclamations(texts: list[str]) -> list[float]:
    """DataDreamer's reward form: f(texts) -> scores, each text a prompt joined to its response."""
    SEEN.extend(texts)
    return [float(text.count("!")) for text in texts]


def materialize(steps: list, instance: dg.DagsterInstance, output: Path) -> dg.ExecuteInProcessResult:
    defs = dreamer_definitions(steps, output_folder=str(output))
    return dg.materialize(list(defs.assets), instance=instance, resources=dict(defs.resources))


def greedy_reward(model, tokenizer, prompts: list[str]) -> float:
    """The mean reward of greedy 4-token responses (chat-formatted prompts), as PPO's evaluation."""
    import torch

    tokenizer.padding_side = "left"
    chats = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
        )
        for p in prompts
    ]
    encoded = tokenizer(chats, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(
            **encoded, max_new_tokens=4, do_sample=False, pad_token_id=tokenizer.pad_token_id
        )
    texts = tokenizer.batch_decode(out[:, encoded["input_ids"].shape[1] :], skip_special_tokens=True)
    return sum(text.count("!") for text in texts) / len(texts)


@pytest.mark.slow
def test_ppo_on_smollm2_raises_the_held_out_reward(
    smollm2: Path, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    prompts = DataSource("PPO Prompts", data={"prompt": TRAIN})
    policy = TrainHFPPO("PPO SmolLM2", model_name=str(smollm2), peft_config={"r": 8, "lora_alpha": 16}).train(
        prompts.output["prompt"],
        None,
        exclamations,
        max_new_tokens=4,
        epochs=2,
        batch_size=4,
        learning_rate=5e-3,
        init_kl_coef=0.05,
        max_kl=None,  # DataDreamer's None: never stop on the KL ("auto": 1.5 x adap_kl_target)
        ppo_epochs=2,
    )
    SEEN.clear()
    output = tmp_path / "output"
    assert materialize([policy], instance, output).success
    assert SEEN and all(any(text.startswith(p) for p in TRAIN) for text in SEEN)  # prompt + response
    record = json.loads((output / policy.folder / "step.json").read_text())
    metrics = record["metrics"]
    assert record["type"] == "TrainHFPPO" and metrics["global_step"] == 4  # 8 prompts / 4, 2 epochs
    assert metrics["train_kl_coef"] != 0.05  # the adaptive KL controller moved it
    model_dir = output / policy.folder / "_model"
    assert (model_dir / "adapter_config.json").is_file() and not (model_dir / "config.json").exists()
    config = json.loads((model_dir / "ppo_config.json").read_text())
    assert config["ppo_epochs"] == 2 and config["generation_kwargs"]["top_k"] == 50

    tokenizer = AutoTokenizer.from_pretrained(str(smollm2))
    base = AutoModelForCausalLM.from_pretrained(str(smollm2))
    before = greedy_reward(base, tokenizer, HELD_OUT)
    after = greedy_reward(PeftModel.from_pretrained(base, str(model_dir)), tokenizer, HELD_OUT)
    assert after > before, (before, after)


@pytest.mark.slow
def test_ppo_of_a_full_model_with_validation_keeps_the_best_epoch(
    tiny_llama: Path, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    prompts = DataSource("PPO Full Prompts", data={"prompt": TRAIN[:4]})
    held_out = DataSource("PPO Full Held Out", data={"prompt": HELD_OUT[:2]})
    policy = TrainHFPPO("PPO Full", model_name=str(tiny_llama)).train(
        prompts.output["prompt"],
        held_out.output["prompt"],
        exclamations,
        generation_kwargs={"max_new_tokens": 3},
        epochs=2,
        batch_size=2,
        ppo_epochs=1,
        adap_kl_ctrl=False,
    )
    output = tmp_path / "output"
    assert materialize([policy], instance, output).success
    record = json.loads((output / policy.folder / "step.json").read_text())
    assert [row["epoch"] for row in record["metrics_table"]] == [1, 2]
    assert all("eval_rewards" in row for row in record["metrics_table"])
    assert record["metrics"]["eval_rewards"] == max(row["eval_rewards"] for row in record["metrics_table"])
    assert record["metrics"]["train_kl_coef"] == 0.2  # fixed without adaptive control
    model_dir = output / policy.folder / "_model"
    assert (model_dir / "config.json").is_file() and (model_dir / "model.safetensors").is_file()
    info = json.loads((model_dir / "dreamer_trainer.json").read_text())
    assert info["task"] == "causal_lm" and info["adapter"] is False and info["trainer"] == "TrainHFPPO"


def test_ppo_takes_datadreamers_arguments_and_refuses_what_cannot_work(tiny_llama: Path) -> None:
    import torch

    prompts = DataSource("PPO Declared Prompts", data={"prompt": ["a", "b"]}).output["prompt"]
    pairs = DataSource("PPO Pairs", data={"p": ["a"], "c": ["b"], "r": ["c"]})
    reward = TrainHFRewardModel("PPO Reward", model_name=str(tiny_llama)).train_with_pairs(
        pairs.output["p"], pairs.output["c"], pairs.output["r"], None, None, None
    )
    policy = TrainHFPPO("PPO Declared", model_name=str(tiny_llama)).train(
        prompts, None, reward, None, None, 0.7, 0.9, None, True, 1.0, 4, None, 1e-4, 0.0, None, 7,
        lambda: 3, 0.1, True, 3.0, 9.0, cliprange=0.1, max_steps=2,
    )  # fmt: skip
    assert reward in policy.upstream()  # a reward model trainer is a dependency
    assert policy.args["max_kl"] == 9.0 and policy.args["ppo_kwargs"] == {"cliprange": 0.1}
    assert policy.args["max_steps"] == 2 and policy.args["seed"] == 7

    def declare(name: str, **kwargs: object) -> None:
        TrainHFPPO(f"PPO Bad {name}", model_name=str(tiny_llama)).train(prompts, **kwargs)

    with pytest.raises(StepDeclarationError, match="'reward_model'.*required"):
        declare("none")
    with pytest.raises(StepDeclarationError, match="'optimizer'.*only at run time"):
        declare("optimizer", reward_model=exclamations, optimizer=torch.optim.SGD([torch.zeros(1)], lr=1))
    with pytest.raises(StepDeclarationError, match="'reward_model'.*cannot be fingerprinted"):
        declare("module", reward_model=torch.nn.Linear(1, 1))
    with pytest.raises(StepDeclarationError, match="'max_new_tokens'.*length_sampler"):
        declare("lengths", reward_model=exclamations, max_new_tokens=3, length_sampler=lambda: 2)
    with pytest.raises(StepDeclarationError, match="'optim'.*not supported.*ppo_epochs"):
        declare("optim", reward_model=exclamations, optim="sgd")
    with pytest.raises(StepDeclarationError, match="'reward_model_tokenizer'"):
        declare("tokenizer", reward_model=exclamations, reward_model_tokenizer="gpt2")
    with pytest.raises(StepDeclarationError, match="'device'.*one device"):
        TrainHFPPO("PPO Bad devices", model_name=str(tiny_llama), device=[0, 1]).train(
            prompts, reward_model=exclamations
        )
