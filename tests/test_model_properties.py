"""DataDreamer's model properties (``model_card``, ``license``, ``citation``, ``version``,
``display_name``, ``display_icon``, ``client`` / ``tokenizer``) on every model class, with
DataDreamer 0.46's values; the data card of a step is built from them."""

from __future__ import annotations

import inspect
from collections import Counter
from types import SimpleNamespace

import pytest

import dreamer_dagster.embedders as embedders
import dreamer_dagster.llms as llms
import dreamer_dagster.retrievers as retrievers
import dreamer_dagster.task_models as task_models
from dreamer_dagster import Pipeline
from dreamer_dagster.cards import CITATION, LICENSE, MODEL_CARD, MODEL_NAME, card_markdown
from dreamer_dagster.citations import HF_TRANSFORMERS_CITATION, SENTENCE_BERT_CITATION
from dreamer_dagster.model import Model
from dreamer_dagster.steps import DataFromPrompt
from dreamer_dagster.task_models import hf_hub_info
from tests.support.foundation import materialize, step_json
from tests.support.openai_server import openai_server  # noqa: F401 - the fixture

PROPERTIES = ("model_card", "license", "citation", "version", "display_name", "display_icon")
PACKAGES = (llms, embedders, retrievers, task_models)

# DataDreamer 0.46's values (src/llms/openai.py, src/embedders/openai_embedder.py), verbatim.
DD_GPT3_CARD = "https://github.com/openai/gpt-3/blob/d7a9bb505df6f630f9bab3b30c889e52f22eb9ea/model-card.md"
DD_GPT4_CARD = "https://cdn.openai.com/papers/gpt-4-system-card.pdf"
DD_OPENAI_LICENSE = "https://openai.com/policies"
DD_GPT3 = (
    "@article{brown2020language,\n  title={Language models are few-shot learners},\n"
    "  author={Brown, Tom and Mann, Benjamin and Ryder, Nick and Subbiah, Melanie and Kaplan, "
    "Jared D and Dhariwal, Prafulla and Neelakantan, Arvind and Shyam, Pranav and Sastry, Girish "
    "and Askell, Amanda and others},\n  journal={Advances in neural information processing systems},"
    "\n  volume={33},\n  pages={1877--1901},\n  year={2020}\n}"
)
DD_GPT4 = (
    "@article{OpenAI2023GPT4TR,\n  title={GPT-4 Technical Report},\n  author={OpenAI},\n"
    "  journal={ArXiv},\n  year={2023},\n  volume={abs/2303.08774},\n"
    "  url={https://api.semanticscholar.org/CorpusID:257532815}\n}"
)
DD_INSTRUCTGPT = (
    "@article{ouyang2022training,\n  title={Training language models to follow instructions with "
    "human feedback},\n  author={Ouyang, Long and Wu, Jeffrey and Jiang, Xu and Almeida, Diogo and "
    "Wainwright, Carroll and Mishkin, Pamela and Zhang, Chong and Agarwal, Sandhini and Slama, "
    "Katarina and Ray, Alex and others},\n  journal={Advances in Neural Information Processing "
    "Systems},\n  volume={35},\n  pages={27730--27744},\n  year={2022}\n}"
)

SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"

# One declaration a public model class that can be declared here (the rest raise when declared).
EXAMPLES = {
    "AI21": lambda: llms.AI21("jamba-mini"),
    "Anthropic": lambda: llms.Anthropic("claude-3-5-haiku-latest"),
    "Bedrock": lambda: llms.Bedrock("anthropic.claude-3-haiku"),
    "Cohere": lambda: llms.Cohere("command-r"),
    "GoogleAIStudio": lambda: llms.GoogleAIStudio("gemini-2.0-flash"),
    "HFAPIEndpoint": lambda: llms.HFAPIEndpoint("https://example.test/endpoint", "org/model"),
    "HFTransformers": lambda: llms.HFTransformers(SMOLLM2),
    "MistralAI": lambda: llms.MistralAI("mistral-small-latest"),
    "OpenAI": lambda: llms.OpenAI("gpt-4"),
    "OpenAICompatible": lambda: llms.OpenAICompatible("m", base_url="http://127.0.0.1:1/v1"),
    "ParallelLLM": lambda: llms.ParallelLLM(llms.default_llm(), llms.default_llm()),
    "Together": lambda: llms.Together("org/model"),
    "VertexAI": lambda: llms.VertexAI("google/gemini-2.0-flash-001", "project", "us-central1"),
    "VLLM": lambda: llms.VLLM(SMOLLM2),
    "OpenAIEmbedder": lambda: embedders.OpenAIEmbedder("text-embedding-3-small"),
    "ParallelEmbedder": lambda: embedders.ParallelEmbedder(embedders.default_embedder()),
    "SentenceTransformersEmbedder": lambda: embedders.SentenceTransformersEmbedder(MINILM),
    "TogetherEmbedder": lambda: embedders.TogetherEmbedder("org/embedder"),
    "EmbeddingRetriever": lambda: retrievers.EmbeddingRetriever(["a", "b"], embedders.default_embedder()),
    "ParallelRetriever": lambda: retrievers.ParallelRetriever(
        retrievers.EmbeddingRetriever(["a", "b"], embedders.default_embedder())
    ),
    "HFClassificationTaskModel": lambda: task_models.HFClassificationTaskModel("org/classifier"),
    "ParallelTaskModel": lambda: task_models.ParallelTaskModel(
        task_models.HFClassificationTaskModel("org/classifier")
    ),
}
#: Classes DataDreamer gives a ``client`` / a ``tokenizer``.
WITH_CLIENT = {"OpenAI", "AI21", "Anthropic", "Bedrock", "Cohere", "GoogleAIStudio", "MistralAI"}
WITH_CLIENT |= {"Together", "VertexAI", "HFAPIEndpoint", "OpenAIEmbedder", "TogetherEmbedder"}
WITH_TOKENIZER = (WITH_CLIENT - {"OpenAIEmbedder"}) | {"OpenAIEmbedder", "HFTransformers", "VLLM"}
WITH_TOKENIZER |= {"SentenceTransformersEmbedder", "HFClassificationTaskModel"}


def public_model_classes() -> list[type]:
    found = []
    for package in PACKAGES:
        for name in package.__all__:
            value = getattr(package, name)
            if inspect.isclass(value) and issubclass(value, Model):
                found.append(value)
    return found


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """An empty Hugging Face cache, HF_HUB_OFFLINE=1, and every download attempt recorded (and
    refused): ``.path``, ``.downloads``."""
    import huggingface_hub
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty_hub_cache"))
    hub = SimpleNamespace(path=tmp_path, downloads=[])

    def no_download(*args, **kwargs):
        hub.downloads.append((args, kwargs))
        raise OSError("offline")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_download)
    hf_hub_info._find_file.cache_clear()
    hf_hub_info._readme.cache_clear()
    yield hub
    hf_hub_info._find_file.cache_clear()
    hf_hub_info._readme.cache_clear()


def test_every_public_model_class_has_the_properties(offline_hub):
    classes = public_model_classes()
    assert len(classes) >= 25
    for cls in classes:
        for name in PROPERTIES:
            assert isinstance(inspect.getattr_static(cls, name, None), property), (cls.__name__, name)
        if cls.__name__ in WITH_CLIENT:
            assert isinstance(inspect.getattr_static(cls, "client", None), property), cls.__name__
        if cls.__name__ in WITH_TOKENIZER:
            assert isinstance(inspect.getattr_static(cls, "tokenizer", None), property), cls.__name__
    declarable = [cls for cls in classes if cls.__name__ in EXAMPLES]
    assert {cls.__name__ for cls in classes} - set(EXAMPLES) == {
        "LLM", "Embedder", "Retriever", "TaskModel", "CTransformers", "OpenAIAssistant", "Petals"
    }  # fmt: skip
    for cls in declarable:
        model = EXAMPLES[cls.__name__]()
        assert type(model) is cls
        assert model.model_card is None or model.model_card.startswith("https://"), cls
        assert model.license is None or isinstance(model.license, str), cls
        assert model.citation is None or all(c.startswith("@") for c in model.citation), cls
        assert model.version == 1.0
        assert model.display_name.startswith(cls.__name__) or cls.__name__.startswith("Parallel")
        if issubclass(cls, retrievers.Retriever):
            continue  # its card adds its embedder's: see the retriever test
        # The data card entries are the properties, nothing else.
        entries = model.card_entries()
        assert entries.get(MODEL_CARD) == ([model.model_card] if model.model_card else None), cls
        assert entries.get(LICENSE) == ([model.license] if model.license else None), cls
        assert entries.get(CITATION) == (model.citation or None), cls
    assert llms.default_llm().display_icon == " 🧠 "
    assert EXAMPLES["EmbeddingRetriever"]().display_icon == " 🔎 "
    assert embedders.default_embedder().display_icon == ""


@pytest.mark.parametrize(
    ("name", "card", "citations"),
    [
        ("gpt-4", DD_GPT4_CARD, [DD_GPT4, DD_INSTRUCTGPT]),
        ("gpt-4o-mini", DD_GPT4_CARD, [DD_GPT4, DD_INSTRUCTGPT]),
        ("gpt-3.5-turbo", DD_GPT3_CARD, [DD_GPT3, DD_INSTRUCTGPT]),
        ("gpt-3.5-turbo-instruct", DD_GPT3_CARD, [DD_GPT3, DD_INSTRUCTGPT]),
        ("davinci-002", DD_GPT3_CARD, [DD_GPT3]),
        ("ft:gpt-3.5-turbo-0613:org:x:abc", DD_GPT3_CARD, [DD_GPT3, DD_INSTRUCTGPT]),
        ("o1-mini", None, []),
    ],
)
def test_openai_values_are_datadreamers(name, card, citations):
    llm = llms.OpenAI(name)
    assert llm.model_card == card
    assert llm.license == DD_OPENAI_LICENSE
    assert llm.citation == citations
    assert llm.version == 1.0
    assert llm.display_name == f"OpenAI ({name})"
    embedder = embedders.OpenAIEmbedder("text-embedding-3-large", dimensions=256)
    assert embedder.model_card == "https://openai.com/blog/new-embedding-models-and-api-updates/"
    assert embedder.license == DD_OPENAI_LICENSE
    assert [c.split(",")[0] for c in embedder.citation] == ["@article{Neelakantan2022TextAC"]
    assert embedder.display_name == "OpenAIEmbedder (text-embedding-3-large) (256)"
    # Kept on purpose (docs/parity.md): a model on another OpenAI-compatible server is not under
    # OpenAI's terms.
    assert llms.OpenAI(name, base_url="http://127.0.0.1:8000/v1").license is None


def test_embedded_models_have_their_real_card_licence_and_citations_offline(offline_hub):
    llm = llms.default_llm()
    assert llm.model_card == f"https://huggingface.co/{SMOLLM2}"
    assert llm.license == "apache-2.0"
    assert llm.citation[0] == HF_TRANSFORMERS_CITATION
    assert [c.split(",")[0] for c in llm.citation[1:]] == ["@misc{allal2025smollm2smolgoesbig"]
    assert llm.display_name == f"HFTransformers ({SMOLLM2})"
    # The same model by name, without the package's conversion, is the same model.
    assert llms.HFTransformers(SMOLLM2).license == "apache-2.0"

    for embedder in (
        embedders.default_embedder(),
        embedders.SentenceTransformersEmbedder("all-MiniLM-L6-v2"),
    ):
        assert embedder.model_card == f"https://huggingface.co/{MINILM}"
        assert embedder.license == "apache-2.0"  # from the README the package ships
        assert embedder.citation == [SENTENCE_BERT_CITATION]
    assert embedders.SentenceTransformersEmbedder("all-MiniLM-L6-v2").display_name == (
        "SentenceTransformersEmbedder (all-MiniLM-L6-v2)"
    )
    # A Hub model with no card here, offline: no card, no licence, and no download.
    unknown = llms.HFTransformers("nobody/unknown-model")
    assert (unknown.model_card, unknown.license, unknown.citation) == (None, None, [HF_TRANSFORMERS_CITATION])
    assert offline_hub.downloads == []


def test_hub_models_read_the_card_from_the_hf_cache_by_datadreamers_rules(offline_hub, monkeypatch):
    import huggingface_hub.constants

    cache = offline_hub.path / "hub_cache"
    snapshot = cache / "models--someone--tiny" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (cache / "models--someone--tiny" / "refs").mkdir()
    (cache / "models--someone--tiny" / "refs" / "main").write_text("abc123")
    (snapshot / "README.md").write_text(
        "---\nlicense:\n- mit\n---\n# Tiny\n\nCite:\n\n@inproceedings{tiny2024, title={Tiny {Models}}}\n"
        "and ```bibtex\n@misc{other, note={x}}\n```\n"
    )
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    model = task_models.HFClassificationTaskModel("someone/tiny", adapter_name="someone/adapter")
    assert model.model_card == "https://huggingface.co/someone/tiny"
    assert model.license == "mit"  # DataDreamer: the first item of a license: list
    assert model.citation[0] == HF_TRANSFORMERS_CITATION and "PEFT" in model.citation[1]
    # Every BibTeX entry of the card, in or out of a code block, braces balanced.
    assert model.citation[2:] == ["@inproceedings{tiny2024, title={Tiny {Models}}}", "@misc{other, note={x}}"]
    assert model.display_name == "HFClassificationTaskModel (someone/tiny + someone/adapter)"
    # A licence file in the repository wins, as its Hub URL.
    (snapshot / "LICENSE.md").write_text("MIT License")
    hf_hub_info._find_file.cache_clear()
    assert llms.HFTransformers("someone/tiny", revision="v1").license is None  # no such revision cached
    assert (
        llms.HFTransformers("someone/tiny").license
        == "https://huggingface.co/someone/tiny/blob/main/LICENSE.md"
    )
    # Together reads the served model's Hub card, else Together's own pages (DataDreamer's fallbacks).
    assert llms.Together("someone/tiny").model_card == "https://huggingface.co/someone/tiny"
    assert llms.Together("other/model").model_card == "https://docs.together.ai/docs/inference-models"
    assert llms.Together("other/model").license == "https://together.ai/terms-of-service"


def test_parallel_models_and_retrievers_take_their_members_properties(offline_hub):
    parallel = llms.ParallelLLM(llms.default_llm(), llms.default_llm())
    assert (parallel.model_card, parallel.license, parallel.display_name) == (
        f"https://huggingface.co/{SMOLLM2}",
        "apache-2.0",
        f"HFTransformers ({SMOLLM2})",
    )
    retriever = retrievers.EmbeddingRetriever(["a", "b"], embedders.default_embedder())
    assert retriever.license == "https://github.com/facebookresearch/faiss/blob/main/LICENSE"
    assert retriever.citation[0].startswith("@article{johnson2019billion")
    # The retriever's entries (FAISS) and its embedder's, as DataDreamer's Retrieve registers them.
    entries = retriever.card_entries()
    assert entries[MODEL_NAME] == [MINILM]
    assert entries[LICENSE] == [retriever.license, "apache-2.0"]
    assert entries[CITATION][1] == SENTENCE_BERT_CITATION


def test_client_and_tokenizer(openai_server, monkeypatch, offline_hub):  # noqa: F811
    import anthropic
    import openai

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-properties")
    llm = llms.OpenAI("gpt-4o-mini", base_url=openai_server.base_url)
    client = llm.client
    assert isinstance(client, openai.OpenAI)
    answer = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content
    assert openai_server.requests[-1]["headers"]["authorization"] == "Bearer sk-test-properties"
    assert isinstance(embedders.OpenAIEmbedder("e", base_url=openai_server.base_url).client, openai.OpenAI)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    assert isinstance(llms.Anthropic("claude-3-5-haiku-latest").client, anthropic.Anthropic)
    # tiktoken (OpenAI's tokenizer) is not installed here: the error says how to get it.
    monkeypatch.setitem(__import__("sys").modules, "tiktoken", None)
    with pytest.raises(ImportError, match="pip install tiktoken"):
        _ = llm.tokenizer
    # A local model's tokenizer is its own.
    tokenizer = llms.default_llm().for_run(None, Counter()).tokenizer
    assert tokenizer.decode(tokenizer("Hello there")["input_ids"]).strip() == "Hello there"


def test_the_smollm2_data_card_has_its_licence_line(tmp_path, instance, offline_hub):
    output = tmp_path / "output"
    with Pipeline(str(output)):
        step = DataFromPrompt(
            "One Word",
            args={"llm": llms.default_llm(), "n": 1, "max_new_tokens": 1, "temperature": 0.0,
                  "instruction": "Say a word."},
        )  # fmt: skip
    materialize([step], instance, output)
    card = step_json(output, step)["data_card"]["One Word"]
    assert card[MODEL_NAME] == [SMOLLM2]
    assert card[LICENSE] == ["apache-2.0"]
    assert card[MODEL_CARD] == [f"https://huggingface.co/{SMOLLM2}"]
    assert any("allal2025smollm2smolgoesbig" in citation for citation in card[CITATION])
    assert "- **License Information:** apache-2.0" in card_markdown({"One Word": card})
