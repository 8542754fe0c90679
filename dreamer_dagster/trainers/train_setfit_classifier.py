"""``TrainSetFitClassifier``: few-shot text classification with SetFit (a sentence-transformers
body tuned contrastively, then a classification head)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any, ClassVar

from ..citations import SENTENCE_BERT_CITATION
from ..deferred import ColumnRef
from .base import TrainingRun
from .hf_base import HFTrainer
from .train_arguments import train_arguments
from .train_hf_classifier import label_maps

__all__ = ["TrainSetFitClassifier"]

SETFIT_CITATION = """@article{tunstall2022efficient,
  title={Efficient Few-Shot Learning Without Prompts},
  author={Tunstall, Lewis and Reimers, Nils and Jo, Unso Eun Seo and Bates, Luke and Korat, Daniel and Wasserblat, Moshe and Pereg, Oren},
  journal={arXiv preprint arXiv:2209.11055},
  year={2022}
}"""


class TrainSetFitClassifier(HFTrainer):
    """Trains a `SetFit <https://github.com/huggingface/setfit>`_ classifier on few labeled texts:
    a sentence-transformers ``model_name`` (a Hub name, a folder, or a
    ``TrainSentenceTransformer``) is tuned on contrastive pairs drawn from
    ``train_input`` / ``train_output``, then a differentiable classification
    head is trained on its embeddings (multi-label outputs: lists of labels,
    ``multi_target_strategy`` ``"one-vs-rest"`` by default, with a scikit-learn head).

    DataDreamer's arguments: ``TrainSetFitClassifier(name, model_name,
    multi_target_strategy, device, dtype, peft_config, ...)`` and
    ``train(train_input, train_output, validation_input, validation_output,
    truncate, sampling_strategy, end_to_end, epochs, batch_size,
    body_learning_rate, head_learning_rate, weight_decay, warmup_steps, seed,
    **kwargs)`` (``kwargs``: ``setfit.TrainingArguments`` fields such as
    ``max_steps`` or ``num_iterations``); ``epochs``, ``batch_size`` and
    ``body_learning_rate`` may be ``(body, head)`` pairs. As in DataDreamer, training is not
    resumable mid-way. Writes ``_model``: ``SetFitModel.save_pretrained`` output
    (the body, ``model_head.pkl``, ``config_setfit.json``), ``label2id.json``,
    ``id2label.json``, ``training_args.json``, the model card and
    ``dreamer_trainer.json`` (``task``: ``setfit_classification``). Metrics:
    validation accuracy when validation data is given.
    """

    MODEL_ARGS: ClassVar[Mapping[str, Any]] = {**HFTrainer.MODEL_ARGS, "multi_target_strategy": None}
    TRAIN_ARGS: ClassVar[Mapping[str, Any]] = {
        "truncate": True,
        "sampling_strategy": "oversampling",
        "end_to_end": False,
        "epochs": 3.0,
        "batch_size": 8,
        "body_learning_rate": 1e-3,
        "head_learning_rate": 1e-3,
        "weight_decay": 0.01,
        "warmup_steps": 0,
        "seed": 42,
        "training_kwargs": None,
    }
    PEFT_TASK_TYPE: ClassVar[str | None] = "FEATURE_EXTRACTION"

    def __init__(
        self,
        name: str,
        model_name: Any,
        multi_target_strategy: str | None = None,
        device: Any = None,
        dtype: Any = None,
        peft_config: Any = None,
        force: bool = False,
        verbose: bool | None = None,
        log_level: int | None = None,
        **kwargs: Any,
    ):
        if isinstance(device, (list, tuple)) and len(device) > 1:
            raise ValueError(f"TrainSetFitClassifier {name!r}: training on several devices is not supported.")
        if peft_config is not None:
            raise ValueError(
                f"TrainSetFitClassifier {name!r}: peft_config is not supported here (SetFit tunes the "
                "whole small body). Fix: leave it out."
            )
        super().__init__(
            name,
            model_name=model_name,
            device=device,
            dtype=dtype,
            peft_config=None,
            force=force,
            verbose=verbose,
            log_level=log_level,
            multi_target_strategy=multi_target_strategy,
            **kwargs,
        )

    def export_to_disk(  # type: ignore[override]
        self, path: str | os.PathLike, *, adapter_only: bool = False, output_folder: Any = None
    ) -> Any:
        """DataDreamer's ``export_to_disk(path)``; ``adapter_only`` (keyword-only) as the HF trainers'."""
        return super().export_to_disk(path, adapter_only=adapter_only, output_folder=output_folder)

    def publish_to_hf_hub(  # type: ignore[override]
        self,
        repo_id: str,
        branch: str | None = None,
        private: bool = False,
        token: str | None = None,
        is_synthetic: bool = True,
        *,
        adapter_only: bool = False,
        output_folder: Any = None,
        **kwargs: Any,
    ) -> str:
        """DataDreamer's order for SetFit (no ``adapter_only`` slot there: here keyword-only)."""
        return super().publish_to_hf_hub(
            repo_id,
            branch=branch,
            private=private,
            token=token,
            adapter_only=adapter_only,
            is_synthetic=is_synthetic,
            output_folder=output_folder,
            **kwargs,
        )

    def train(
        self,
        train_input: ColumnRef,
        train_output: ColumnRef,
        validation_input: ColumnRef | None = None,
        validation_output: ColumnRef | None = None,
        truncate: bool = True,
        sampling_strategy: str = "oversampling",
        end_to_end: bool = False,
        epochs: float | tuple[float, float] = 3.0,
        batch_size: int | tuple[int, int] = 8,
        body_learning_rate: float | tuple[float, float] = 1e-3,
        head_learning_rate: float = 1e-3,
        weight_decay: float = 0.01,
        warmup_steps: int = 0,
        seed: int = 42,
        **kwargs: Any,
    ) -> TrainSetFitClassifier:
        """Declare the training; ``kwargs`` are ``setfit.TrainingArguments`` fields. Returns the trainer."""
        inputs, args = train_arguments(locals())
        self.declare_training(inputs, {**args, "training_kwargs": kwargs or None})
        return self

    def declare_training(self, inputs: Mapping[str, Any], args: Mapping[str, Any]) -> TrainSetFitClassifier:
        # Not HFTrainer's (its TrainingArguments checks do not apply to SetFit's).
        return super(HFTrainer, self).declare_training(inputs, args)

    def validate(self) -> None:
        if self.args["sampling_strategy"] not in ("oversampling", "undersampling", "unique"):
            raise self.error("must be 'oversampling', 'undersampling' or 'unique'.", "sampling_strategy")
        if self.args["warmup_steps"]:
            raise self.error(
                "SetFit schedules warm-up as a proportion. Fix: pass warmup_proportion=0.1 (say) instead.",
                "warmup_steps",
            )

    def citations(self) -> list[str]:
        return [SENTENCE_BERT_CITATION, SETFIT_CITATION]

    # -- run time -------------------------------------------------------------------

    def base_model_path(self, run: TrainingRun) -> str:
        from ..embedders.sentence_transformers_embedder import packaged_model_path

        name = str(run.args["model_name"])
        return packaged_model_path(name, run.args.get("revision")) or name

    def train_model(self, run: TrainingRun) -> dict:
        from setfit import SetFitModel, Trainer, TrainingArguments

        a = run.args
        splits = {name: run.split(name) for name in ("train", "validation") if run.split(name) is not None}
        label2id, multi_label = label_maps([list(ds["output"]) for ds in splits.values()])
        labels = list(label2id)

        def to_setfit(dataset: Any) -> Any:
            def encode(row: dict) -> dict:
                if multi_label:
                    chosen = {str(x) for x in row["output"]}
                    return {"text": str(row["input"]), "label": [int(label in chosen) for label in labels]}
                return {"text": str(row["input"]), "label": label2id[str(row["output"])]}

            return dataset.map(encode, remove_columns=dataset.column_names)

        data = {name: to_setfit(dataset) for name, dataset in splits.items()}
        device = self.run_device(run)
        strategy = a.get("multi_target_strategy") or ("one-vs-rest" if multi_label else None)
        options: dict[str, Any] = {"labels": labels, "device": device}
        if multi_label:
            options["multi_target_strategy"] = strategy
        else:
            options.update(use_differentiable_head=True, head_params={"out_features": len(labels)})
        model = SetFitModel.from_pretrained(self.base_model_path(run), **options)
        extra = dict(a.get("training_kwargs") or {})
        arguments = TrainingArguments(
            output_dir=str(run.checkpoints_dir),
            batch_size=_pair(a["batch_size"]),
            num_epochs=_pair(a["epochs"]),
            body_learning_rate=_pair(a["body_learning_rate"]),
            head_learning_rate=a["head_learning_rate"],
            l2_weight=a["weight_decay"],
            sampling_strategy=a["sampling_strategy"],
            end_to_end=a["end_to_end"],
            seed=a["seed"],
            max_length=None if a["truncate"] else 10**9,
            report_to="none",
            save_strategy="no",
            show_progress_bar=False,
            **extra,
        )
        trainer = Trainer(
            model=model,
            args=arguments,
            train_dataset=data["train"],
            eval_dataset=data.get("validation"),
            metric=_accuracy,
        )
        trainer.train()
        metrics: dict[str, Any] = {}
        if "validation" in data:
            metrics = {f"eval_{name}": float(value) for name, value in trainer.evaluate().items()}
        model.save_pretrained(str(run.model_dir))
        id2label = {str(index): label for label, index in label2id.items()}
        (run.model_dir / "label2id.json").write_text(json.dumps(label2id, indent=2))
        (run.model_dir / "id2label.json").write_text(json.dumps(id2label, indent=2))
        training_args = {k: v for k, v in a.items() if k not in ("device", "model_name", "training_kwargs")}
        training_args.update(extra)
        (run.model_dir / "training_args.json").write_text(json.dumps(training_args, indent=2, default=str))
        info = {
            "task": "setfit_classification",
            "adapter": False,
            "label2id": label2id,
            "id2label": id2label,
            "is_multi_target": multi_label,
            "multi_target_strategy": strategy,
        }
        return {"metrics": metrics, "model_info": info}

    def load_trained(self, model_dir: str) -> Any:
        from setfit import SetFitModel

        return SetFitModel.from_pretrained(model_dir)

    def usage_snippet(self, run: TrainingRun, info: dict) -> str:
        path = str(run.checkpoints_dir.parent / "_model")
        return "\n".join(
            [
                "from setfit import SetFitModel",
                "",
                f"model = SetFitModel.from_pretrained({path!r})",
                "print(model.predict(['Your text']))",
            ]
        )


def _accuracy(predictions: Any, references: Any) -> dict[str, float]:
    import numpy as np

    predicted, truth = np.asarray(predictions), np.asarray(references)
    if predicted.ndim > 1:
        return {"accuracy": float((predicted == truth).all(axis=1).mean())}
    return {"accuracy": float((predicted == truth).mean())}


def _pair(value: Any) -> Any:
    """A ``(body, head)`` pair as SetFit takes it (a fingerprinted list back to a tuple)."""
    return tuple(value) if isinstance(value, (list, tuple)) else value
