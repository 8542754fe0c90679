"""Prompt steps against the OpenAI-compatible loopback server, materialized by real Dagster."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pydantic
import pytest

from dreamer_dagster.llms import OpenAI
from dreamer_dagster.output_folder import OutputFolder
from dreamer_dagster.steps import (
    DataFromAttributedPrompt,
    DataFromPrompt,
    DataSource,
    FewShotPrompt,
    FilterWithPrompt,
    JudgeGenerationPairsWithPrompt,
    JudgePairsWithPrompt,
    ProcessWithPrompt,
    Prompt,
    RankWithPrompt,
    StepDeclarationError,
)
from dreamer_dagster.steps.run_context import StepRunContext
from tests.support.foundation import materialization_metadata, materialize, rows, step_json
from tests.support.openai_server import FakeOpenAIServer, FakeRequest, FakeResponse


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAIServer]:
    """The loopback OpenAI-compatible server, in a thread of the test process."""
    with FakeOpenAIServer() as server:
        yield server


def fake_llm(server: FakeOpenAIServer, **kwargs) -> OpenAI:
    return OpenAI("fake-chat", base_url=server.base_url, api_key="test-key", **kwargs)


def echo_of(generation: str) -> str:
    """What the fake server echoed: its answer without the ``Echo: `` prefix and ``[seed S]``."""
    return re.sub(r" \[seed \d+\]$", "", generation).removeprefix("Echo: ")


def take_echo(generation: str) -> str:
    return generation.removeprefix("Echo: ").split(" [seed")[0]


def test_prompt_and_process_with_prompt_rows_and_metadata(tmp_path, instance, openai_server):
    llm = fake_llm(openai_server)
    texts = ["graph parsing", "neural translation", "graph parsing"]
    source = DataSource("Texts", {"text": texts})
    prompt = Prompt("Ask", inputs={"prompts": source.output["text"]}, args={"llm": llm, "max_new_tokens": 20})
    process = ProcessWithPrompt(
        "Summarize",
        inputs={"inputs": source.output["text"]},
        args={"llm": llm, "instruction": "Summarize it.", "post_process": lambda text: text.upper()},
        outputs={"inputs": "text", "generations": "summary"},
    )
    result = materialize([prompt, process], instance, tmp_path)

    asked = rows(tmp_path, prompt)
    assert asked["prompts"] == texts
    assert [echo_of(g) for g in asked["generations"]] == texts
    processed = rows(tmp_path, process)
    assert list(processed) == ["text", "prompts", "summary"]
    assert processed["prompts"] == [f"Input: {t}\n\nInstruction: Summarize it." for t in texts]
    assert processed["summary"] == [("Echo: " + p).upper() for p in processed["prompts"]]
    assert openai_server.request_count == 6  # repeated prompts get their own calls (occurrence keys)

    metadata = materialization_metadata(result, prompt)
    assert metadata["dreamer/model_calls"] == 3
    assert metadata["dreamer/cache_hits"] == 0
    assert metadata["dreamer/prompt_tokens"] > 0 and metadata["dreamer/completion_tokens"] > 0
    assert step_json(tmp_path, prompt)["stats"]["model_calls"] == 3
    assert "fake-chat" in metadata["dreamer/data_card"]

    # A changed step re-runs; the calls it shares with the old one come from the model cache.
    openai_server.reset()
    again = Prompt(
        "Ask",
        inputs={"prompts": source.output["text"]},
        args={"llm": llm, "max_new_tokens": 20, "batch_size": 1},
    )
    assert again.fingerprint == prompt.fingerprint
    assert materialization_metadata(materialize([again], instance, tmp_path), again)["dreamer/reused"] is True
    longer = DataSource("Texts", {"text": [*texts, "tagging"]})
    more = Prompt("Ask", inputs={"prompts": longer.output["text"]}, args={"llm": llm, "max_new_tokens": 20})
    metadata = materialization_metadata(materialize([more], instance, tmp_path), more)
    assert (metadata["dreamer/cache_hits"], metadata["dreamer/model_calls"]) == (3, 1)
    assert openai_server.request_count == 1


def test_data_from_prompt_and_estimated_cost(tmp_path, instance, openai_server, monkeypatch):
    # A known OpenAI model (no base_url) is priced; the client is pointed at the fake server.
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    llm = OpenAI("gpt-4o-mini")
    step = DataFromPrompt(
        "Abstracts",
        args={"llm": llm, "n": 4, "instruction": "Write an abstract.", "max_new_tokens": 30, "seed": 7},
        outputs={"generations": "abstracts"},
    )
    result = materialize([step], instance, tmp_path)
    data = rows(tmp_path, step)
    assert data["prompts"] == ["Write an abstract."] * 4
    assert all(g.startswith("Echo: Write an abstract.") for g in data["abstracts"])
    bodies = [r["body"] for r in openai_server.requests]
    # Each repeat is its own call (its own cache entry), and the seed reaches the API as
    # given, as in DataDreamer (this server answers the same prompt and seed alike).
    assert [b["seed"] for b in bodies] == [7] * 4
    assert (
        len(bodies) == 4
        and {b["temperature"] for b in bodies} == {1.0}
        and {b["top_p"] for b in bodies} == {1.0}
    )
    metadata = materialization_metadata(result, step)
    assert metadata["dreamer/model_calls"] == 4
    assert 0 < metadata["dreamer/estimated_cost_usd"] < 0.01


def test_data_from_attributed_prompt_with_deferred_attributes(tmp_path, instance, openai_server):
    llm = fake_llm(openai_server)
    colors = DataFromPrompt(
        "Colors",
        args={"llm": llm, "n": 1, "instruction": "red,green,blue", "post_process": take_echo},
    )
    attributed = DataFromAttributedPrompt(
        "Balls",
        args={
            "llm": llm,
            "n": 8,
            "instruction": "Describe a {size} {color} ball.",
            "attributes": {"color": colors.output["generations"][0].split(","), "size": ["small", "big"]},
        },
    )
    assert colors in attributed.upstream()
    listed = DataFromAttributedPrompt(
        "Listed",
        args={
            "llm": llm,
            "n": 3,
            "instruction": "A {tone} haiku.",
            "attributes": [{"tone": "sad"}, {"tone": "happy"}],
        },
    )
    materialize([attributed, listed], instance, tmp_path)

    assert rows(tmp_path, colors)["generations"] == ["red,green,blue"]
    data = rows(tmp_path, attributed)
    expected = [(c, s) for c in ("red", "green", "blue") for s in ("small", "big")]
    expected = (expected + expected)[:8]
    assert data["attributes"] == [{"color": c, "size": s} for c, s in expected]
    assert data["prompts"] == [f"Describe a {s} {c} ball." for c, s in expected]
    assert [take_echo(g) for g in data["generations"]] == data["prompts"]
    card = step_json(tmp_path, attributed)["data_card"]
    assert any("2306.15895" in c for c in card["Balls"]["Citation Information"])
    assert rows(tmp_path, listed)["prompts"] == ["A sad haiku.", "A happy haiku.", "A sad haiku."]


def test_few_shot_prompt_format(tmp_path, instance, openai_server):
    llm = fake_llm(openai_server)
    examples = DataSource("Examples", {"word": ["cat", "dog", "cow"], "plural": ["cats", "dogs", "cows"]})
    queries = DataSource("Queries", {"word": ["fox", "ox"]})
    step = FewShotPrompt(
        "Plurals",
        inputs={
            "input_examples": examples.output["word"],
            "output_examples": examples.output["plural"],
            "inputs": queries.output["word"],
        },
        args={"llm": llm, "instruction": "Give the plural.", "max_in_context_examples": 2},
    )
    materialize([step], instance, tmp_path)
    data = rows(tmp_path, step)
    assert data["inputs"] == ["fox", "ox"]
    assert (
        data["prompts"][0]
        == "Give the plural.\n\nInput: cat\nOutput: cats\nInput: dog\nOutput: dogs\nInput: fox\nOutput:"
    )
    assert [echo_of(g) for g in data["generations"]] == data["prompts"]


def test_filter_and_rank_with_prompt(tmp_path, instance, openai_server):
    llm = fake_llm(openai_server)
    source = DataSource(
        "Claims",
        {
            "claim": ["yes: sky is blue", "grass is red", "yes, water is wet", "fire is cold"],
            "id": [1, 2, 3, 4],
        },
    )
    kept = FilterWithPrompt(
        "True Claims",
        inputs={"inputs": source.output["claim"]},
        args={"llm": llm, "instruction": "Is this true? Answer only in one word."},
    )
    scored = DataSource("Scored", {"text": ["score 3 ok", "score 10 great", "no score", "score 7 good"]})
    ranked = RankWithPrompt(
        "Ranked",
        inputs={"inputs": scored.output["text"]},
        args={"llm": llm, "instruction": "Rate it.", "score_threshold": 5},
    )
    unsorted = RankWithPrompt(
        "Unsorted",
        inputs={"inputs": scored.output["text"]},
        args={"llm": llm, "instruction": "Rate it.", "sort": False},
        outputs={"scores": "rating"},
    )
    assert kept.output_columns == ["claim", "id"] and unsorted.output_columns == ["text", "rating"]
    result = materialize([kept, ranked, unsorted], instance, tmp_path)

    assert rows(tmp_path, kept) == {"claim": ["yes: sky is blue", "yes, water is wet"], "id": [1, 3]}
    metadata = materialization_metadata(result, kept)
    assert (metadata["dreamer/rows_kept"], metadata["dreamer/rows_removed"]) == (2, 2)
    assert rows(tmp_path, ranked) == {"text": ["score 10 great", "score 7 good"], "scores": [10.0, 7.0]}
    assert rows(tmp_path, unsorted)["rating"] == [3.0, 10.0, None, 7.0]
    assert materialization_metadata(result, unsorted)["dreamer/rows_without_score"] == 1


def judge_route(server: FakeOpenAIServer, a_label: str, b_label: str) -> None:
    """Answer with the label of the candidate that says GOOD (as the prompt shows them)."""

    def handler(request: FakeRequest) -> FakeResponse:
        text = request.body["messages"][-1]["content"]
        good = text.index("GOOD")
        label = a_label if text.rfind(a_label, 0, good) > text.rfind(b_label, 0, good) else b_label
        answer = f"{label.strip(':')} is better."
        choice = {"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}
        usage = {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}
        body = {
            "id": "j",
            "object": "chat.completion",
            "created": 0,
            "model": "m",
            "choices": [choice],
            "usage": usage,
        }
        return FakeResponse(200, body)

    server.add_route("POST", r"/v1/chat/completions", handler)


def test_judge_pairs_and_generation_pairs(tmp_path, instance, openai_server):
    llm = fake_llm(openai_server)
    pairs = DataSource(
        "Pairs",
        {
            "prompt": ["q1", "q2", "q3", "q4", "q5", "q6"],
            "a": ["GOOD 1", "bad 2", "GOOD 3", "bad 4", "GOOD 5", "bad 6"],
            "b": ["bad 1", "GOOD 2", "bad 3", "GOOD 4", "bad 5", "GOOD 6"],
        },
    )
    expected = ["A", "B", "A", "B", "A", "B"]
    judge_route(openai_server, "Input A:", "Input B:")
    judged = JudgePairsWithPrompt(
        "Judged", inputs={"a": pairs.output["a"], "b": pairs.output["b"]}, args={"llm": llm}
    )
    materialize([judged], instance, tmp_path)
    data = rows(tmp_path, judged)
    assert data["judgements"] == [f"Input {x}" for x in expected]
    assert data["a"] == pairs.args["data"]["a"] and data["b"] == pairs.args["data"]["b"]
    assert data["judge_prompts"][0].endswith(
        "\n\nInstruction: Which input is better? Respond with 'Input A' or 'Input B'."
    )
    swapped = [p.index(b) < p.index(a) for p, a, b in zip(data["judge_prompts"], data["a"], data["b"])]
    assert any(swapped) and not all(swapped)  # randomized order, judgements mapped back

    judge_route(openai_server, "Response A:", "Response B:")
    generation_pairs = JudgeGenerationPairsWithPrompt(
        "Judged Generations",
        inputs={"prompts": pairs.output["prompt"], "a": pairs.output["a"], "b": pairs.output["b"]},
        args={"llm": llm, "randomize_order": False},
    )
    materialize([generation_pairs], instance, tmp_path)
    data = rows(tmp_path, generation_pairs)
    assert data["judgements"] == [f"Response {x}" for x in expected]
    assert data["prompts"] == ["q1", "q2", "q3", "q4", "q5", "q6"]
    assert data["judge_prompts"][0] == (
        "Prompt: q1\n\nResponse A: GOOD 1\n\nResponse B: bad 1\n\n"
        "Instruction: Which response is better? Respond with 'Response A' or 'Response B'."
    )


class Paper(pydantic.BaseModel):
    title: str
    year: int


def test_response_format_parse_failures_are_counted(tmp_path, instance, openai_server):
    llm = fake_llm(openai_server)
    source = DataSource("Requests", {"text": ["paper one", "paper two [[badjson]]", "paper three"]})
    step = Prompt(
        "Structured",
        inputs={"prompts": source.output["text"]},
        args={"llm": llm, "response_format": Paper},
    )
    schema = {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}}}}
    tagged = Prompt(
        "Tagged",
        inputs={"prompts": source.output["text"]},
        args={"llm": llm, "response_format": schema},
    )
    result = materialize([step, tagged], instance, tmp_path)
    generations = rows(tmp_path, step)["generations"]
    assert generations[1] is None
    assert [Paper.model_validate_json(g).year for g in (generations[0], generations[2])] == [1, 1]
    assert openai_server.requests[0]["body"]["response_format"]["type"] == "json_schema"
    assert materialization_metadata(result, step)["dreamer/response_format_failures"] == 1
    tags = rows(tmp_path, tagged)["generations"]
    assert json.loads(tags[0]) == {"tags": ["Echo: paper one"]} and tags[1] is None
    assert materialization_metadata(result, tagged)["dreamer/response_format_failures"] == 1


def test_a_401_fails_at_once_naming_step_and_model(tmp_path, instance, openai_server):
    llm = fake_llm(openai_server)
    source = DataSource("Inputs", {"text": [f"t{i}" for i in range(20)]})
    step = ProcessWithPrompt(
        "Needs A Key", inputs={"inputs": source.output["text"]}, args={"llm": llm, "instruction": "Go."}
    )
    materialize([source], instance, tmp_path)
    openai_server.fail_next(401, 1000)
    with pytest.raises(Exception) as failure:
        materialize([step], instance, tmp_path, only=[step])
    message = str(failure.value) + "".join(str(c) for c in _causes(failure.value))
    assert "'Needs A Key'" in message and "fake-chat" in message and "401" in message
    # No retries: no prompt was sent twice.
    sent = [r["body"]["messages"][-1]["content"] for r in openai_server.requests]
    assert 1 <= len(sent) == len(set(sent)) <= 20 and openai_server.statuses[401] == len(sent)
    assert not (tmp_path / step.folder / "step.json").exists()


def _causes(error: BaseException):
    while error is not None:
        yield error
        error = error.__cause__ or getattr(error, "user_exception", None)


def test_progress_is_logged_at_a_bounded_rate(tmp_path, instance, openai_server):
    llm = fake_llm(openai_server)
    source = DataSource("Items", {"text": [f"item {i}" for i in range(30)]})
    every_row = Prompt(
        "Every Row", inputs={"prompts": source.output["text"]}, args={"llm": llm}, progress_interval=0
    )
    hourly = Prompt(
        "Hourly", inputs={"prompts": source.output["text"]}, args={"llm": llm}, progress_interval=3600
    )
    result = materialize([every_row, hourly], instance, tmp_path)
    messages = [
        event.user_message
        for event in instance.all_logs(result.run_id)
        if event.user_message and "rows/s" in event.user_message
    ]
    every = [m for m in messages if "Every Row:" in m]
    assert len(every) >= 30 and "30 of 30 rows (100%)" in every[-1] and "ETA" in every[0]
    # Bounded: at most the first report and the final one, nothing in between.
    assert 1 <= len([m for m in messages if "Hourly:" in m]) <= 2


def test_rows_stream_from_a_lazy_generator(tmp_path, openai_server):
    """The step pulls prompts as the LLM needs them: after the first row only a window
    of requests has been made, not one per row of the whole step."""
    llm = fake_llm(openai_server, max_concurrency=4)
    step = DataFromPrompt("Many", args={"llm": llm, "n": 5000, "instruction": "Go."})
    folder = OutputFolder(tmp_path)
    context = StepRunContext(step, folder, {}, folder.staging(step.key))
    produced = step.run(context)
    first = next(iter(produced))
    assert first["prompts"] == "Go."
    assert openai_server.request_count < 1000
    produced.close()


def test_prompts_are_built_as_the_llm_asks_for_them(tmp_path, openai_server):
    """Inputs are read and prompts built a window at a time: when the first request reaches the
    server, a window of the 5,000 input rows has been read, not all (as an eager list would)."""
    import datasets

    texts = [f"text {i}" for i in range(5000)]
    source = DataSource("Texts", {"text": texts})
    args = {"llm": fake_llm(openai_server, max_concurrency=4), "instruction": "Go."}
    step = ProcessWithPrompt("Lazy", inputs={"inputs": source.output["text"]}, args=args)
    folder = OutputFolder(tmp_path)
    upstream = {source.key: datasets.Dataset.from_dict({"text": texts})}
    context = StepRunContext(step, folder, upstream, folder.staging(step.key))
    rows_read, at_first_request = [0], []
    read_column, answer = context.iter_column, openai_server._chat_completions

    def counting_column(ref, chunk=1000):
        for value in read_column(ref, chunk):
            rows_read[0] += 1
            yield value

    def first_request_sees(request: FakeRequest) -> FakeResponse:
        at_first_request.append(rows_read[0])
        return answer(request)

    context.iter_column = counting_column
    openai_server.add_route("POST", r"/v1/chat/completions", first_request_sees)
    produced = step.run(context)
    first = next(iter(produced))
    produced.close()
    assert first["generations"] == "Echo: Input: text 0\n\nInstruction: Go."
    assert 1 <= at_first_request[0] < 2000, f"{at_first_request[0]} rows read before the first request"
    assert rows_read[0] < 2000  # still a window when the first row is out


def test_fingerprint_follows_outputs_not_run_settings(openai_server):
    from dreamer_dagster.llms import HFTransformers

    def declare(llm, **args) -> str:
        return DataFromPrompt("Gen", args={"llm": llm, "n": 2, "instruction": "Hi.", **args}).fingerprint

    base = declare(fake_llm(openai_server))
    assert declare(fake_llm(openai_server), batch_size=99) == base
    assert declare(fake_llm(openai_server, max_concurrency=3)) == base
    assert declare(fake_llm(openai_server), max_concurrency=3, lazy=True, progress_interval=5) == base
    assert declare(OpenAI("fake-chat", base_url=openai_server.base_url, api_key="other-key")) == base
    assert declare(fake_llm(openai_server, system_prompt="Be terse.")) != base
    assert declare(OpenAI("fake-chat", base_url="http://127.0.0.1:1/v1")) != base
    assert declare(fake_llm(openai_server), temperature=0.5) != base
    local = declare(HFTransformers("some/model"))
    assert declare(HFTransformers("some/model", chat_prompt_template="<u>{{prompt}}</u>")) != local


@pytest.mark.parametrize(
    ("make", "argument", "words"),
    [
        (lambda llm: DataFromPrompt("X", args={"llm": llm, "n": 0, "instruction": "a"}), "'n'", ">= 1"),
        (
            lambda llm: DataFromPrompt("X", args={"llm": "gpt-4", "n": 1, "instruction": "a"}),
            "'llm'",
            "an LLM",
        ),
        (lambda llm: DataFromPrompt("X", args={"llm": llm, "n": 1}), "instruction", "required"),
        (
            lambda llm: DataFromPrompt("X", args={"llm": llm, "n": 1, "instruction": "a", "temprature": 1}),
            "temprature",
            "temperature",
        ),
        (
            lambda llm: DataFromPrompt("X", args={"llm": llm, "n": 1, "instruction": "a", "top_p": 2}),
            "'top_p'",
            "in [0, 1]",
        ),
        (
            lambda llm: DataFromPrompt(
                "X", args={"llm": llm, "n": 1, "instruction": "a", "response_format": 3}
            ),
            "response_format",
            "JSON schema",
        ),
        (
            lambda llm: DataFromAttributedPrompt(
                "X", args={"llm": llm, "n": 2, "instruction": "{a} {b}", "attributes": {"a": ["x"]}}
            ),
            "'attributes'",
            "do not match",
        ),
        (
            lambda llm: JudgePairsWithPrompt(
                "X", inputs={"a": DataSource("S", {"t": ["x"]}).output["t"]}, args={"llm": llm}
            ),
            "inputs['b']",
            "required",
        ),
        (
            lambda llm: FewShotPrompt(
                "X",
                inputs={
                    k: DataSource("S", {"t": ["x"]}).output["t"]
                    for k in ("input_examples", "output_examples", "inputs")
                },
                args={"llm": llm, "min_in_context_examples": 3, "max_in_context_examples": 2},
            ),
            "max_in_context_examples",
            ">= min_in_context_examples",
        ),
    ],
)
def test_bad_declarations_fail_when_declared(openai_server, make, argument, words):
    with pytest.raises(StepDeclarationError) as failure:
        make(fake_llm(openai_server))
    message = str(failure.value)
    assert "'X'" in message and argument in message and words in message, message


def test_extra_llm_kwargs_pass_through_and_are_fingerprinted(tmp_path, instance, openai_server):
    llm = fake_llm(openai_server)
    source = DataSource("One", {"text": ["hello"]})
    plain = Prompt("P", inputs={"prompts": source.output["text"]}, args={"llm": llm})
    penalized = Prompt(
        "P", inputs={"prompts": source.output["text"]}, args={"llm": llm, "frequency_penalty": 0.5}
    )
    assert plain.fingerprint != penalized.fingerprint
    materialize([penalized], instance, tmp_path)
    assert openai_server.requests[0]["body"]["frequency_penalty"] == 0.5
    assert json.loads(json.dumps(step_json(tmp_path, penalized)["args"]))["frequency_penalty"] == 0.5
