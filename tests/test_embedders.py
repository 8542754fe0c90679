"""Embedders: real MiniLM embeddings, the Embed step through Dagster, the model cache
(a re-run embeds nothing), OpenAIEmbedder against the loopback server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from dreamer_dagster import Pipeline
from dreamer_dagster.cards import CITATION, LICENSE, MODEL_CARD, MODEL_NAME
from dreamer_dagster.embedders import OpenAIEmbedder, SentenceTransformersEmbedder, default_embedder
from dreamer_dagster.steps import DataSource, Embed, StepDeclarationError
from tests.support.foundation import materialization_metadata, materialize, rows, step_json
from tests.support.openai_server import openai_server  # noqa: F401 - the fixture

SENTENCES = [
    "A cat is sleeping on the sofa.",
    "A kitten naps on the couch.",
    "The central bank raised interest rates again.",
    "A cat is sleeping on the sofa.",
]


def test_default_embedder_is_minilm_and_declaring_imports_nothing_heavy():
    embedder = default_embedder()
    assert embedder.identity()["model_name"] == "sentence-transformers/all-MiniLM-L6-v2"
    # Equal declarations have equal identities (and so share a cache); another model does not.
    assert embedder.model_fingerprint == default_embedder().model_fingerprint
    assert embedder.model_fingerprint != SentenceTransformersEmbedder("other/model").model_fingerprint
    code = (
        "import sys\n"
        "from dreamer_dagster.embedders import default_embedder\n"
        "from dreamer_dagster.steps import DataSource, Embed\n"
        "texts = DataSource('T', data={'t': ['a']})\n"
        "step = Embed('E', inputs={'texts': texts.output['t']}, args={'embedder': default_embedder()})\n"
        "step.asset\n"
        "heavy = [m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent)


def test_default_embedder_gives_real_embeddings():
    embedder = default_embedder()
    vectors = embedder.run(SENTENCES[:3])
    assert [v.shape for v in vectors] == [(384,)] * 3
    assert all(v.dtype == np.float32 for v in vectors)
    assert np.allclose([np.linalg.norm(v) for v in vectors], 1.0, atol=1e-4)
    similar = float(vectors[0] @ vectors[1])
    unrelated = float(vectors[0] @ vectors[2])
    assert similar > unrelated + 0.3, (similar, unrelated)
    # An instruction prefixes every text, so it changes the vectors.
    prefixed = embedder.run(SENTENCES[:1], instruction="query: ")
    assert not np.allclose(prefixed[0], vectors[0])


def test_truncate_false_refuses_a_text_longer_than_the_model(tmp_path):
    embedder = default_embedder()
    long_text = "word " * 400
    with pytest.raises(ValueError, match="truncate=True"):
        embedder.run([long_text])
    [vector] = embedder.run([long_text], truncate=True)
    assert vector.shape == (384,)


def test_embed_step_materializes_and_a_rerun_is_fully_cached(tmp_path, instance):
    output = tmp_path / "output"
    with Pipeline(str(output)):
        texts = DataSource("Sentences", data={"sentence": SENTENCES})
        embed = Embed(
            "Embed Sentences",
            inputs={"texts": texts.output["sentence"]},
            args={"embedder": default_embedder(), "batch_size": 2},
        )
    result = materialize([embed], instance, output)
    metadata = materialization_metadata(result, embed)
    # Three distinct texts reach the model; the repeated one is answered with them.
    assert metadata["dreamer/model_calls"] == 3 and metadata["dreamer/cache_hits"] == 0

    produced = rows(output, embed)
    assert produced["texts"] == SENTENCES
    vectors = np.asarray(produced["embeddings"], dtype=np.float32)
    assert vectors.shape == (4, 384)
    assert float(vectors[0] @ vectors[1]) > float(vectors[0] @ vectors[2])
    assert np.array_equal(vectors[0], vectors[3])
    record = step_json(output, embed)
    # Three distinct texts reach the model; the repeated one is answered once.
    assert record["stats"]["model_calls"] == 3
    assert record["schema"]["embeddings"].startswith("List(Value('float32')")
    card = record["data_card"]["Embed Sentences"]
    assert card[MODEL_NAME] == ["sentence-transformers/all-MiniLM-L6-v2"]
    assert card[MODEL_CARD] == ["https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2"]
    assert card[LICENSE] == ["apache-2.0"]
    assert any("Sentence-BERT" in citation for citation in card[CITATION])
    caches = list((output / ".cache").glob("SentenceTransformersEmbedder-all-MiniLM-L6-v2-*.db"))
    assert len(caches) == 1

    # Another step with the same embedder and texts (a new fingerprint: it must run)
    # answers every text from the model cache, identically.
    with Pipeline(str(output)):
        again = Embed(
            "Embed Sentences Again",
            inputs={"texts": texts.output["sentence"]},
            args={"embedder": default_embedder(), "batch_size": 3},
            outputs={"embeddings": "vectors"},
        )
    result = materialize([again], instance, output, only=[again])
    metadata = materialization_metadata(result, again)
    assert metadata["dreamer/model_calls"] == 0 and metadata["dreamer/cache_hits"] == 4
    record = step_json(output, again)
    assert record["stats"]["model_calls"] == 0 and record["stats"]["cache_hits"] == 4
    assert np.array_equal(np.asarray(rows(output, again)["vectors"], dtype=np.float32), vectors)


def test_embed_step_passes_other_args_to_the_embedder_and_checks_its_args(tmp_path, instance):
    output = tmp_path / "output"
    with Pipeline(str(output)):
        texts = DataSource("Words", data={"t": ["alpha", "beta"]})
        short = Embed(
            "Embed Short",
            inputs={"texts": texts.output["t"]},
            args={"embedder": default_embedder(), "truncate_dim": 8},
        )
        full = Embed("Embed Full", inputs={"texts": texts.output["t"]}, args={"embedder": default_embedder()})
    assert short.fingerprint != full.fingerprint
    materialize([short, full], instance, output)
    short_vectors = np.asarray(rows(output, short)["embeddings"])
    full_vectors = np.asarray(rows(output, full)["embeddings"])
    assert short_vectors.shape == (2, 8) and full_vectors.shape == (2, 384)
    head = full_vectors[:, :8] / np.linalg.norm(full_vectors[:, :8], axis=1, keepdims=True)
    assert np.allclose(short_vectors, head, atol=1e-5)

    with pytest.raises(StepDeclarationError, match="embedder"):
        Embed("Bad", inputs={"texts": texts.output["t"]}, args={"embedder": "all-MiniLM-L6-v2"})
    with pytest.raises(StepDeclarationError, match="return_generator"):
        Embed(
            "Bad",
            inputs={"texts": texts.output["t"]},
            args={"embedder": default_embedder(), "return_generator": True},
        )


def test_openai_embedder_against_the_loopback_server(tmp_path, instance, openai_server, monkeypatch):  # noqa: F811
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    # retry_on_fail=True: the faults below are retried by the client (DataDreamer's default for
    # OpenAIEmbedder, False, would fail the step at the first one, with no step retry either).
    embedder = OpenAIEmbedder(
        "fake-embed",
        base_url=openai_server.base_url,
        dimensions=16,
        retry_on_fail=True,
        retry_initial_delay=0.01,
    )
    assert "sk-test-secret" not in json.dumps(embedder.identity())
    output = tmp_path / "output"
    with Pipeline(str(output)):
        texts = DataSource("Texts", data={"t": ["one", "two", "three", "one"]})
        embed = Embed(
            "Embed With API",
            inputs={"texts": texts.output["t"]},
            args={"embedder": embedder, "batch_size": 2},
        )
    openai_server.fail_next(429, 2)
    openai_server.fail_next(503, 1)
    materialize([embed], instance, output)

    from tests.support.openai_server import fake_embedding

    produced = rows(output, embed)
    assert produced["texts"] == ["one", "two", "three", "one"]
    expected = [fake_embedding(text, 16) for text in produced["texts"]]
    assert np.allclose(produced["embeddings"], expected, atol=1e-6)
    assert openai_server.statuses[429] == 2 and openai_server.statuses[503] == 1
    record = step_json(output, embed)
    assert record["stats"]["model_calls"] == 3
    assert "sk-test-secret" not in (output / "embed-with-api" / "step.json").read_text()
    for cache in (output / ".cache").iterdir():
        assert b"sk-test-secret" not in cache.read_bytes()
    requests_before = openai_server.request_count

    # Fully cached: a new step over the same texts sends no request.
    with Pipeline(str(output)):
        again = Embed(
            "Embed With API Again",
            inputs={"texts": texts.output["t"]},
            args={"embedder": embedder, "batch_size": 4},
        )
    materialize([again], instance, output, only=[again])
    assert openai_server.request_count == requests_before
    assert step_json(output, again)["stats"]["cache_hits"] == 4


def bound_api_embedder(server, cache, **kwargs) -> OpenAIEmbedder:
    kwargs.setdefault("retry_initial_delay", 0.01)
    kwargs.setdefault("retry_on_fail", True)  # DataDreamer's default for OpenAIEmbedder is False
    embedder = OpenAIEmbedder("fake-embed", base_url=server.base_url, dimensions=8, **kwargs)
    return embedder.for_run(cache_folder=cache, stats=Counter())


def test_openai_embedder_does_not_retry_by_default_as_in_datadreamer(openai_server, tmp_path):  # noqa: F811
    """DataDreamer's ``OpenAIEmbedder(retry_on_fail=False)`` default: one attempt, then the error."""
    embedder = OpenAIEmbedder("fake-embed", base_url=openai_server.base_url, dimensions=8)
    assert embedder.retry_on_fail is False
    openai_server.fail_next(500, 1)
    with pytest.raises(RuntimeError, match="HTTP 500"):
        embedder.for_run(cache_folder=tmp_path, stats=Counter()).run(["a"])
    assert len(openai_server.requests) == 1


def test_openai_embedder_sends_batches_concurrently_with_no_barrier(openai_server, tmp_path):  # noqa: F811
    from tests.support.openai_server import fake_embedding

    openai_server.latency = 0.02
    embedder = bound_api_embedder(openai_server, tmp_path, max_concurrency=4)
    texts = ["slow [[sleep:2.0]]"] + [f"text {i}" for i in range(59)]
    vectors = embedder.run(texts, batch_size=2)
    assert np.allclose(vectors, [fake_embedding(text, 8) for text in texts], atol=1e-6)
    assert embedder.stats["model_calls"] == 60 and embedder.stats["cache_hits"] == 0
    assert embedder.stats["prompt_tokens"] > 0
    requests = openai_server.requests
    assert len(requests) == 30 and openai_server.max_in_flight == 4
    [slow] = [r for r in requests if "[[sleep" in r["body"]["input"][0]]
    # The 29 fast batches share the 3 other slots (well under 2 s, even at ~60 ms a
    # request on a busy machine) while the slow one is in flight: no barrier.
    overlapped = [r for r in requests if r is not slow and r["finished"] < slow["finished"]]
    assert len(overlapped) == 29, len(overlapped)
    # Every answered batch is in the cache: a re-run sends nothing.
    again = bound_api_embedder(openai_server, tmp_path, max_concurrency=4)
    assert np.array_equal(np.stack(again.run(texts, batch_size=5)), np.stack(vectors))
    assert again.stats["model_calls"] == 0 and again.stats["cache_hits"] == 60
    assert len(openai_server.requests) == 30


def test_openai_embedder_retries_as_openai_does_and_fails_fast_on_client_errors(openai_server, tmp_path):  # noqa: F811
    from tests.support.openai_server import fake_embedding

    openai_server.retry_after = "0.4"
    embedder = bound_api_embedder(openai_server, tmp_path, max_concurrency=1)
    openai_server.fail_next(429, 1)
    started = time.monotonic()
    assert np.allclose(embedder.run(["a"]), [fake_embedding("a", 8)], atol=1e-6)
    assert time.monotonic() - started >= 0.4  # Retry-After honoured
    for fault in ("500", "malformed", "disconnect"):
        openai_server.fail_next(fault, 1)
    assert np.allclose(embedder.run(["b"]), [fake_embedding("b", 8)], atol=1e-6)
    assert len(openai_server.requests) == 2 + 4
    assert openai_server.statuses[429] == 1 and openai_server.statuses[500] == 1
    # Retries are counted by cause, as an LLM counts them.
    retries = {name: count for name, count in embedder.stats.items() if name.startswith("retries")}
    assert retries == {
        "retries": 4,
        "retries_rate_limited": 1,
        "retries_server_error": 1,
        "retries_malformed": 1,
        "retries_connection": 1,
    }, retries

    openai_server.fail_next(500, 100)
    with pytest.raises(RuntimeError, match=r"OpenAIEmbedder 'fake-embed'.*HTTP 500.*after 3 attempts"):
        bound_api_embedder(openai_server, tmp_path, max_retries=2).run(["c"])

    openai_server.reset()
    openai_server.fail_next(401, 1000)
    failing = bound_api_embedder(openai_server, tmp_path, max_concurrency=4)
    with pytest.raises(
        RuntimeError, match=rf"OpenAIEmbedder 'fake-embed' at {openai_server.base_url} failed: HTTP 401"
    ):
        failing.run([f"text {i}" for i in range(200)], batch_size=1)
    # Only the requests already in flight when the first 401 came back were sent.
    assert len(openai_server.requests) <= 4


def test_openai_embedder_needs_a_key_only_for_openai_itself(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(RuntimeError, match="OPENAI_API_KEY"):
        OpenAIEmbedder("text-embedding-3-small").run(["x"])
    assert OpenAIEmbedder("text-embedding-3-large").dims == 3072
    assert OpenAIEmbedder("text-embedding-3-small", dimensions=256).dims == 256
    assert os.environ.get("OPENAI_API_KEY") is None


def test_a_cache_written_with_json_vectors_still_serves_a_rerun(tmp_path, instance):
    """Caches from before vectors were stored as bytes hold JSON lists of floats."""
    import sqlite3

    output = tmp_path / "output"
    with Pipeline(str(output)):
        texts = DataSource("Sentences", data={"sentence": SENTENCES})
        embed = Embed(
            "Embed Old Cache",
            inputs={"texts": texts.output["sentence"]},
            args={"embedder": default_embedder()},
        )
    materialize([embed], instance, output)
    vectors = np.asarray(rows(output, embed)["embeddings"], dtype=np.float32)
    [database] = (output / ".cache").glob("SentenceTransformersEmbedder-*.db")
    with sqlite3.connect(database) as connection:
        stored = connection.execute("SELECT key, value FROM cache").fetchall()
        assert stored and all(isinstance(value, bytes) and len(value) == 4 * 384 for _, value in stored)
        # Rewritten as the earlier versions wrote them: the shortest floats that read back as float32.
        old = [
            (json.dumps([float(format(v, ".9g")) for v in np.frombuffer(value, "<f4").tolist()]), key)
            for key, value in stored
        ]
        connection.executemany("UPDATE cache SET value = ? WHERE key = ?", old)
    shutil.rmtree(output / embed.folder)
    result = materialize([embed], instance, output, only=[embed])
    metadata = materialization_metadata(result, embed)
    assert metadata["dreamer/model_calls"] == 0 and metadata["dreamer/cache_hits"] == len(SENTENCES)
    assert np.array_equal(np.asarray(rows(output, embed)["embeddings"], dtype=np.float32), vectors)


@pytest.mark.slow
def test_a_trained_sentence_transformer_stands_where_the_model_goes(minilm, tmp_path, instance):
    from dreamer_dagster.trainers import TrainSentenceTransformer

    output = tmp_path / "output"
    with Pipeline(str(output)):
        pairs = DataSource(
            "Pairs",
            data={
                "anchor": ["a cat sleeps", "stocks fell", "it is raining"],
                "positive": ["a kitten naps", "markets dropped", "rain is falling"],
            },
        )
        trainer = TrainSentenceTransformer(
            "Tuned Embedder", model_name=str(minilm)
        ).train_with_positive_pairs(
            train_anchors=pairs.output["anchor"],
            train_positives=pairs.output["positive"],
            epochs=1,
            batch_size=3,
        )
        embedder = SentenceTransformersEmbedder(trainer)
        embed = Embed(
            "Embed With Tuned", inputs={"texts": pairs.output["anchor"]}, args={"embedder": embedder}
        )
    assert trainer in embed.upstream()
    assert trainer.asset_key in embed.asset.dependency_keys
    materialize([embed], instance, output)

    vectors = np.asarray(rows(output, embed)["embeddings"])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert step_json(output, embed)["data_card"]["Embed With Tuned"][MODEL_NAME] == ["Tuned Embedder"]
    # The cache is named by the trainer (its fingerprint is in the identity), not by the _model path.
    assert [p.name for p in (output / ".cache").glob("SentenceTransformersEmbedder-*.db")] == [
        f"{embedder.cache_name()}.db"
    ]
    assert "Tuned-Embedder" in embedder.cache_name()
