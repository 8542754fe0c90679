"""``TrainHFClassifier``: fine-tunes a model to classify text (single- or multi-label)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from .base import TrainingDataError, TrainingRun
from .hf_base import HFTrainer
from .input_output import InputOutputTraining

__all__ = ["TrainHFClassifier", "label_maps"]


class TrainHFClassifier(InputOutputTraining, HFTrainer):
    """Fine-tunes a sequence classifier (``AutoModelForSequenceClassification``) to
    predict ``train_output``'s labels from ``train_input``'s texts.

    Labels are a column's values (strings or integers); where the outputs are
    lists of labels the task is multi-label (one sigmoid an label). The label
    ids follow the sorted labels; ``label2id`` / ``id2label`` are saved in the
    model's config and as ``label2id.json`` / ``id2label.json``. Writes
    ``_model``: the model (or its LoRA adapter with the classifier head, and
    ``config.json`` with the label maps), the tokenizer, ``training_args.json``, ``seed.json``, the
    model card and ``dreamer_trainer.json`` (``task``:
    ``sequence_classification``, the label maps). Per-epoch metrics: training
    and validation loss, accuracy and macro F1; the best model is the one
    with the lowest validation loss.
    """

    TRAIN_ARGS: ClassVar[Mapping[str, Any]] = {**HFTrainer.TRAIN_ARGS, "truncate": True, "max_length": None}
    PEFT_TASK_TYPE: ClassVar[str | None] = "SEQ_CLS"
    QUANTIZABLE: ClassVar[bool] = True

    # -- run time -------------------------------------------------------------------

    def train_model(self, run: TrainingRun) -> dict:
        splits = {name: run.split(name) for name in ("train", "validation") if run.split(name) is not None}
        label2id, multi_label = label_maps([ds["output"] for ds in splits.values()])
        if len(label2id) < 2 and not multi_label:
            raise TrainingDataError(
                f"Step {run.step_name!r} (TrainHFClassifier), input 'train_output': the labels hold "
                f"{len(label2id)} class{'es' if len(label2id) != 1 else ''} "
                f"({sorted(label2id)}); a classifier needs at least 2. Fix: check the label column "
                "(a filter that kept one class? a constant column?)."
            )
        id2label = {index: label for label, index in label2id.items()}
        from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding, Trainer

        tokenizer = self.load_tokenizer(run)
        max_length = run.args.get("max_length") or (
            min(int(tokenizer.model_max_length or 512), 4096) if run.args.get("truncate", True) else None
        )

        def encode(batch: dict) -> dict:
            encoded = dict(
                tokenizer(
                    [str(t) for t in batch["input"]], truncation=max_length is not None, max_length=max_length
                )
            )
            if multi_label:
                encoded["labels"] = [
                    [1.0 if label in {str(x) for x in row} else 0.0 for label in label2id]
                    for row in batch["output"]
                ]
            else:
                encoded["labels"] = [label2id[str(value)] for value in batch["output"]]
            return encoded

        data = {
            name: dataset.map(encode, batched=True, remove_columns=dataset.column_names)
            for name, dataset in splits.items()
        }
        problem_type = "multi_label_classification" if multi_label else "single_label_classification"
        model = self.load_model(
            run,
            AutoModelForSequenceClassification,
            num_labels=len(label2id),
            label2id=label2id,
            id2label=id2label,
            problem_type=problem_type,
        )
        base_config = model.get_base_model().config if hasattr(model, "get_base_model") else model.config
        if base_config.pad_token_id is None:
            base_config.pad_token_id = tokenizer.pad_token_id
        trainer = Trainer(
            model=model,
            args=self.training_arguments(run),
            train_dataset=data["train"],
            eval_dataset=data.get("validation"),
            processing_class=tokenizer,
            data_collator=DataCollatorWithPadding(tokenizer),
            compute_metrics=_classification_metrics(multi_label),
            callbacks=self.callbacks(run),
        )
        results = self.fit(run, trainer)
        info = {
            "task": "sequence_classification",
            "label2id": label2id,
            "id2label": {str(k): v for k, v in id2label.items()},
            "problem_type": problem_type,
            "is_multi_target": multi_label,
        }
        self.save(run, trainer, tokenizer, info)
        if trainer.args.should_save:
            # the label maps in config.json, beside an adapter too (AutoConfig reads them)
            base_config.save_pretrained(str(run.model_dir))
            (run.model_dir / "label2id.json").write_text(json.dumps(label2id, indent=2))
            (run.model_dir / "id2label.json").write_text(json.dumps(info["id2label"], indent=2))
        return results

    def usage_snippet(self, run: TrainingRun, info: dict) -> str:
        path = str(run.checkpoints_dir.parent / "_model")
        if info.get("adapter"):
            load = [
                "from peft import AutoPeftModelForSequenceClassification",
                "from transformers import AutoConfig, AutoTokenizer",
                "",
                f"config = AutoConfig.from_pretrained({path!r})  # the label maps",
                "model = AutoPeftModelForSequenceClassification.from_pretrained(  # base model + adapter",
                f"    {path!r},",
                "    num_labels=config.num_labels,",
                "    id2label=config.id2label,",
                "    label2id=config.label2id,",
                "    problem_type=config.problem_type,",
                ")",
            ]
        else:
            load = [
                "from transformers import AutoModelForSequenceClassification, AutoTokenizer",
                "",
                f"model = AutoModelForSequenceClassification.from_pretrained({path!r})",
            ]
        return "\n".join(
            load
            + [
                f"tokenizer = AutoTokenizer.from_pretrained({path!r})",
                "logits = model(**tokenizer(['Your text'], return_tensors='pt')).logits",
                "print(model.config.id2label[int(logits.argmax(-1)[0])])",
                "",
                "# In a dreamer_dagster pipeline: HFClassificationTaskModel(trainer) runs it.",
            ]
        )


def label_maps(columns: list[list[Any]]) -> tuple[dict[str, int], bool]:
    """``label2id`` over every label in ``columns`` (sorted; keys are strings) and
    whether the task is multi-label (the values are lists)."""
    labels: dict[str, Any] = {}
    multi_label = False
    for column in columns:
        for value in column:
            if isinstance(value, (list, tuple)):
                multi_label = True
                for item in value:
                    labels.setdefault(str(item), item)
            else:
                labels.setdefault(str(value), value)
    ordered = sorted(labels.items(), key=lambda kv: (not isinstance(kv[1], (int, float)), kv[1], kv[0]))
    return {name: index for index, (name, _) in enumerate(ordered)}, multi_label


def _classification_metrics(multi_label: bool) -> Any:
    def compute(eval_pred: Any) -> dict:
        import numpy as np

        logits, labels = eval_pred
        if isinstance(logits, tuple):
            logits = logits[0]
        logits, labels = np.asarray(logits), np.asarray(labels)
        if multi_label:
            predictions = (logits > 0).astype(int)
            truth = labels.astype(int)
            accuracy = float((predictions == truth).all(axis=1).mean())
            classes = range(truth.shape[1])
            pairs = [(predictions[:, c], truth[:, c]) for c in classes]
        else:
            predictions = logits.argmax(-1)
            truth = labels
            accuracy = float((predictions == truth).mean())
            classes = sorted(set(truth.tolist()) | set(predictions.tolist()))
            pairs = [(predictions == c, truth == c) for c in classes]
        f1s = []
        for predicted, actual in pairs:
            predicted, actual = np.asarray(predicted, dtype=bool), np.asarray(actual, dtype=bool)
            true_positive = float((predicted & actual).sum())
            denominator = float(predicted.sum() + actual.sum())
            f1s.append(2 * true_positive / denominator if denominator else 1.0)
        return {"accuracy": accuracy, "f1": float(sum(f1s) / len(f1s)) if f1s else 0.0}

    return compute
