"""Trained models after training: load one for inference, merge its adapter.

Works on any HF trainer's ``_model`` folder: a full model, or a PEFT adapter
whose ``adapter_config.json`` names its base model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .base import MODEL_DIR_INFO

__all__ = [
    "adapter_base",
    "load_trained_model",
    "merge_adapter",
    "trained_model_info",
    "trained_model_kwargs",
]

AUTO_CLASSES = {
    "causal_lm": "AutoModelForCausalLM",
    "seq2seq_lm": "AutoModelForSeq2SeqLM",
    "sequence_classification": "AutoModelForSequenceClassification",
}


def adapter_base(path: str) -> str | None:
    """The base model of a PEFT adapter folder, or None when ``path`` is not one."""
    config = Path(path) / "adapter_config.json"
    if not config.is_file():
        return None
    return json.loads(config.read_text()).get("base_model_name_or_path")


def trained_model_info(model_dir: str | Path) -> dict:
    """``dreamer_trainer.json`` of a trainer's ``_model`` (``{}`` when it has none)."""
    info_path = Path(model_dir) / MODEL_DIR_INFO
    return json.loads(info_path.read_text()) if info_path.is_file() else {}


def trained_model_kwargs(model_dir: str | Path) -> dict:
    """The ``from_pretrained`` kwargs a trained model needs beyond its folder: a
    classifier's label maps and problem type (an adapter folder holds no config)."""
    info = trained_model_info(model_dir)
    if info.get("task") != "sequence_classification" or not info.get("label2id"):
        return {}
    return {
        "num_labels": len(info["label2id"]),
        "label2id": dict(info["label2id"]),
        "id2label": {int(k): v for k, v in info["id2label"].items()},
        "problem_type": info.get("problem_type"),
    }


def load_trained_model(model_dir: str | Path, auto_cls: Any = None, **kwargs: Any) -> Any:
    """Load a trainer's ``_model`` for inference: the full model, or the base model
    with the PEFT adapter applied (a ``peft.PeftModel``).

    ``auto_cls`` defaults to the class for the task in ``dreamer_trainer.json``
    (``AutoModelForCausalLM``, ``AutoModelForSeq2SeqLM``,
    ``AutoModelForSequenceClassification``); ``kwargs`` go to ``from_pretrained``.
    """
    import transformers

    model_dir = Path(model_dir)
    info = trained_model_info(model_dir)
    if auto_cls is None:
        auto_cls = getattr(transformers, AUTO_CLASSES.get(info.get("task"), "AutoModelForCausalLM"))
    options = {k: v for k, v in {**trained_model_kwargs(model_dir), **kwargs}.items() if v is not None}
    base = adapter_base(str(model_dir))
    if base is None:
        return auto_cls.from_pretrained(str(model_dir), **options)
    from peft import PeftModel

    return PeftModel.from_pretrained(auto_cls.from_pretrained(base, **options), str(model_dir))


def merge_adapter(model_dir: str | Path, path: str | Path) -> Path:
    """Merge the PEFT adapter in ``model_dir`` (a trainer's ``_model``) into its base
    model and save the plain model, tokenizer and model card to ``path``."""
    import shutil

    from transformers import AutoTokenizer

    model_dir, path = Path(model_dir), Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if not (model_dir / "adapter_config.json").is_file():
        shutil.copytree(model_dir, path, dirs_exist_ok=True)
        return path
    merged = load_trained_model(model_dir).merge_and_unload()
    merged.save_pretrained(str(path))
    AutoTokenizer.from_pretrained(str(model_dir)).save_pretrained(str(path))
    for name in (
        "training_args.json",
        "seed.json",
        "README.md",
        "data_card.json",
        "label2id.json",
        "id2label.json",
    ):
        if (model_dir / name).is_file():
            shutil.copy2(model_dir / name, path / name)
    info = {**trained_model_info(model_dir), "adapter": False, "merged": True}
    (path / MODEL_DIR_INFO).write_text(json.dumps(info, indent=2))
    return path
