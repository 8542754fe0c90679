"""One cache for every call: a model called directly (``llm.run``, ``embedder.run``,
``retriever.run``) inside a session reads and writes the SQLite cache a step uses, with the
same keys, so a direct call and a step share answers both ways; ``force`` and ``cache_only``
mean what they mean in DataDreamer; outside any session, DataDreamer's rule
(``cache_folder_path``, else no cache)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from dreamer_dagster import Pipeline
from dreamer_dagster.embedders import default_embedder
from dreamer_dagster.llms import OpenAI
from dreamer_dagster.retrievers import EmbeddingRetriever
from dreamer_dagster.steps import DataSource, Embed, Prompt
from tests.support.foundation import materialization_metadata, materialize, rows
from tests.test_task_models import classifier  # noqa: F401 - the fixture

PROMPTS = ["bridges", "rivers", "trains"]  # sorted
ECHOES = [f"Echo: {prompt}" for prompt in PROMPTS]


@pytest.fixture
def llm(openai_server, monkeypatch) -> OpenAI:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-loopback")
    return OpenAI("fake-chat", base_url=openai_server.base_url)


def sent(server) -> list[str]:
    """The prompts of the chat completion requests the server received (sorted: requests are
    sent concurrently)."""
    return sorted(
        record["body"]["messages"][-1]["content"]
        for record in server.requests
        if record["path"].endswith("/chat/completions")
    )


def cache_rows(folder: Path, prefix: str) -> int:
    """The answers held by the one cache file of ``prefix`` in ``folder``."""
    [path] = list(folder.glob(f"{prefix}-*.db"))
    with sqlite3.connect(path) as connection:
        return connection.execute("SELECT COUNT(*) FROM cache").fetchone()[0]


def test_direct_calls_in_a_script_then_a_step_make_each_request_once(
    llm, openai_server, tmp_path, script_home
):
    output = tmp_path / "output"
    with Pipeline(str(output), run=True):
        first = llm.run(PROMPTS)
        again = llm.run(PROMPTS)
        assert first == again == ECHOES
        assert sent(openai_server) == PROMPTS  # 3 requests for 6 answers (DataDreamer: 3)
        # Written before run() returned: a script killed now keeps every answer.
        assert cache_rows(output / ".cache", "OpenAI-fake-chat") == 3
        prompts = DataSource("Prompts", data={"prompts": PROMPTS})
        ask = Prompt("Ask", inputs={"prompts": prompts.output["prompts"]}, args={"llm": llm})
        assert [row["generations"] for row in ask.output] == ECHOES  # materialized now
    assert sent(openai_server) == PROMPTS  # the step paid nothing (DataDreamer: 0)
    assert ask.output.num_rows == 3


def test_a_step_first_then_direct_cache_only_force_and_a_generator_left_open(
    llm, openai_server, tmp_path, script_home
):
    output = tmp_path / "output"
    with Pipeline(str(output), run=True):
        prompts = DataSource("Prompts", data={"prompts": PROMPTS})
        ask = Prompt("Ask", inputs={"prompts": prompts.output["prompts"]}, args={"llm": llm})
        assert len(ask.output) == 3
        assert sent(openai_server) == PROMPTS
        # The step's answers, read by a direct call that may not call the model.
        assert llm.run(PROMPTS, cache_only=True) == ECHOES
        assert sent(openai_server) == PROMPTS
        with pytest.raises(RuntimeError, match="cache_only=True"):
            llm.run(["not asked yet"], cache_only=True)
        # force=True sends every prompt again and overwrites the answers.
        assert llm.run(PROMPTS[:2], force=True) == ECHOES[:2]
        assert sent(openai_server) == sorted(PROMPTS + PROMPTS[:2])
        # A direct generator left half-read holds no lock: a step in the same process runs.
        before = sent(openai_server)
        pending = llm.run(["held 1", "held 2"], return_generator=True, batch_size=1)
        assert next(pending) == "Echo: held 1"
        more = DataSource("More", data={"prompts": ["held 1", "held 2", "new"]})
        ask_more = Prompt("Ask More", inputs={"prompts": more.output["prompts"]}, args={"llm": llm})
        assert [row["generations"] for row in ask_more.output] == [
            "Echo: held 1",
            "Echo: held 2",
            "Echo: new",
        ]
        assert list(pending) == ["Echo: held 2"]
    later = sent(openai_server)
    for prompt in before:
        later.remove(prompt)
    assert later.count("held 1") == 1 and later.count("new") == 1


def test_cache_folder_path_is_honoured_for_a_direct_call(openai_server, tmp_path, monkeypatch, script_home):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-loopback")
    elsewhere = tmp_path / "my_cache"
    llm = OpenAI("fake-chat", base_url=openai_server.base_url, cache_folder_path=str(elsewhere))
    with Pipeline(str(tmp_path / "output"), run=True):
        assert llm.run(PROMPTS) == llm.run(PROMPTS) == ECHOES
    assert sent(openai_server) == PROMPTS
    assert cache_rows(elsewhere, "OpenAI-fake-chat") == 3
    assert not (tmp_path / "output" / ".cache").exists()
    # Outside any session too (DataDreamer: cache_folder_path always wins).
    assert llm.run(PROMPTS, cache_only=True) == ECHOES


def test_outside_any_session_or_in_memory_a_direct_call_has_no_cache(
    llm, openai_server, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    assert llm.run(PROMPTS) == llm.run(PROMPTS) == ECHOES
    assert sent(openai_server) == sorted(PROMPTS + PROMPTS)  # DataDreamer: no session, no cache
    with pytest.raises(RuntimeError, match="cache_only=True"):
        llm.run(PROMPTS, cache_only=True)
    with Pipeline(":memory:", run=False):
        llm.run(PROMPTS[:1])
        llm.run(PROMPTS[:1])
    assert sent(openai_server) == sorted(PROMPTS * 2 + PROMPTS[:1] * 2)  # in memory: no cache either
    assert not list(tmp_path.rglob("*.db"))


def test_a_direct_call_inside_a_running_step_uses_the_output_folders_cache(
    llm, openai_server, tmp_path, instance
):
    output = tmp_path / "output"
    with Pipeline(str(output)):
        prompts = DataSource("Prompts", data={"prompts": PROMPTS})
        # A user function of a Dagster run calls the model itself.
        asked = prompts.map(  # lazy=False: the calls are this step's (a lazy map calls when read)
            lambda row: {"answer": llm.run([row["prompts"]])[0]}, name="Ask Directly", lazy=False
        )
        ask = Prompt("Ask", inputs={"prompts": prompts.output["prompts"]}, args={"llm": llm})
    result = materialize([asked], instance, output)
    assert rows(output, asked)["answer"] == ECHOES
    assert sent(openai_server) == PROMPTS
    # Counted in the running step's stats (its scope), like a bound model's calls.
    assert materialization_metadata(result, asked)["dreamer/model_calls"] == 3
    result = materialize([ask], instance, output, only=[ask])
    metadata = materialization_metadata(result, ask)
    assert metadata["dreamer/model_calls"] == 0 and metadata["dreamer/cache_hits"] == 3
    assert sent(openai_server) == PROMPTS


def test_an_embedder_and_a_retriever_called_directly_compute_each_text_once(tmp_path, instance, monkeypatch):
    output = tmp_path / "output"
    texts = ["A cat sleeps on the sofa.", "Interest rates rose again.", "A kitten naps on the couch."]
    embedder = default_embedder()
    with Pipeline(str(output), run=False):
        first = embedder.run(texts)
        again = embedder.run(texts)
        assert cache_rows(output / ".cache", "SentenceTransformersEmbedder-all-MiniLM-L6-v2") == 3
        assert all(np.array_equal(a, b) for a, b in zip(first, again))
        assert len(embedder.run(texts, cache_only=True)) == 3
        with pytest.raises(RuntimeError, match="cache_only=True"):
            embedder.run(["never embedded"], cache_only=True)
        retriever = EmbeddingRetriever(texts, embedder)
        [found] = retriever.run(["a cat on a couch"], k=2)
        assert found["indices"] == [0, 2] or found["indices"] == [2, 0]
        assert retriever.run(["a cat on a couch"], k=2, cache_only=True) == [found]
        source = DataSource("Texts", data={"t": texts})
        embed = Embed("Embed", inputs={"texts": source.output["t"]}, args={"embedder": embedder})
    # The step reads what the direct calls computed: nothing is embedded again.
    result = materialize([embed], instance, output)
    metadata = materialization_metadata(result, embed)
    assert metadata["dreamer/model_calls"] == 0 and metadata["dreamer/cache_hits"] == 3
    assert np.array_equal(np.asarray(rows(output, embed)["embeddings"][0], dtype=np.float32), first[0])
    # Direct calls outside any block compute again (DataDreamer: no session, no cache).
    calls = []
    real = type(embedder).embed_batch

    def counting(self, batch, *args, **kwargs):
        calls.append(len(batch))
        return real(self, batch, *args, **kwargs)

    monkeypatch.setattr(type(embedder), "embed_batch", counting)
    embedder.run(texts[:1])
    assert calls == [1]
    with Pipeline(str(output), run=False):
        embedder.run(texts)
        embedder.run(texts, force=True)
    assert calls == [1, 3]  # inside: cached, then force computes every text again


def test_on_a_shared_output_folder_direct_calls_use_the_workers_cache_and_publish_it(
    llm, openai_server, tmp_path, monkeypatch
):
    shared = tmp_path / "shared"
    url = shared.as_uri()  # file://: a disk several machines write
    monkeypatch.setenv("DREAMER_LOCAL_FOLDER", str(tmp_path / "machine-a"))
    with Pipeline(url, run=False):
        assert llm.run(PROMPTS) == ECHOES
    # Published when the call ended, as a step's calls are when it commits.
    assert len(list((shared / ".cache").glob("OpenAI-fake-chat-*/*.db"))) == 1
    assert not list((shared / ".cache").glob("*.db"))  # never one SQLite file on the shared disk
    monkeypatch.setenv("DREAMER_LOCAL_FOLDER", str(tmp_path / "machine-b"))
    with Pipeline(url, run=False):
        assert llm.run(PROMPTS, cache_only=True) == ECHOES  # another machine reads them
    assert sent(openai_server) == PROMPTS
    assert list((tmp_path / "machine-b").rglob("OpenAI-fake-chat-*.db"))


def test_a_task_model_called_directly_classifies_each_text_once(classifier, tmp_path, monkeypatch):  # noqa: F811
    from dreamer_dagster.task_models import HFClassificationTaskModel

    texts = ["I loved this film.", "Awful plot.", "It was fine.", "It was fine."]
    calls: list[int] = []
    real = HFClassificationTaskModel._classify

    def counting(self, batch, *args, **kwargs):
        calls.append(len(batch))
        return real(self, batch, *args, **kwargs)

    monkeypatch.setattr(HFClassificationTaskModel, "_classify", counting)
    model = HFClassificationTaskModel(str(classifier))
    output = tmp_path / "output"
    with Pipeline(str(output), run=False):
        first = model.run(texts)
        assert model.run(texts) == first
        assert calls == [3]  # three distinct texts, classified once
        assert cache_rows(output / ".cache", "HFClassificationTaskModel") == 3
        assert model.run(texts, cache_only=True) == first
        model.run(texts[:1], force=True)
    assert calls == [3, 1]
