"""TrainSentenceTransformer through Dagster: triplets (with LoRA, merged), positive pairs and
labeled pairs; ``_model`` loads with ``SentenceTransformer(path)`` and embeds."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from dreamer_dagster import dreamer_definitions
from dreamer_dagster.steps import DataSource
from dreamer_dagster.trainers import TrainSentenceTransformer
from tests.support.trainers import moved_weights

pytestmark = pytest.mark.slow  # trains real models (still part of the suite)

ANCHORS = ["a small cat", "a loyal dog", "a fast car", "a tall tree", "a red apple", "a cold lake"]
POSITIVES = ["a kitten", "a puppy", "an automobile", "an oak", "a fruit", "frozen water"]
NEGATIVES = ["a truck", "a flower", "a horse", "a river", "a chair", "a desert"]


def triples() -> DataSource:
    return DataSource(
        "Sentence Triples", data={"anchor": ANCHORS, "positive": POSITIVES, "negative": NEGATIVES}
    )


def materialize(
    trainer: TrainSentenceTransformer, instance: dg.DagsterInstance, output: Path
) -> dg.ExecuteInProcessResult:
    defs = dreamer_definitions([trainer], output_folder=str(output))
    return dg.materialize(list(defs.assets), instance=instance, resources=dict(defs.resources))


def test_triplets_with_lora_merge_into_a_sentence_transformer(
    minilm: Path, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    import torch
    from sentence_transformers import SentenceTransformer

    splits = triples().splits(train_size=4, validation_size=2)
    train, validation = splits["train"].output, splits["validation"].output
    trainer = TrainSentenceTransformer(
        "Embed With Triplets",
        model_name=str(minilm),
        peft_config={"r": 4, "lora_alpha": 8, "target_modules": ["query", "value"]},
    ).train_with_triplets(
        train_anchors=train["anchor"],
        train_positives=train["positive"],
        train_negatives=train["negative"],
        validation_anchors=validation["anchor"],
        validation_positives=validation["positive"],
        validation_negatives=validation["negative"],
        margin=0.3,
        epochs=1,
        batch_size=2,
        learning_rate=5e-3,
        max_length=16,
    )
    output = tmp_path / "output"
    assert materialize(trainer, instance, output).success
    model_dir = output / trainer.folder / "_model"
    assert (model_dir / "modules.json").is_file() and not (model_dir / "adapter_config.json").exists()
    info = json.loads((model_dir / "dreamer_trainer.json").read_text())
    assert info["task"] == "sentence_transformer" and info["merged_adapter"] is True
    record = json.loads((output / trainer.folder / "step.json").read_text())
    assert "eval_loss" in record["metrics"] and record["metrics"]["global_step"] == 2

    trained = SentenceTransformer(str(model_dir), device="cpu")
    base = SentenceTransformer(str(minilm), device="cpu")
    moved = moved_weights(base, trained)
    # LoRA on query and value, merged: exactly those weights moved.
    assert moved and all(".query." in name or ".value." in name for name in moved), moved
    assert trained.max_seq_length == 16
    embeddings = trained.encode(ANCHORS, convert_to_tensor=True)
    assert embeddings.shape == (len(ANCHORS), 384)
    assert not torch.allclose(embeddings, base.encode(ANCHORS, convert_to_tensor=True), atol=1e-4)
    anchors, positives, negatives = (
        trained.encode(x, convert_to_tensor=True) for x in (ANCHORS, POSITIVES, NEGATIVES)
    )
    cos = torch.nn.functional.cosine_similarity
    assert float(cos(anchors, positives).mean()) > float(cos(anchors, negatives).mean())


def test_positive_pairs_train_the_whole_model(
    minilm: Path, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    from sentence_transformers import SentenceTransformer

    rows = triples().output
    trainer = TrainSentenceTransformer("Embed With Pairs", model_name=str(minilm)).train_with_positive_pairs(
        train_anchors=rows["anchor"], train_positives=rows["positive"], epochs=1, batch_size=3, max_length=16
    )
    output = tmp_path / "output"
    assert materialize(trainer, instance, output).success
    model_dir = output / trainer.folder / "_model"
    info = json.loads((model_dir / "dreamer_trainer.json").read_text())
    assert info["objective"] == "positive_pairs" and info["merged_adapter"] is False
    trained = SentenceTransformer(str(model_dir), device="cpu")
    assert trained.encode(["hello"]).shape == (1, 384)
    moved = moved_weights(SentenceTransformer(str(minilm), device="cpu"), trained)
    assert any(".query." in name for name in moved) and any("intermediate" in name for name in moved)


def test_labeled_pairs_use_similarity_labels(
    minilm: Path, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    from sentence_transformers import SentenceTransformer, losses

    labeled = DataSource(
        "Labeled Sentence Pairs",
        data={"a": ANCHORS + ANCHORS, "b": POSITIVES + NEGATIVES, "similarity": [1.0] * 6 + [0.0] * 6},
    )
    trainer = TrainSentenceTransformer("Embed With Labels", model_name=str(minilm)).train_with_labeled_pairs(
        train_anchors=labeled.output["a"],
        train_others=labeled.output["b"],
        train_labels=labeled.output["similarity"],
        loss=losses.CoSENTLoss,
        epochs=1,
        batch_size=6,
        max_length=16,
    )
    output = tmp_path / "output"
    assert materialize(trainer, instance, output).success
    record = json.loads((output / trainer.folder / "step.json").read_text())
    assert record["metrics"]["global_step"] == 2
    assert "CoSENTLoss" in json.dumps(record["args"]["loss"])
    model = SentenceTransformer(str(output / trainer.folder / "_model"), device="cpu")
    assert model.similarity(model.encode(["a cat"]), model.encode(["a kitten"])).shape == (1, 1)
    assert moved_weights(SentenceTransformer(str(minilm), device="cpu"), model)


def test_sentence_transformer_declaration_is_checked(minilm: Path) -> None:
    rows = triples().output
    trainer = TrainSentenceTransformer("Embed Checked", model_name=str(minilm))
    with pytest.raises(ValueError, match="train_with_triplets"):
        trainer.train(train_input=rows["anchor"], train_output=rows["positive"])
    with pytest.raises(ValueError, match="validation"):
        trainer.train_with_triplets(
            train_anchors=rows["anchor"],
            train_positives=rows["positive"],
            train_negatives=rows["negative"],
            validation_anchors=rows["anchor"],
        )
    with pytest.raises(ValueError, match="loss"):
        TrainSentenceTransformer("Embed Bad Loss", model_name=str(minilm)).train_with_positive_pairs(
            train_anchors=rows["anchor"], train_positives=rows["positive"], loss="triplet"
        )
