"""The row-failure policy: ``max_failed_rows=`` (a count or a share) on prompt steps.

Failed rows (a generation that did not validate, a refusal, a ``post_process`` that
raised) keep their place as None and are counted in ``dreamer/failed_rows``; past the
threshold, or when every row failed, the step fails saying so."""

from __future__ import annotations

import pydantic
import pytest

from dreamer_dagster.errors import RowFailureError, UserCodeError, is_retryable
from dreamer_dagster.llms import OpenAI
from dreamer_dagster.steps import DataSource, FilterWithPrompt, ProcessWithPrompt, Prompt
from tests.support.foundation import materialization_metadata, materialize, rows
from tests.support.openai_server import FakeOpenAIServer


class Answer(pydantic.BaseModel):
    answer: str


def raise_on_four(generation: str) -> str:
    if "row 4" in generation:
        raise ValueError("no digits allowed")
    return generation.upper()


def texts(marks: dict[int, str], total: int = 10) -> list[str]:
    return [f"row {i}" + marks.get(i, "") for i in range(total)]


def chain_of(error: BaseException):
    while error is not None:
        yield error
        error = error.__cause__ or getattr(error, "user_exception", None)


def failure(run) -> BaseException:
    with pytest.raises(Exception) as caught:
        run()
    return next(e for e in chain_of(caught.value) if isinstance(e, (RowFailureError, UserCodeError)))


@pytest.fixture
def server():
    with FakeOpenAIServer() as fake:
        yield fake


def step(server, marks, name="Answers", total=10, **args):
    source = DataSource("Inputs", {"text": texts(marks, total)})
    llm = OpenAI("fake-chat", base_url=server.base_url)
    return ProcessWithPrompt(
        name, inputs={"inputs": source.output["text"]}, args={"llm": llm, "instruction": "Go.", **args}
    )


def test_failed_rows_are_kept_as_none_counted_and_tolerated_up_to_the_limit(tmp_path, instance, server):
    marks = {1: " [[badjson]]", 4: "", 6: " [[refuse]]"}
    answers = step(server, marks, response_format=Answer, post_process=raise_on_four, max_failed_rows=3)
    result = materialize([answers], instance, tmp_path)
    generations = rows(tmp_path, answers)["generations"]
    assert len(generations) == 10  # the output keeps its shape
    assert [i for i, g in enumerate(generations) if g is None] == [1, 4, 6]
    assert all(g.startswith('{"ANSWER"') for i, g in enumerate(generations) if i not in (1, 4, 6))
    metadata = materialization_metadata(result, answers)
    assert metadata["dreamer/failed_rows"] == 3
    # the refusal and the broken answer were asked again (response_format_retries) before failing
    assert metadata["dreamer/refusals"] >= 1 and metadata["dreamer/response_format_failures"] == 2
    # a re-run reads the refusal and the broken answer from the cache: nothing is paid again
    server.reset()
    again = step(
        server,
        marks,
        name="Answers Again",
        response_format=Answer,
        post_process=raise_on_four,
        max_failed_rows=3,
    )
    materialize([again], instance, tmp_path)
    assert server.request_count == 0 and rows(tmp_path, again)["generations"] == generations


def test_past_the_count_the_step_fails_saying_so(tmp_path, instance, server):
    marks = {2: " [[refuse]]", 5: " [[refuse]]", 7: " [[refuse]]"}
    answers = step(server, marks, max_failed_rows=2)
    error = failure(lambda: materialize([answers], instance, tmp_path))
    assert isinstance(error, RowFailureError) and not is_retryable(error)
    message = str(error)
    assert "'Answers' (ProcessWithPrompt): 3 of 10 rows failed (3 were refused)" in message
    assert "more than max_failed_rows=2 allows (2 rows)" in message
    assert "The first was row 2" in message and "raise max_failed_rows" in message
    assert not (tmp_path / answers.folder / "step.json").exists()


def test_a_share_counts_against_the_rows_and_post_process_errors_count_too(tmp_path, instance, server):
    ok = step(server, {}, name="Tolerant", total=20, post_process=raise_on_four, max_failed_rows=0.05)
    result = materialize([ok], instance, tmp_path)  # 1 of 20 is 5%
    assert materialization_metadata(result, ok)["dreamer/failed_rows"] == 1
    strict = step(server, {}, name="Strict", total=20, post_process=raise_on_four, max_failed_rows=0.04)
    message = str(failure(lambda: materialize([strict], instance, tmp_path)))
    assert "1 of 20 rows failed (1 post_process raised)" in message
    assert "row 4: post_process raised (ValueError: no digits allowed)" in message


def test_without_a_limit_post_process_errors_fail_at_once_and_refusals_are_kept(tmp_path, instance, server):
    raising = step(server, {}, name="Raising", post_process=raise_on_four)
    error = failure(lambda: materialize([raising], instance, tmp_path))
    assert isinstance(error, UserCodeError) and isinstance(error.__cause__, ValueError)
    assert "argument 'post_process': the function raised at row 4" in str(error)
    refused = step(server, {3: " [[refuse]]"}, name="Refused")
    result = materialize([refused], instance, tmp_path)
    assert rows(tmp_path, refused)["generations"][3] is None
    assert materialization_metadata(result, refused)["dreamer/failed_rows"] == 1


def test_every_row_failed_fails_whatever_the_limit(tmp_path, instance, server):
    source = DataSource("Inputs", {"text": ["a [[refuse]]", "b [[refuse]]"]})
    llm = OpenAI("fake-chat", base_url=server.base_url)
    for name, limit in (("Default", None), ("Lenient", 100)):
        every = Prompt(
            name, inputs={"prompts": source.output["text"]}, args={"llm": llm, "max_failed_rows": limit}
        )
        message = str(failure(lambda every=every: materialize([every], instance, tmp_path)))
        assert "2 of 2 rows failed (2 were refused), every row failed" in message


def test_filter_steps_drop_failed_rows(tmp_path, instance, server):
    source = DataSource("Inputs", {"text": ["yes one", "yes two [[refuse]]", "yes three"]})
    llm = OpenAI("fake-chat", base_url=server.base_url)
    kept = FilterWithPrompt(
        "Kept",
        inputs={"inputs": source.output["text"]},
        args={"llm": llm, "instruction": "Keep?", "max_failed_rows": 1},
    )
    result = materialize([kept], instance, tmp_path)
    assert rows(tmp_path, kept)["text"] == ["yes one", "yes three"]
    assert materialization_metadata(result, kept)["dreamer/failed_rows"] == 1


def test_a_reward_function_error_names_the_step_argument_and_rows():
    from types import SimpleNamespace

    from dreamer_dagster.trainers.train_hf_grpo import ROW_INDEX, TrainHFGRPO

    def reward(prompts, completions):
        return [len(c) / 0 for c in completions]

    run = SimpleNamespace(step_name="Align")
    function = TrainHFGRPO.reward_function(reward, run)
    with pytest.raises(UserCodeError) as caught:
        function(["p1", "p2"], ["c1", "c2"], **{ROW_INDEX: [7, 3]})
    assert "Step 'Align' (TrainHFGRPO), argument 'reward_model': the function raised at row 3, 7" in str(
        caught.value
    )
    assert isinstance(caught.value.__cause__, ZeroDivisionError)
