"""What DataDreamer says about OpenAI's models: card, licence and citations by model name; the
SDK client and the tiktoken tokenizer (``OpenAIInfo``, mixed into ``OpenAI`` and ``OpenAIEmbedder``)."""

from __future__ import annotations

from typing import Any

from ..citations import GPT3_CITATION, GPT4_CITATION, INSTRUCTGPT_CITATION, OPENAI_EMBEDDINGS_CITATION
from ..model_info import ModelInfo, card_model_name

__all__ = [
    "GPT3_MODEL_CARD",
    "GPT4_MODEL_CARD",
    "OPENAI_EMBEDDINGS_MODEL_CARD",
    "OPENAI_LICENSE",
    "OpenAIEmbedderInfo",
    "OpenAIInfo",
    "openai_citations",
    "openai_model_card",
]

GPT3_MODEL_CARD = (
    "https://github.com/openai/gpt-3/blob/d7a9bb505df6f630f9bab3b30c889e52f22eb9ea/model-card.md"
)
GPT4_MODEL_CARD = "https://cdn.openai.com/papers/gpt-4-system-card.pdf"
OPENAI_EMBEDDINGS_MODEL_CARD = "https://openai.com/blog/new-embedding-models-and-api-updates/"
OPENAI_LICENSE = "https://openai.com/policies"


def _normalized(name: str) -> str:
    return name.split(":")[1] if ":" in name else name  # "ft:gpt-3.5-turbo:org:x:id" -> its base model


def _is_gpt_3(name: str) -> bool:
    return any(part in _normalized(name) for part in ("davinci", "ada", "curie", "gpt-3-"))


def _is_gpt_3_5(name: str) -> bool:
    return any(part in _normalized(name) for part in ("gpt-3.5-", "gpt-35-"))


def _is_reasoning(name: str) -> bool:
    return any(part in _normalized(name) for part in ("o1", "o3"))


def _is_gpt_4(name: str) -> bool:
    name = _normalized(name)
    return (name == "gpt-4" or "gpt-4-" in name or "gpt-4o" in name) and not _is_reasoning(name)


def _is_instruction_tuned(name: str) -> bool:
    name = _normalized(name)
    is_chat = (_is_gpt_3_5(name) or _is_gpt_4(name)) and not name.endswith("-instruct")
    return is_chat or name.startswith("text-") or name.endswith("-instruct")


def openai_model_card(model_name: str) -> str | None:
    """DataDreamer's model card of an OpenAI model: GPT-3's card, GPT-4's system card, else None."""
    if _is_gpt_3(model_name) or _is_gpt_3_5(model_name):
        return GPT3_MODEL_CARD
    return GPT4_MODEL_CARD if _is_gpt_4(model_name) else None


def openai_citations(model_name: str) -> list[str]:
    """DataDreamer's citations of an OpenAI model: GPT-3, GPT-4 and InstructGPT, as they apply."""
    citations = []
    if _is_gpt_3(model_name) or _is_gpt_3_5(model_name):
        citations.append(GPT3_CITATION)
    if _is_gpt_4(model_name):
        citations.append(GPT4_CITATION)
    if _is_instruction_tuned(model_name):
        citations.append(INSTRUCTGPT_CITATION)
    return citations


def _on_openai(model: Any) -> bool:
    """Whether the model is served by OpenAI (or Azure OpenAI), not another OpenAI-compatible server."""
    base_url = getattr(model, "base_url", None)
    return base_url is None or "openai.com" in base_url or "azure.com" in base_url


def _name(model: Any) -> str:
    return model.card_name() or ""


class OpenAIInfo(ModelInfo):
    """``OpenAI``'s model properties (DataDreamer's values), ``client`` and ``tokenizer``."""

    def card_name(self) -> str | None:
        model_name = getattr(self, "model_name", None)
        if isinstance(model_name, str) or type(model_name).__name__ != "TrainOpenAIFineTune":
            return card_model_name(model_name)
        return str(model_name._model_args.get("model_name"))  # the fine-tune's base model

    @property
    def model_card(self) -> str | None:
        return openai_model_card(_name(self))

    @property
    def license(self) -> str | None:
        """OpenAI's policies; None for a model on another OpenAI-compatible server."""
        return OPENAI_LICENSE if _on_openai(self) else None

    @property
    def citation(self) -> list[str] | None:
        return openai_citations(_name(self))

    @property
    def client(self) -> Any:
        """The OpenAI SDK's synchronous client (``openai.OpenAI`` / ``AzureOpenAI``) for this model's
        endpoint, with the key read now from ``api_key=`` or the environment."""
        return self.make_client(self._resolve_api_key(), sync=True)  # type: ignore[attr-defined]

    @property
    def tokenizer(self) -> Any:
        """The model's tiktoken encoding (``cl100k_base`` for names tiktoken does not know)."""
        try:
            import tiktoken
        except ImportError:
            raise ImportError(
                f"{type(self).__name__}.tokenizer is a tiktoken encoding. Fix: pip install tiktoken "
                "(it downloads its tables on first use)."
            ) from None
        try:
            return tiktoken.encoding_for_model(_normalized(_name(self)))
        except KeyError:
            return tiktoken.get_encoding("cl100k_base")


class OpenAIEmbedderInfo(OpenAIInfo):
    """``OpenAIEmbedder``'s model properties (DataDreamer's values), ``client`` and ``tokenizer``."""

    @property
    def model_card(self) -> str | None:
        return OPENAI_EMBEDDINGS_MODEL_CARD if _on_openai(self) else None

    @property
    def citation(self) -> list[str] | None:
        return [OPENAI_EMBEDDINGS_CITATION] if _on_openai(self) else None

    @property
    def display_name(self) -> str:
        dimensions = getattr(self, "dimensions", None)
        suffix = f" ({dimensions})" if dimensions is not None else ""
        return f"{type(self).__name__} ({_name(self)}){suffix}"

    @property
    def client(self) -> Any:
        import openai

        from .urls import sdk_client_options, sending_endpoint

        model: Any = self
        options: dict[str, Any] = {
            "api_key": model._resolve_api_key(),
            "base_url": None,
            "organization": model.organization,
            "max_retries": 0,
            "timeout": model.timeout,
        }
        options = sdk_client_options(sending_endpoint(model.base_url, model._endpoint), options)
        if model.api_version is not None:
            return openai.AzureOpenAI(api_version=model.api_version, **options)
        return openai.OpenAI(**options)
