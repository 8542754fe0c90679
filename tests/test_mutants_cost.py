"""Prices, the offline estimate and the budget check, pinned to exact figures and messages
(written to kill the mutants ``make mutants`` found alive in ``llms/pricing.py`` and ``cost.py``;
see docs/mutants.md). Fast: no Dagster run; the loopback server only fills the model cache."""

from __future__ import annotations

from collections import Counter

import pytest

from dreamer_dagster.cost import StepEstimate, budget_stats, check_budget, estimate_step
from dreamer_dagster.embedders import OpenAIEmbedder
from dreamer_dagster.errors import BudgetExceededError
from dreamer_dagster.llms import OpenAI, pricing
from dreamer_dagster.llms.pricing import PRICES_PER_MILLION, Price, estimate_cost, price_of
from dreamer_dagster.llms.token_estimate import estimate_tokens
from dreamer_dagster.output_folder import OutputFolder
from dreamer_dagster.steps import DataSource, Embed, ProcessWithPrompt, Step
from dreamer_dagster.steps.run_context import StepRunContext
from dreamer_dagster.steps.step import REQUIRED
from dreamer_dagster.trainers import TrainHFFineTune

MINI = PRICES_PER_MILLION["gpt-4o-mini"]
TEXTS = [f"text number {i}" for i in range(5)]


# -- pricing --------------------------------------------------------------------------------


def test_a_call_bills_plain_cached_and_completion_tokens_each_at_its_rate():
    price = Price(input=2.0, output=8.0, cached_input=0.5)
    # 1,000 prompt tokens of which 400 cached, 300 completion tokens.
    assert price.cost(1000, 300, 400) == pytest.approx((600 * 2.0 + 400 * 0.5 + 300 * 8.0) / 1e6, rel=1e-12)
    assert price.cost(1000, 300) == pytest.approx((1000 * 2.0 + 300 * 8.0) / 1e6, rel=1e-12)  # none cached
    assert price.cost(100, 0, 500) == pytest.approx(100 * 0.5 / 1e6, rel=1e-12)  # at most all of them
    assert price.cost(100, 0, -50) == pytest.approx(100 * 2.0 / 1e6, rel=1e-12)  # never fewer than none
    # Without a cached rate, cached tokens are billed as plain input.
    assert Price(1.0, 3.0).cost(100, 10, 40) == pytest.approx((100 * 1.0 + 10 * 3.0) / 1e6, rel=1e-12)


def test_the_batch_price_scales_every_rate():
    assert Price(2.0, 8.0, 0.5).scaled(0.5) == Price(1.0, 4.0, 0.25)
    assert Price(2.0, 8.0).scaled(0.5) == Price(1.0, 4.0, None)


@pytest.mark.parametrize(
    ("model", "priced_as"),
    [
        ("gpt-4o", "gpt-4o"),
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("gpt-4o-2024-08-06", "gpt-4o"),  # a dated snapshot
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4o-1-preview", "gpt-4o"),  # a dash and a digit start a snapshot name
        ("gpt-4ox", None),  # not a snapshot: a different model
        ("gpt-4o-audio-preview", None),
        ("claude-3-5-sonnet-20241022", None),
        ("my-local-model", None),
    ],
)
def test_price_of_a_model_its_snapshots_and_no_other(model, priced_as):
    assert price_of(model) == (None if priced_as is None else PRICES_PER_MILLION[priced_as])


def test_a_snapshot_takes_the_price_of_the_longest_name_it_extends(monkeypatch):
    monkeypatch.setitem(pricing.PRICES_PER_MILLION, "tiny", Price(1.0, 1.0))
    monkeypatch.setitem(pricing.PRICES_PER_MILLION, "tiny-2", Price(5.0, 5.0))
    assert price_of("tiny-2-0901") == Price(5.0, 5.0)
    assert price_of("tiny-3") == Price(1.0, 1.0)


def test_estimate_cost_of_a_model_by_name():
    assert estimate_cost("gpt-4o-mini", 1000, 100) == pytest.approx(MINI.cost(1000, 100), rel=1e-12)
    assert estimate_cost("gpt-4o-mini-2024-07-18", 10, 0) == pytest.approx(MINI.cost(10, 0), rel=1e-12)
    assert estimate_cost("not-a-model", 1000, 100) is None


# -- the offline estimate -------------------------------------------------------------------


class RecordingLog:
    """A run log that keeps what it was told."""

    def __init__(self):
        self.messages: list[tuple[str, str]] = []

    def info(self, message: str) -> None:
        self.messages.append(("info", message))

    def warning(self, message: str) -> None:
        self.messages.append(("warning", message))


@pytest.fixture
def priced(openai_server, monkeypatch):
    """``OpenAI("gpt-4o-mini")`` (OpenAI's own, so priced) with its client sent to the loopback server."""
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    return OpenAI("gpt-4o-mini", max_concurrency=2, retry_initial_delay=0.01)


def upstream_of(source: DataSource) -> dict:
    import datasets

    return {source.key: datasets.Dataset.from_dict({"text": TEXTS})}


def process(source: DataSource, llm, name: str = "Shorten", **args) -> ProcessWithPrompt:
    return ProcessWithPrompt(
        name,
        inputs={"inputs": source.output["text"]},
        args={"llm": llm, "instruction": "Shorten it.", "max_new_tokens": 20, **args},
    )


def prompt_tokens(llm, texts: list[str]) -> int:
    return sum(
        estimate_tokens(f"Input: {t}\n\nInstruction: Shorten it.") + estimate_tokens(llm.system_prompt) + 7
        for t in texts
    )


def answer_first_two(source: DataSource, llm, folder: OutputFolder) -> None:
    """Run the step on the first two texts, so their answers are in the model cache."""
    warm = StepRunContext(process(source, llm), folder, upstream_of(source), staged=None)
    warm.upstream = {source.key: upstream_of(source)[source.key].select(range(2))}
    for _ in process(source, llm).run(warm):
        pass
    warm.close()


def test_estimate_counts_cached_and_uncached_prompts_at_the_models_price(tmp_path, priced, openai_server):
    source = DataSource("Texts", {"text": TEXTS})
    step = process(source, priced)
    folder = OutputFolder(tmp_path / "output")
    # Two of the five prompts answered into the model cache by a run of the same model.
    answer_first_two(source, priced, folder)
    sent = openai_server.request_count
    assert sent == 2

    estimate = estimate_step(step, tmp_path / "output", upstream_of(source))
    tokens = prompt_tokens(priced, TEXTS[2:])
    assert estimate == StepEstimate("Shorten", 5, 3, tokens, 3 * 20, round(MINI.cost(tokens, 60), 6), None)
    assert estimate.as_dict()["uncached_prompts"] == 3
    assert openai_server.request_count == sent  # nothing sent
    assert estimate_step(step, folder, upstream_of(source)) == estimate  # an OutputFolder as well


def test_estimate_of_steps_without_llm_calls(tmp_path):
    source = DataSource("Texts", {"text": TEXTS})
    assert estimate_step(source, tmp_path) == StepEstimate("Texts", 0, 0, 0, 0, 0.0, None)
    trainer = TrainHFFineTune("Tuned", model_name="never/loaded").train(
        train_input=source.output["text"], train_output=source.output["text"]
    )
    assert estimate_step(trainer, tmp_path) == StepEstimate(
        "Tuned", None, None, None, None, None, "TrainHFFineTune is a trainer: training cost is not estimated"
    )


def test_estimate_says_why_it_has_no_cost(tmp_path):
    source = DataSource("Texts", {"text": TEXTS})
    local = OpenAI("fake-chat", base_url="http://127.0.0.1:9/v1")
    unpriced = estimate_step(process(source, local, max_new_tokens=None), tmp_path, upstream_of(source))
    assert unpriced == StepEstimate(
        "Shorten",
        5,
        5,
        prompt_tokens(local, TEXTS),
        5 * 256,
        None,
        "no price is known for OpenAI(model_name='fake-chat', base_url='http://127.0.0.1:9/v1'); "
        "max_new_tokens is not set: 256 completion tokens assumed per answer",
    )
    embed = Embed("Embed", inputs={"texts": source.output["text"]}, args={"embedder": OpenAIEmbedder("e")})
    assert estimate_step(embed, tmp_path, upstream_of(source)) == StepEstimate(
        "Embed",
        None,
        None,
        None,
        None,
        None,
        f"not estimated: it uses {embed.args['embedder']!r}, whose calls are not estimated",
    )
    broken = estimate_step(process(source, local), tmp_path, upstream={})
    assert broken == StepEstimate(
        "Shorten",
        None,
        None,
        None,
        None,
        None,
        "could not estimate: RuntimeError: Step 'Shorten' reads 'Texts', which is not among its loaded inputs.",
    )
    waiting = estimate_step(process(source, local), tmp_path)
    assert waiting == StepEstimate(
        "Shorten",
        None,
        None,
        None,
        None,
        None,
        "upstream step 'Texts' is not materialized yet, so its prompts are not known",
    )


# -- the budget check -----------------------------------------------------------------------


def budget_context(step, tmp_path, source) -> tuple[StepRunContext, RecordingLog]:
    log = RecordingLog()
    return StepRunContext(step, OutputFolder(tmp_path), upstream_of(source), staged=None, log=log), log


def test_check_budget_passes_at_the_estimate_and_fails_over_it(tmp_path, priced):
    source = DataSource("Texts", {"text": TEXTS})
    step = process(source, priced, name="Costly")
    context, log = budget_context(step, tmp_path, source)
    assert check_budget(step, context) is None and log.messages == []  # no budget: nothing to check

    answer_first_two(source, priced, OutputFolder(tmp_path))  # the check reads this output folder's cache
    usd = estimate_step(step, tmp_path, upstream_of(source)).estimated_usd
    tokens = prompt_tokens(priced, TEXTS[2:])
    step.budget_usd = usd
    context, log = budget_context(step, tmp_path, source)
    assert check_budget(step, context) == StepEstimate("Costly", 5, 3, tokens, 60, usd, None)
    assert log.messages == [
        ("info", f"Step 'Costly': estimated ${usd:.4f} for 3 uncached prompts (budget_usd={usd}).")
    ]

    step.budget_usd = usd / 2
    context, log = budget_context(step, tmp_path, source)
    with pytest.raises(BudgetExceededError) as raised:
        check_budget(step, context)
    assert str(raised.value) == (
        f"Step 'Costly': the estimated cost ${usd:.4f} of its 3 uncached prompts ({tokens} prompt tokens, "
        f"at most 60 completion tokens) is over its budget_usd={usd / 2}; nothing was sent. "
        "Fix: raise budget_usd, lower max_new_tokens or the number of prompts."
    )


def test_a_budget_that_cannot_be_checked_warns_with_the_reason(tmp_path):
    source = DataSource("Texts", {"text": TEXTS})
    local = OpenAI("fake-chat", base_url="http://127.0.0.1:9/v1")
    step = process(source, local, name="Local")
    step.budget_usd = 0.01
    context, log = budget_context(step, tmp_path, source)
    estimate = check_budget(step, context)
    assert estimate.estimated_usd is None and estimate.uncached_prompts == 5
    assert log.messages == [
        (
            "warning",
            "Step 'Local': budget_usd=0.01 cannot be checked before the run: no price is known for "
            "OpenAI(model_name='fake-chat', base_url='http://127.0.0.1:9/v1').",
        )
    ]


def test_budget_stats_name_the_budget_and_the_unpriced_models(tmp_path):
    source = DataSource("Texts", {"text": TEXTS})
    step = process(source, OpenAI("fake-chat", base_url="http://127.0.0.1:9/v1"))
    context, _ = budget_context(step, tmp_path, source)
    context.scope.unpriced.extend(["A()", "B()"])
    budget_stats(step, context)
    assert context.stats == Counter()  # no budget: no stats
    step.budget_usd = 0.5
    context, _ = budget_context(step, tmp_path, source)
    budget_stats(step, context)
    assert dict(context.stats) == {"budget_usd": 0.5}
    context.scope.unpriced.extend(["A()", "B()"])
    budget_stats(step, context)
    assert dict(context.stats) == {
        "budget_usd": 0.5,
        "budget_note": "not checked for A(), B(): no known price",
    }


def commit_finished(folder: OutputFolder, step, tmp_path, model: bool) -> None:
    """``step``'s folder committed as finished: a ``_dataset`` of TEXTS, or a ``_model`` folder."""
    import datasets

    staged = tmp_path / f"staged-{step.key}"
    if model:
        (staged / "_model").mkdir(parents=True)
        (staged / "_model" / "config.json").write_text("{}")
    else:
        datasets.Dataset.from_dict({"text": TEXTS}).save_to_disk(str(staged / "_dataset"))
    record = {"name": step.name, "fingerprint": step.fingerprint, "data_version": "0123456789abcdef"}
    folder.step(step.folder).commit(staged, {**record, "model": True} if model else record)


def test_estimate_reads_finished_upstream_datasets_and_model_paths(tmp_path, priced):
    folder = OutputFolder(tmp_path / "output")
    source = DataSource("Texts", {"text": TEXTS})
    trainer = TrainHFFineTune("Tuned", model_name="never/loaded").train(
        train_input=source.output["text"], train_output=source.output["text"]
    )
    commit_finished(folder, source, tmp_path, model=False)
    step = process(source, priced)
    assert estimate_step(step, folder) == estimate_step(step, folder, upstream_of(source))
    assert estimate_step(step, folder).uncached_prompts == 5
    # A trainer upstream is its _model folder's path (here written into the instruction).
    commit_finished(folder, trainer, tmp_path, model=True)
    named = ProcessWithPrompt(
        "Named",
        inputs={"inputs": source.output["text"]},
        args={"llm": priced, "instruction": trainer.model_path, "max_new_tokens": 20},
    )
    model_path = str(folder.step(trainer.folder).model_path)
    tokens = sum(
        estimate_tokens(f"Input: {t}\n\nInstruction: {model_path}")
        + estimate_tokens(priced.system_prompt)
        + 7
        for t in TEXTS
    )
    assert estimate_step(named, folder) == StepEstimate(
        "Named", 5, 5, tokens, 100, round(MINI.cost(tokens, 100), 6), None
    )


def test_an_estimate_with_every_prompt_cached(tmp_path, priced):
    import datasets

    source = DataSource("Texts", {"text": TEXTS})
    folder = OutputFolder(tmp_path)
    answer_first_two(source, priced, folder)
    first_two = {source.key: datasets.Dataset.from_dict({"text": TEXTS[:2]})}
    assert estimate_step(process(source, priced), folder, first_two) == StepEstimate(
        "Shorten", 2, 0, 0, 0, 0.0, None
    )


class TwoOpinions(Step):
    """Asks each of its models (a list) about each input; its rows come lazily from an
    iterable that is not an iterator."""

    INPUTS = {"inputs": True}
    ARGS = {"models": REQUIRED}
    OUTPUTS = ("first", "second")

    def run(self, context):
        first, second = (context.model(model) for model in self.args["models"])
        texts = list(context.iter_column(self.inputs["inputs"]))

        class Rows:
            def __iter__(self):
                answers = zip(first.run(texts, max_new_tokens=5), second.run(texts, max_new_tokens=5))
                for a, b in answers:
                    yield {"first": a, "second": b}

        return Rows()


def test_a_step_with_lazy_rows_and_two_unpriced_models(tmp_path):
    source = DataSource("Texts", {"text": TEXTS})
    one = OpenAI("fake-a", base_url="http://127.0.0.1:9/v1")
    two = OpenAI("fake-b", base_url="http://127.0.0.1:9/v1")
    step = TwoOpinions("Opinions", inputs={"inputs": source.output["text"]}, args={"models": [one, two]})
    estimate = estimate_step(step, tmp_path, upstream_of(source))
    assert (estimate.prompts, estimate.uncached_prompts, estimate.completion_tokens) == (10, 10, 50)
    assert estimate.estimated_usd is None
    assert estimate.note == f"no price is known for {one!r}, {two!r}"


def test_an_estimate_on_a_remote_output_folder_reads_this_workers_cache(tmp_path, priced):
    import uuid

    folder = OutputFolder(f"memory://estimates-{uuid.uuid4().hex}/out", local_folder=str(tmp_path / "worker"))
    source = DataSource("Texts", {"text": TEXTS})
    answer_first_two(source, priced, folder)  # into this worker's own cache, not yet published
    assert estimate_step(process(source, priced), folder, upstream_of(source)).uncached_prompts == 3


class NeverAsks(Step):
    """Holds an LLM but answers from its input alone: no prompt reaches the model."""

    INPUTS = {"inputs": True}
    ARGS = {"llm": REQUIRED}
    OUTPUTS = ("inputs",)

    def run(self, context):
        return {"inputs": list(context.iter_column(self.inputs["inputs"]))}


def test_a_step_whose_model_is_never_asked_costs_nothing(tmp_path, priced):
    source = DataSource("Texts", {"text": TEXTS})
    step = NeverAsks("Quiet", inputs={"inputs": source.output["text"]}, args={"llm": priced})
    assert estimate_step(step, tmp_path, upstream_of(source)) == StepEstimate("Quiet", 0, 0, 0, 0, 0.0, None)
