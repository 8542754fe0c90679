"""The LLM base: batching machinery, structured output, prompts, ParallelLLM, vLLM."""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
from collections import Counter

import pydantic
import pytest

from dreamer_dagster.llms import OpenAI, ParallelLLM
from dreamer_dagster.llms.batch_stream import BatchStream
from dreamer_dagster.llms.generation_result import GenerationResult
from dreamer_dagster.llms.request import GenerationRequest
from dreamer_dagster.llms.response_format import parse, schema_of, validate


def test_importing_the_package_loads_no_heavy_library():
    import subprocess

    code = (
        "import sys, dreamer_dagster.llms, dreamer_dagster.cache; "
        "print([m for m in ('torch', 'transformers', 'openai', 'vllm') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def _requests(count: int) -> list[GenerationRequest]:
    return [
        GenerationRequest(i, f"p{i}", f"k{i}", i, text=f"p{i}", prompt_tokens=count - i) for i in range(count)
    ]


def test_batch_stream_sorts_by_length_and_halves_the_batch_on_out_of_memory():
    sizes: list[int] = []

    def run_batch(batch: list[GenerationRequest]) -> list[GenerationResult]:
        sizes.append(len(batch))
        if len(batch) > 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return [GenerationResult([r.prompt.upper()]) for r in batch]

    stream = BatchStream(run_batch, 8, is_out_of_memory=lambda e: "out of memory" in str(e))
    stream.submit(_requests(10))
    assert stream.poll(block=False) == []  # less than a group: waits for more
    done = stream.poll(block=True)
    assert sorted((r.index, res.texts[0]) for r, res in done) == [(i, f"P{i}") for i in range(10)]
    assert [r.prompt_tokens for r, _ in done] == sorted(r.prompt_tokens for r, _ in done)
    assert sizes[:3] == [8, 4, 2] and set(sizes[3:]) == {2}
    assert stream.batch_size == 2 and stream.pending == 0


def test_batch_stream_reraises_other_errors():
    def run_batch(batch: list[GenerationRequest]) -> list[GenerationResult]:
        raise ValueError("bad input")

    stream = BatchStream(run_batch, 4)
    stream.submit(_requests(2))
    with pytest.raises(ValueError, match="bad input"):
        stream.poll(block=True)


class _Lane:
    """A lane context that records the lanes it was made for and marks its thread."""

    def __init__(self, made: list[int], lanes: int):
        made.append(lanes)

    def __enter__(self) -> None:
        _IN_LANE.active = True

    def __exit__(self, *_exc: object) -> None:
        _IN_LANE.active = False


_IN_LANE = threading.local()


def test_batch_stream_runs_two_batches_side_by_side_in_their_order():
    made: list[int] = []
    # Full batches wait for each other: one batch at a time would break the barrier.
    both_running = threading.Barrier(2, timeout=10)
    threads: list[str] = []

    def run_batch(batch: list[GenerationRequest]) -> list[GenerationResult]:
        threads.append(threading.current_thread().name)
        if len(batch) == 4:
            assert _IN_LANE.__dict__.get("active")  # inside its lane context
            both_running.wait()
        return [GenerationResult([r.prompt.upper()]) for r in batch]

    stream = BatchStream(run_batch, 4, lanes=2, lane=lambda lanes: _Lane(made, lanes))
    stream.submit(_requests(10))
    done = stream.poll(block=True)
    assert [r.prompt_tokens for r, _ in done] == sorted(r.prompt_tokens for r, _ in done)
    assert sorted((r.index, res.texts[0]) for r, res in done) == [(i, f"P{i}") for i in range(10)]
    assert len(threads) == 3 and len(set(threads[:2])) == 2  # 4 + 4 side by side, then the 2 left
    assert made == [2, 2]  # one context a lane, for two lanes; the lone last batch runs plainly


def test_batch_stream_side_by_side_keeps_the_other_batch_when_one_fails():
    def run_batch(batch: list[GenerationRequest]) -> list[GenerationResult]:
        if any(r.index == 0 for r in batch):  # index 0 is the longest prompt: the second batch
            raise ValueError("bad input")
        return [GenerationResult([r.prompt]) for r in batch]

    stream = BatchStream(run_batch, 2, lanes=2, lane=lambda lanes: _Lane([], lanes))
    stream.submit(_requests(4))
    with pytest.raises(ValueError, match="bad input"):
        stream.poll(block=True)
    assert sorted(r.index for r, _ in stream.drain()) == [2, 3]  # paid for: kept for the cache


def test_batch_stream_out_of_memory_side_by_side_goes_to_one_batch_at_a_time():
    sizes: list[tuple[int, bool]] = []

    def run_batch(batch: list[GenerationRequest]) -> list[GenerationResult]:
        side_by_side = bool(_IN_LANE.__dict__.get("active"))
        sizes.append((len(batch), side_by_side))
        if side_by_side:
            raise RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate; out of memory")
        return [GenerationResult([r.prompt]) for r in batch]

    stream = BatchStream(
        run_batch,
        4,
        is_out_of_memory=lambda e: "out of memory" in str(e),
        lanes=2,
        lane=lambda n: _Lane([], n),
    )
    stream.submit(_requests(8))
    done = stream.poll(block=True)
    assert sorted(r.index for r, _ in done) == list(range(8))
    assert sizes == [(4, True), (4, True), (4, False), (4, False)]  # the batch size was kept
    assert stream.lanes == 1 and stream.batch_size == 4


class Person(pydantic.BaseModel):
    name: str
    age: int


def test_response_format_parsing_and_validation():
    assert parse('Sure! {"name": "Ada", "age": 36} Hope that helps.', Person) == '{"name":"Ada","age":36}'
    assert parse('{"name": "Ada"}', Person) is None
    assert parse("no json here", Person) is None
    schema = {
        "type": "object",
        "properties": {"tags": {"type": "array", "items": {"type": "string"}}, "kind": {"enum": ["a", "b"]}},
        "required": ["tags"],
        "additionalProperties": False,
    }
    assert json.loads(parse('{"tags": ["x"], "kind": "a"}', schema)) == {"tags": ["x"], "kind": "a"}
    assert parse('{"tags": [1]}', schema) is None
    assert parse('{"tags": [], "other": 1}', schema) is None
    assert parse('{"broken": } then {"tags": []}', schema) == '{"tags":[]}'
    assert validate(True, {"type": "integer"}) is False
    assert schema_of({"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}) == schema
    with pytest.raises(TypeError):
        schema_of("not a schema")


def test_format_prompt_keeps_the_examples_that_fit():
    llm = OpenAI("fake", base_url="http://127.0.0.1:9/v1", max_context_length=60, system_prompt="")
    examples = [f"example number {i} " + "word " * 5 for i in range(20)]
    prompt = llm.format_prompt(
        max_new_tokens=10, beg_instruction="Begin.", in_context_examples=examples, end_instruction="End."
    )
    kept = prompt.count("example number")
    assert 1 <= kept < 20
    assert prompt.startswith("Begin.\nexample number 0") and prompt.endswith("\nEnd.")
    assert llm.count_tokens(prompt) <= 60 - 10
    limited = llm.format_prompt(in_context_examples=examples, max_in_context_examples=2)
    assert limited.count("example number") == 2
    with pytest.raises(ValueError, match="minimum of 19"):
        llm.format_prompt(max_new_tokens=10, in_context_examples=examples, min_in_context_examples=19)
    with pytest.raises(ValueError, match="exceed"):
        llm.format_prompt(max_new_tokens=10, beg_instruction="word " * 80)


def test_run_argument_errors_are_raised_at_the_call():
    llm = OpenAI("fake", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(TypeError, match="list of strings"):
        llm.run("one prompt")
    with pytest.raises(ValueError, match="n must be"):
        llm.run(["x"], n=0, return_generator=True)
    with pytest.raises(ValueError, match="batch_size"):
        llm.run(["x"], batch_size=0, return_generator=True)


def test_parallel_llm_spreads_prompts_and_shares_one_cache(openai_server, tmp_path):
    one = OpenAI("fake-chat", base_url=openai_server.base_url, max_concurrency=2)
    two = OpenAI("fake-chat", base_url=openai_server.base_url, max_concurrency=3)
    parallel = ParallelLLM(one, two)
    assert parallel.model_fingerprint == one.model_fingerprint and parallel.cache_name() == one.cache_name()
    openai_server.latency = 0.02
    prompts = [f"p{i}" for i in range(40)]
    bound = parallel.for_run(cache_folder=tmp_path, stats=Counter())
    assert bound.run(prompts, batch_size=4) == [f"Echo: {p}" for p in prompts]
    assert bound.stats["model_calls"] == 40
    assert 3 < openai_server.max_in_flight <= 5  # both models worked at once
    single = one.for_run(cache_folder=tmp_path, stats=Counter())
    assert single.run(prompts) == [f"Echo: {p}" for p in prompts]
    assert single.stats["cache_hits"] == 40
    with pytest.raises(ValueError, match="one identity"):
        ParallelLLM(one, OpenAI("other", base_url=openai_server.base_url))


def test_parallel_llm_reports_a_failing_member(openai_server):
    openai_server.fail_next(401, 1)
    parallel = ParallelLLM(*(OpenAI("fake-chat", base_url=openai_server.base_url) for _ in range(2)))
    with pytest.raises(RuntimeError, match="HTTP 401"):
        parallel.for_run(cache_folder=None, stats=Counter()).run([f"p{i}" for i in range(8)], batch_size=2)


def _has_gpu_and_vllm() -> bool:
    if importlib.util.find_spec("vllm") is None:
        return False
    import torch

    return torch.cuda.is_available()


@pytest.mark.gpu
@pytest.mark.skipif(not _has_gpu_and_vllm(), reason="needs vllm and a CUDA GPU")
def test_vllm_generates_and_caches(tmp_path):
    from dreamer_dagster.llms import VLLM, smollm2_path

    llm = VLLM(str(smollm2_path()), max_model_len=2048, gpu_memory_utilization=0.3)
    bound = llm.for_run(cache_folder=tmp_path, stats=Counter())
    [answer] = bound.run(["What is the capital of France?"], max_new_tokens=16)
    assert "Paris" in answer
    again = llm.for_run(cache_folder=tmp_path, stats=Counter())
    assert again.run(["What is the capital of France?"], max_new_tokens=16) == [answer]
    assert again.stats["cache_hits"] == 1
    llm.unload_model()


def test_vllm_declares_without_importing_vllm():
    from dreamer_dagster.llms import VLLM

    llm = VLLM("org/model", tensor_parallel_size=2, system_prompt="Hi")
    assert (
        llm.model_fingerprint
        == VLLM("org/model", tensor_parallel_size=1, system_prompt="Hi").model_fingerprint
    )
    assert llm.model_fingerprint != VLLM("org/model", system_prompt="Other").model_fingerprint
    assert "vllm" not in sys.modules


def test_repeats_are_counted_by_digest_exactly_as_by_the_prompts_themselves():
    import random

    from dreamer_dagster.occurrences import OccurrenceCounter

    rng = random.Random(0)
    pool = [f"prompt {i} " + "x" * rng.randrange(2000) for i in range(3000)] + ["", "é\ud800", "\x00"]
    counter, seen = OccurrenceCounter(capacity=4), {}  # tiny: the table grows several times
    for prompt in (rng.choice(pool) for _ in range(30_000)):
        expected = seen.get(prompt, 0)
        seen[prompt] = expected + 1
        assert counter.next(prompt) == expected
    assert len(counter) == len(seen)
    # A shard starts from the counts of the shards before it.
    based = OccurrenceCounter()
    assert based.add("same", 3) == 0 and based.add("other", 0) == 0 and len(based) == 1
    assert [based.next("same"), based.next("other"), based.next("same")] == [3, 0, 4]


def test_caches_written_with_occurrences_by_prompt_keep_their_keys(openai_server, tmp_path):
    """n identical prompts are n cache entries, under the keys (prompt, k) always had."""
    from dreamer_dagster.cache import ModelCache, key_for, request_prefix

    llm = OpenAI("fake-chat", base_url=openai_server.base_url)
    prompts = ["same"] * 3 + ["other", "same", "other"]
    params = llm._generation_params(
        max_new_tokens=None,
        temperature=1.0,
        top_p=1.0,
        n=1,
        stop=None,
        repetition_penalty=None,
        logit_bias=None,
        seed=None,
        response_format=None,
    )
    prefix = request_prefix(llm.fingerprint_identity(), params)
    seen: dict[str, int] = {}
    stored = []
    for prompt in prompts:  # the keys as a dict of every prompt gave them
        stored.append((key_for(prefix, prompt, seen.get(prompt, 0)), [f"{prompt} #{seen.get(prompt, 0)}"]))
        seen[prompt] = seen.get(prompt, 0) + 1
    with ModelCache(tmp_path, llm.cache_name(), llm.fingerprint_identity()) as cache:
        cache.put_many(stored)
    bound = llm.for_run(cache_folder=tmp_path, stats=Counter())
    assert bound.run(prompts, temperature=1.0, top_p=1.0) == [
        "same #0",
        "same #1",
        "same #2",
        "other #0",
        "same #3",
        "other #1",
    ]
    assert bound.stats["cache_hits"] == 6 and bound.stats["model_calls"] == 0
    assert openai_server.request_count == 0
