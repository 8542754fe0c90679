"""TrainHFRewardModel through Dagster: pairs, scored pairs and scores; ``_model`` loads back
(peft / transformers / ``load_reward_model``) and scores responses."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from dreamer_dagster import dreamer_definitions
from dreamer_dagster.steps import DataSource
from dreamer_dagster.trainers import TrainHFRewardModel
from dreamer_dagster.trainers.train_hf_reward_model import load_reward_model

pytestmark = pytest.mark.slow  # trains real models (still part of the suite)

PROMPTS = ["Say hi.", "Greet me.", "Hello?", "Wave.", "Say hey.", "Hi there."]
CHOSEN = [
    "Hi! Lovely to see you.",
    "Hello, friend!",
    "Hey, welcome!",
    "Hi there, friend!",
    "Hey you, hello!",
    "Hello!",
]
REJECTED = ["No.", "Go away.", "Nope.", "Never.", "Leave.", "No thanks."]


def data() -> DataSource:
    return DataSource(
        "Reward Data",
        data={
            "prompt": PROMPTS,
            "chosen": CHOSEN,
            "rejected": REJECTED,
            "chosen_score": [0.9, 0.8, 0.95, 0.7, 0.85, 0.9],
            "rejected_score": [0.1, 0.2, 0.0, 0.3, 0.1, 0.2],
        },
    )


def materialize(
    trainer: TrainHFRewardModel, instance: dg.DagsterInstance, output: Path
) -> dg.ExecuteInProcessResult:
    defs = dreamer_definitions([trainer], output_folder=str(output))
    return dg.materialize(list(defs.assets), instance=instance, resources=dict(defs.resources))


def test_reward_model_from_pairs_with_lora(
    tiny_llama: Path, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    from peft import AutoPeftModelForSequenceClassification
    from transformers import AutoConfig

    splits = data().splits(train_size=4, validation_size=2)
    train, validation = splits["train"].output, splits["validation"].output
    trainer = TrainHFRewardModel(
        "Reward From Pairs", model_name=str(tiny_llama), peft_config={"r": 4, "lora_alpha": 8}
    )
    trainer.train_with_pairs(
        train_prompts=train["prompt"],
        train_chosen=train["chosen"],
        train_rejected=train["rejected"],
        validation_prompts=validation["prompt"],
        validation_chosen=validation["chosen"],
        validation_rejected=validation["rejected"],
        epochs=4,
        batch_size=2,
        learning_rate=3e-2,
        max_length=64,
    )
    output = tmp_path / "output"
    assert materialize(trainer, instance, output).success

    model_dir = output / trainer.folder / "_model"
    assert (model_dir / "adapter_config.json").is_file()
    assert AutoConfig.from_pretrained(str(model_dir)).num_labels == 1
    info = json.loads((model_dir / "dreamer_trainer.json").read_text())
    assert info["reward_model"] is True and info["objective"] == "pairs" and info["adapter"] is True
    record = json.loads((output / trainer.folder / "step.json").read_text())
    assert "eval_accuracy" in record["metrics"] and "eval_margin" in record["metrics"]
    assert record["args"]["objective"] == "pairs"

    peft_model = AutoPeftModelForSequenceClassification.from_pretrained(str(model_dir), num_labels=1)
    assert peft_model.base_model.model.config.num_labels == 1

    score = load_reward_model(model_dir)
    chosen = score(PROMPTS, CHOSEN)
    rejected = score(PROMPTS, REJECTED)
    assert len(chosen) == len(PROMPTS) and all(isinstance(x, float) for x in chosen)
    assert sum(chosen) / len(chosen) > sum(rejected) / len(rejected)  # it learned the preference


def test_reward_model_from_scored_pairs(
    tiny_llama: Path, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    rows = data().output
    trainer = TrainHFRewardModel("Reward From Scored Pairs", model_name=str(tiny_llama))
    trainer.train_with_pairs_and_scores(
        train_prompts=rows["prompt"],
        train_chosen=rows["chosen"],
        train_chosen_scores=rows["chosen_score"],
        train_rejected=rows["rejected"],
        train_rejected_scores=rows["rejected_score"],
        epochs=1,
        batch_size=3,
        max_length=64,
    )
    output = tmp_path / "output"
    assert materialize(trainer, instance, output).success
    model_dir = output / trainer.folder / "_model"
    assert not (model_dir / "adapter_config.json").exists()
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir))
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    assert model.config.num_labels == 1 and model.config.pad_token_id is not None
    with torch.no_grad():
        logits = model(**tokenizer(["Say hi. Hi!"], return_tensors="pt")).logits
    assert logits.shape == (1, 1)
    record = json.loads((output / trainer.folder / "step.json").read_text())
    assert record["args"]["objective"] == "pairs_and_scores"
    assert sorted(record["inputs"]) == [
        "train_chosen",
        "train_chosen_scores",
        "train_prompts",
        "train_rejected",
        "train_rejected_scores",
    ]
    assert record["metrics"]["global_step"] == 2


def test_reward_model_from_scores_regresses(
    minilm: Path, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    texts = DataSource(
        "Scored Responses",
        data={
            "prompt": PROMPTS + PROMPTS,
            "response": CHOSEN + REJECTED,
            "score": [1.0] * 6 + [0.0] * 6,
        },
    )
    trainer = TrainHFRewardModel(
        "Reward From Scores",
        model_name=str(minilm),
        peft_config={"r": 4, "lora_alpha": 8, "target_modules": ["query", "value"]},
    )
    trainer.train_with_scores(
        train_prompts=texts.output["prompt"],
        train_generations=texts.output["response"],
        train_scores=texts.output["score"],
        epochs=3,
        batch_size=4,
        learning_rate=1e-2,
        max_length=32,
    )
    output = tmp_path / "output"
    assert materialize(trainer, instance, output).success
    model_dir = output / trainer.folder / "_model"
    info = json.loads((model_dir / "dreamer_trainer.json").read_text())
    assert info["objective"] == "scores" and info["adapter"] is True
    score = load_reward_model(model_dir)
    good, bad = score(PROMPTS, CHOSEN), score(PROMPTS, REJECTED)
    assert sum(good) / 6 > sum(bad) / 6


def test_reward_model_declaration_is_checked(tiny_llama: Path) -> None:
    rows = data().output
    trainer = TrainHFRewardModel("Reward Checked", model_name=str(tiny_llama))
    with pytest.raises(ValueError, match="train_with_pairs"):
        trainer.train(train_input=rows["prompt"], train_output=rows["chosen"])
    with pytest.raises(ValueError, match="validation"):
        trainer.train_with_scores(
            train_prompts=rows["prompt"],
            train_generations=rows["chosen"],
            train_scores=rows["chosen_score"],
            validation_prompts=rows["prompt"],
        )
    with pytest.raises(ValueError, match="train_rejected"):
        TrainHFRewardModel("Reward Missing", model_name=str(tiny_llama)).train_with_pairs(
            train_prompts=rows["prompt"], train_chosen=rows["chosen"], train_rejected=None
        )
