"""What a model says about itself: DataDreamer's model properties and the data card built from them.

Every model (LLM, embedder, retriever, task model) has DataDreamer's read-only
properties ``model_card`` (a URL), ``license`` (a licence name or URL),
``citation`` (BibTeX entries), ``version``, ``display_name`` and
``display_icon``, with DataDreamer 0.46's values for the same model. A class
sets the ``MODEL_CARD`` / ``LICENSE`` / ``CITATIONS`` class attributes, or
overrides a property where the value depends on the model (a Hub model's
licence is read from its model card, see
:mod:`~dreamer_dagster.task_models.hf_hub_info`).

A step's data card entries for a model come from these properties and nothing
else (:meth:`ModelInfo.card_entries`): the model name, its card, licence and
citations, as DataDreamer's steps register them.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from .cards import CITATION, LICENSE, MODEL_CARD, MODEL_NAME
from .citations import HF_TRANSFORMERS_CITATION, PEFT_CITATION
from .deferred import ColumnRef, Deferred

__all__ = [
    "HubModelInfo",
    "ModelInfo",
    "ParallelInfo",
    "card_model_name",
    "load_hf_tokenizer",
    "stand_in_tokenizer",
]


def card_model_name(value: Any) -> str | None:
    """How a model's ``model_name`` reads on a card: the name, a folder's path, or the name of
    the trainer step whose model it is (None while it is a deferred value)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (ColumnRef, Deferred)):
        step_name = getattr(value.step, "name", None)
        return step_name if isinstance(step_name, str) else None
    step_name = getattr(value, "name", None)  # a trainer step stands for its _model folder
    return step_name if isinstance(step_name, str) else str(value)


class ModelInfo:
    """DataDreamer's model properties, from class attributes a subclass sets or properties it overrides."""

    #: The model card's URL, the licence and the BibTeX citations of every model of the class.
    MODEL_CARD: ClassVar[str | None] = None
    LICENSE: ClassVar[str | None] = None
    CITATIONS: ClassVar[tuple[str, ...]] = ()
    #: DataDreamer's icon for the kind of model (`` 🧠 `` for LLMs, `` 🔎 `` for retrievers).
    DISPLAY_ICON: ClassVar[str] = ""

    def card_name(self) -> str | None:
        """The model's name on data cards and in ``display_name``."""
        return card_model_name(getattr(self, "model_name", None))

    @property
    def model_card(self) -> str | None:
        """The model card's URL (None where there is none)."""
        return self.MODEL_CARD

    @property
    def license(self) -> str | None:
        """The model's licence: a name (``apache-2.0``) or the terms' URL (None where unknown)."""
        return self.LICENSE

    @property
    def citation(self) -> list[str] | None:
        """The BibTeX entries to cite for this model (None where there are none)."""
        return list(self.CITATIONS) or None

    @property
    def version(self) -> float:
        """DataDreamer's version of the model class (1.0 for every model)."""
        return 1.0

    @property
    def display_icon(self) -> str:
        return self.DISPLAY_ICON

    @property
    def display_name(self) -> str:
        """``ClassName (model name)``, as DataDreamer shows a model in its logs."""
        name = self.card_name()
        return f"{type(self).__name__} ({name})" if name else type(self).__name__

    def card_entries(self) -> dict[str, list[str]]:
        """Data card entries of a step using this model: its name, card, licence and citations."""
        entries: dict[str, list[str]] = {}
        name = self.card_name()
        if name:
            entries[MODEL_NAME] = [name]
        if self.model_card:
            entries[MODEL_CARD] = [self.model_card]
        if self.license:
            entries[LICENSE] = [self.license]
        citations = [citation for citation in self.citation or [] if citation]
        if citations:
            entries[CITATION] = list(dict.fromkeys(citations))
        return entries


class HubModelInfo(ModelInfo):
    """A Hugging Face model's properties (``HFTransformers``, ``HFClassificationTaskModel``...),
    read from its model card by DataDreamer's rules (:mod:`~dreamer_dagster.task_models.hf_hub_info`):
    the card's URL where the card exists, its licence, and ``CITATIONS`` (the library's), PEFT's
    for an adapter, then the card's and the adapter card's BibTeX entries."""

    CITATIONS: ClassVar[tuple[str, ...]] = (HF_TRANSFORMERS_CITATION,)

    def hub_name(self) -> str | None:
        """The Hub repository (or folder) the card is read from; None for a model trained here."""
        name = getattr(self, "model_name", None)
        return os.fspath(name) if isinstance(name, (str, os.PathLike)) else None

    def hub_folder(self) -> str | None:
        """A local folder holding the model's files (an installed package's copy), if any."""
        return None

    @property
    def model_card(self) -> str | None:
        from .task_models.hf_hub_info import hf_card_found, hf_model_card_url

        name = self.hub_name()
        if name is None or not hf_card_found(name, getattr(self, "revision", None), self.hub_folder()):
            return None
        return hf_model_card_url(name)

    @property
    def license(self) -> str | None:
        from .task_models.hf_hub_info import hf_license

        name = self.hub_name()
        return hf_license(name, getattr(self, "revision", None), self.hub_folder()) if name else None

    @property
    def citation(self) -> list[str] | None:
        from .task_models.hf_hub_info import hf_citations

        citations = list(self.CITATIONS)
        revision = getattr(self, "revision", None)
        adapter = getattr(self, "adapter_name", None)
        if adapter is not None:
            citations.append(PEFT_CITATION)
        name = self.hub_name()
        if name:
            citations.extend(hf_citations(name, revision, self.hub_folder()))
        if isinstance(adapter, (str, os.PathLike)):
            citations.extend(hf_citations(os.fspath(adapter), revision))
        return citations

    @property
    def display_name(self) -> str:
        name = self.card_name()
        adapter = card_model_name(getattr(self, "adapter_name", None))
        shown = f"{name} + {adapter}" if name and adapter else name
        return f"{type(self).__name__} ({shown})" if shown else type(self).__name__


class ParallelInfo(ModelInfo):
    """The properties of a parallel model (``ParallelLLM``, ``ParallelEmbedder``...): its first
    member's, as in DataDreamer."""

    def info_member(self) -> ModelInfo:
        members = getattr(self, "llms", None) or getattr(self, "models", None)
        return members[0]

    @property
    def model_card(self) -> str | None:
        return self.info_member().model_card

    @property
    def license(self) -> str | None:
        return self.info_member().license

    @property
    def citation(self) -> list[str] | None:
        return self.info_member().citation

    @property
    def version(self) -> float:
        return self.info_member().version

    @property
    def display_name(self) -> str:
        return self.info_member().display_name

    def card_name(self) -> str | None:
        return self.info_member().card_name()

    def card_entries(self) -> dict[str, list[str]]:
        return self.info_member().card_entries()


def load_hf_tokenizer(model_name: Any, revision: str | None = None, trust_remote_code: bool = False) -> Any:
    """A transformers tokenizer (``AutoTokenizer.from_pretrained``), loaded when asked for."""
    if not isinstance(model_name, (str, os.PathLike)):
        raise RuntimeError(
            f"The tokenizer of {model_name!r} is loaded only once it is a name or a folder "
            "(a trainer's model: when the step using it runs)."
        )
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(
        os.fspath(model_name), revision=revision, trust_remote_code=trust_remote_code
    )


def stand_in_tokenizer(
    model_name: Any,
    tokenizer_model_name: str | None = None,
    revision: str | None = None,
    trust_remote_code: bool = False,
) -> Any:
    """DataDreamer's tokenizer for an API model: ``tokenizer_model_name``'s where given, else
    Llama-2's for a Llama-2 chat model, else GPT-2's (loaded from the Hub or its cache)."""
    if tokenizer_model_name is None:
        lower = str(model_name).lower()
        llama_chat = all(part in lower for part in ("llama-", "-2-", "-chat"))
        tokenizer_model_name = "meta-llama/Llama-2-7b-chat-hf" if llama_chat else "gpt2"
    return load_hf_tokenizer(tokenizer_model_name, revision=revision, trust_remote_code=trust_remote_code)
