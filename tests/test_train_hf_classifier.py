"""TrainHFClassifier through real Dagster on all-MiniLM-L6-v2: string labels, multi-label
integer labels with LoRA, the label maps, loading the trained model back and predicting."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from dreamer_dagster.steps import DataSource, RunTaskModel
from dreamer_dagster.task_models import HFClassificationTaskModel
from dreamer_dagster.trainers import TrainHFClassifier
from tests.support.foundation import materialization_metadata, materialize, rows, step_json

pytestmark = pytest.mark.slow

REVIEWS = {
    "text": [
        "I love this movie",
        "I hate this movie",
        "What a great film",
        "What a terrible film",
        "Wonderful and fun",
        "Boring and awful",
        "Best show ever",
        "Worst show ever",
    ],
    "sentiment": ["positive", "negative"] * 4,
}


def predict(model, tokenizer, texts: list[str]) -> list[str]:
    import torch

    with torch.no_grad():
        logits = model(**tokenizer(texts, return_tensors="pt", padding=True)).logits
    return [model.config.id2label[int(i)] for i in logits.argmax(-1)]


def test_classifier_learns_string_labels(tmp_path: Path, instance: dg.DagsterInstance, minilm: Path) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    output = tmp_path / "output"
    reviews = DataSource("Reviews", REVIEWS)
    held_out = DataSource(
        "Held Out", {"text": ["I love this film", "I hate this film"], "label": ["positive", "negative"]}
    )
    trainer = TrainHFClassifier("Sentiment", model_name=str(minilm)).train(
        train_input=reviews.output["text"],
        train_output=reviews.output["sentiment"],
        validation_input=held_out.output["text"],
        validation_output=held_out.output["label"],
        epochs=4,
        batch_size=4,
        learning_rate=5e-4,
        early_stopping_patience=None,
    )
    judged = RunTaskModel(
        "Judge Reviews",
        inputs={"texts": reviews.output["text"]},
        args={"model": HFClassificationTaskModel(trainer)},
    )
    assert {key.path[0] for key in judged.asset.dependency_keys} == {"reviews", "sentiment"}
    result = materialize([judged], instance, output)

    # the trained model stands where a model is expected downstream
    judgements = rows(output, judged)["results"]
    assert [max(scores, key=scores.get) for scores in judgements] == REVIEWS["sentiment"]

    model_dir = output / "sentiment" / "_model"
    assert json.loads((model_dir / "label2id.json").read_text()) == {"negative": 0, "positive": 1}
    info = json.loads((model_dir / "dreamer_trainer.json").read_text())
    assert info["task"] == "sequence_classification" and info["problem_type"] == "single_label_classification"
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir)).eval()
    assert model.config.id2label == {0: "negative", 1: "positive"}
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    assert predict(model, tokenizer, REVIEWS["text"]) == REVIEWS["sentiment"]

    record = step_json(output, trainer)
    assert [row["epoch"] for row in record["metrics_table"]] == [1, 2, 3, 4]
    assert {"eval_loss", "eval_accuracy", "eval_f1", "train_loss"} <= set(record["metrics_table"][-1])
    assert record["metrics"]["eval_accuracy"] == 1.0
    assert materialization_metadata(result, trainer)["dreamer/eval_f1"] == 1.0
    assert "AutoModelForSequenceClassification" in (model_dir / "README.md").read_text()


def test_multi_label_classifier_with_lora_and_integer_labels(
    tmp_path: Path, instance: dg.DagsterInstance, minilm: Path
) -> None:
    import torch
    from peft import AutoPeftModelForSequenceClassification
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    from dreamer_dagster.trainers.trained_models import load_trained_model, trained_model_kwargs

    output = tmp_path / "output"
    topics = DataSource(
        "Topics",
        {
            "text": ["cats and dogs", "stocks fall", "dogs buy stocks", "rain today", "cats", "markets rise"],
            "labels": [[1], [2], [1, 2], [], [1], [2]],
        },
    )
    trainer = TrainHFClassifier(
        "Topic Tagger",
        model_name=str(minilm),
        peft_config={"r": 4, "lora_alpha": 8, "target_modules": ["query", "value"]},
    ).train(train_input=topics.output["text"], train_output=topics.output["labels"], epochs=1, batch_size=3)
    tagged = RunTaskModel(
        "Tag Topics",
        inputs={"texts": topics.output["text"]},
        args={"model": HFClassificationTaskModel(trainer)},
    )
    materialize([tagged], instance, output)
    assert all(set(scores) == {"1", "2"} for scores in rows(output, tagged)["results"])

    model_dir = output / "topic-tagger" / "_model"
    assert (model_dir / "adapter_config.json").is_file()
    assert any("classifier" in key for key in load_file(str(model_dir / "adapter_model.safetensors")))
    info = json.loads((model_dir / "dreamer_trainer.json").read_text())
    assert info["is_multi_target"] is True and info["adapter"] is True and info["base_model"] == str(minilm)
    assert info["problem_type"] == "multi_label_classification"
    assert info["label2id"] == {"1": 0, "2": 1} and info["id2label"] == {"0": "1", "1": "2"}

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    inputs = tokenizer(["cats and stocks"], return_tensors="pt")
    adapted = load_trained_model(model_dir).eval()
    assert adapted.config.id2label == {0: "1", 1: "2"}
    # peft's auto class loads it too (base + adapter), given the label maps of config.json
    config = AutoConfig.from_pretrained(str(model_dir))
    assert config.problem_type == "multi_label_classification" and config.id2label == {0: "1", 1: "2"}
    labels = trained_model_kwargs(model_dir)
    assert labels["id2label"] == config.id2label and labels["num_labels"] == 2
    plain = AutoPeftModelForSequenceClassification.from_pretrained(str(model_dir), **labels)
    merged_dir = trainer.export_merged(tmp_path / "merged", output_folder=output)
    merged = AutoModelForSequenceClassification.from_pretrained(str(merged_dir)).eval()
    assert merged.config.problem_type == "multi_label_classification"
    with torch.no_grad():
        expected = adapted(**inputs).logits
        results = [model.eval()(**inputs).logits for model in (plain, merged)]
    assert expected.shape == (1, 2)
    for actual in results:
        assert torch.allclose(expected, actual, atol=1e-4)
