"""HFClassificationTaskModel: a transformers sequence classifier; label probabilities a text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..model_info import HubModelInfo
from .task_model import DEFAULT_BATCH_SIZE, TaskModel, forget_loaded, shared_loaded

__all__ = ["HFClassificationTaskModel"]


class HFClassificationTaskModel(HubModelInfo, TaskModel):
    """Classifies texts with a Hugging Face ``AutoModelForSequenceClassification``.

    ``run(texts)`` returns, for each text, a dict of label -> probability (softmax
    over the labels; sigmoid for multi-label or single-output models), labels in
    the model's ``id2label`` order. ``model_name`` is a Hub name, a local folder,
    or a trainer step such as ``TrainHFClassifier`` (its ``_model`` folder, a full
    model or a PEFT adapter), which adds the dependency edge. ``adapter_name``
    loads a PEFT adapter over the model. Writes the model cache
    ``<output>/.cache/HFClassificationTaskModel-<name>-<hash>.db``.
    """

    KINDS = ("huggingface",)

    def __init__(
        self,
        model_name: Any,
        revision: str | None = None,
        trust_remote_code: bool = False,
        device: Any = None,
        device_map: Any = None,
        dtype: Any = None,
        adapter_name: Any = None,
        adapter_kwargs: dict | None = None,
        cache_folder_path: str | None = None,
        **kwargs: Any,
    ):
        self.cache_folder_path = cache_folder_path
        if adapter_kwargs is not None and adapter_name is None:
            raise ValueError("HFClassificationTaskModel: adapter_kwargs needs an adapter_name.")
        self.model_name = model_name
        self.revision = revision
        self.trust_remote_code = trust_remote_code
        self.device = device
        self.device_map = device_map
        self.dtype = None if dtype is None else str(dtype).removeprefix("torch.")
        self.adapter_name = adapter_name
        self.adapter_kwargs = adapter_kwargs
        self.kwargs = kwargs

    def identity(self) -> dict:
        return {
            "model_name": self.model_name,
            "revision": self.revision,
            "dtype": self.dtype,
            "adapter_name": self.adapter_name,
            "adapter_kwargs": self.adapter_kwargs,
            "kwargs": self.kwargs,
        }

    # -- loading ----------------------------------------------------------------------

    def _path(self) -> str:
        if not isinstance(self.model_name, str):
            raise TypeError(
                f"HFClassificationTaskModel: model_name {self.model_name!r} was not resolved; pass the "
                "model to a step (the step resolves a trainer to its _model folder)."
            )
        return self.model_name

    def _load_key(self) -> tuple:
        # The identity hash tells apart two trainings written to one _model folder.
        return ("hf-classifier", self.model_fingerprint, self._path(), str(self.device), str(self.device_map))

    @property
    def loaded(self) -> tuple[Any, Any]:
        """``(model, tokenizer)``, loaded on first use and shared in the process."""
        return shared_loaded(self._load_key(), self._load)

    @property
    def model(self) -> Any:
        return self.loaded[0]

    @property
    def tokenizer(self) -> Any:
        return self.loaded[1]

    def _load(self) -> tuple[Any, Any]:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = self._path()
        options: dict[str, Any] = {"revision": self.revision, "trust_remote_code": self.trust_remote_code}
        if self.dtype is not None:
            options["dtype"] = self.dtype
        if self.device_map is not None:
            options["device_map"] = self.device_map
        options.update(self.kwargs)
        from ..trainers.trained_models import adapter_base

        base = adapter_base(path)
        if base is not None:
            # A PEFT adapter folder (a trainer run with peft_config): its base model with
            # the adapter; a config beside it holds the label maps.
            from peft import AutoPeftModelForSequenceClassification

            options.update(_label_options(Path(path) / "config.json"))
            model = AutoPeftModelForSequenceClassification.from_pretrained(path, **options)
            tokenizer_source = path if (Path(path) / "tokenizer_config.json").is_file() else base
        else:
            model = AutoModelForSequenceClassification.from_pretrained(path, **options)
            tokenizer_source = path
        tokenizer = AutoTokenizer.from_pretrained(
            tokenizer_source, revision=self.revision, trust_remote_code=self.trust_remote_code
        )
        if tokenizer.pad_token is None and tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token
        if getattr(model.config, "pad_token_id", None) is None:
            model.config.pad_token_id = tokenizer.pad_token_id
        if self.adapter_name is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, self.adapter_name, **(self.adapter_kwargs or {}))
        if self.device is not None and self.device_map is None:
            model = model.to(self.device)
        model.eval()
        return model, tokenizer

    @property
    def labels(self) -> list[str]:
        """The label names in id order."""
        config = self.model.config
        return [str(config.id2label[i]) for i in range(config.num_labels)]

    @property
    def model_max_length(self) -> int:
        limit = getattr(self.tokenizer, "model_max_length", None)
        if isinstance(limit, int) and 0 < limit < 1_000_000:
            return limit
        return int(getattr(self.model.config, "max_position_embeddings", 512))

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=True)["input_ids"])

    def unload_model(self) -> None:
        if isinstance(self.model_name, str):
            forget_loaded(self._load_key())

    # -- running ----------------------------------------------------------------------

    def run(
        self,
        texts: Any,
        truncate: bool = False,
        batch_size: int = DEFAULT_BATCH_SIZE,
        batch_scheduler_buffer_size: int | None = None,
        adaptive_batch_size: bool = True,
        progress_interval: int | None = 60,
        force: bool = False,
        cache_only: bool = False,
        verbose: bool | None = None,
        log_level: int | None = None,
        total_num_texts: int | None = None,
        return_generator: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Label probabilities for each text (``{label: probability}``), in order.

        ``truncate=False`` refuses a text longer than the model's context.
        ``kwargs`` go to the tokenizer call and enter the cache key; ``force`` /
        ``cache_only`` as in ``LLM.run``.
        """

        def compute(batch: list[str]) -> list[dict[str, float]]:
            return self._classify(batch, truncate, **kwargs)

        results = self.cached_map(
            texts,
            request={"task": "classify", "kwargs": kwargs},
            compute=compute,
            batch_size=batch_size,
            force=force,
            cache_only=cache_only,
        )
        return self.finish(results, return_generator)

    def _classify(self, texts: list[str], truncate: bool, **kwargs: Any) -> list[dict[str, float]]:
        import torch

        model, tokenizer = self.loaded
        limit = self.model_max_length
        if not truncate:
            for text, ids in zip(texts, tokenizer(list(texts), add_special_tokens=True)["input_ids"]):
                if len(ids) > limit:
                    raise ValueError(
                        f"HFClassificationTaskModel({self.model_name}): a text is {len(ids)} tokens long, "
                        f"more than the model's maximum of {limit}: {text[:80]!r}... "
                        "Fix: pass truncate=True to cut long texts, or shorten them."
                    )
        encoded = tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=limit,
            return_tensors="pt",
            **kwargs,
        )
        device = next(model.parameters()).device
        encoded = {name: tensor.to(device) for name, tensor in encoded.items()}
        with torch.inference_mode():
            logits = model(**encoded).logits.float()
        config = model.config
        if config.problem_type == "multi_label_classification" or config.num_labels == 1:
            probabilities = torch.sigmoid(logits)
        else:
            probabilities = torch.softmax(logits, dim=-1)
        labels = self.labels
        return [
            {label: float(value) for label, value in zip(labels, row)} for row in probabilities.cpu().tolist()
        ]


def _label_options(config_path: Path) -> dict[str, Any]:
    """The label maps (and problem type) saved beside an adapter, as from_pretrained kwargs."""
    if not config_path.is_file():
        return {}
    config = json.loads(config_path.read_text())
    options: dict[str, Any] = {}
    if config.get("id2label"):
        id2label = {int(index): label for index, label in config["id2label"].items()}
        options.update(
            num_labels=len(id2label),
            id2label=id2label,
            label2id=config.get("label2id") or {label: index for index, label in id2label.items()},
        )
    if config.get("problem_type"):
        options["problem_type"] = config["problem_type"]
    return options
