"""Asset checks: evaluated by real Dagster runs from each step's own record, on run and on reuse,
with per-step thresholds; a blocking check stops the trainer downstream of it."""

from __future__ import annotations

import math

import dagster as dg
import pytest

from dreamer_dagster import CheckThresholds, dreamer_definitions
from dreamer_dagster.checks import check_results
from dreamer_dagster.llms import OpenAI
from dreamer_dagster.steps import DataSource, ProcessWithPrompt, Prompt
from dreamer_dagster.trainers import TrainHFFineTune
from tests.support.foundation import materialize

# Ten inputs, five distinct, each twice: the echoing server makes half the generations duplicates.
HALF_DUPLICATED = [f"topic {i % 5}" for i in range(10)]


def llm(server) -> OpenAI:
    return OpenAI("fake-chat", base_url=server.base_url, api_key="test-key")


def evaluations(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {
        f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}": evaluation
        for evaluation in result.get_asset_check_evaluations()
    }


def run(steps, instance, output, selection=None) -> dg.ExecuteInProcessResult:
    defs = dreamer_definitions(list(steps), output_folder=str(output))
    return dg.materialize(
        list(defs.assets),
        instance=instance,
        resources=dict(defs.resources),
        selection=selection,
        raise_on_error=False,
    )


def test_duplicate_generations_fail_on_run_and_on_reuse(tmp_path, instance, openai_server):
    source = DataSource("Topics", {"text": HALF_DUPLICATED})
    tweets = ProcessWithPrompt(
        "Tweets",
        inputs={"inputs": source.output["text"]},
        args={"llm": llm(openai_server), "instruction": "Tweet."},
    )
    spec_names = {spec.name for spec in tweets.asset.check_specs}
    assert spec_names == {"row_count", "empty_generations", "duplicate_generations"}

    result = run([tweets], instance, tmp_path / "output")
    assert result.success
    found = evaluations(result)
    duplicates = found["tweets:duplicate_generations"]
    assert not duplicates.passed and duplicates.severity == dg.AssetCheckSeverity.WARN
    assert duplicates.metadata["value"].value == 0.5 and duplicates.metadata["duplicates"].value == 5
    assert found["tweets:empty_generations"].passed and found["tweets:row_count"].passed
    assert found["topics:row_count"].passed and "topics:duplicate_generations" not in found

    # A wiped instance re-materializes from the finished folder, and the checks say the same.
    instance.wipe_assets([tweets.asset_key])
    calls = openai_server.request_count
    again = evaluations(run([tweets], instance, tmp_path / "output"))
    assert openai_server.request_count == calls
    assert not again["tweets:duplicate_generations"].passed
    assert again["tweets:duplicate_generations"].metadata["value"].value == 0.5


def test_a_blocking_check_stops_the_downstream_trainer(tmp_path, instance, openai_server):
    source = DataSource("Topics", {"text": HALF_DUPLICATED})
    tweets = ProcessWithPrompt(
        "Tweets",
        inputs={"inputs": source.output["text"]},
        args={"llm": llm(openai_server), "instruction": "Tweet."},
        checks={"duplicate_generations": {"error": 0.4, "blocking": True}},
    )
    trainer = TrainHFFineTune("Tweet Model", model_name="never/loaded").train(
        train_input=tweets.output["inputs"], train_output=tweets.output["generations"]
    )
    result = run([trainer], instance, tmp_path / "output")
    assert not result.success
    blocked = evaluations(result)["tweets:duplicate_generations"]
    assert not blocked.passed and blocked.severity == dg.AssetCheckSeverity.ERROR and blocked.blocking
    started = {
        event.step_key for event in result.all_events if event.event_type == dg.DagsterEventType.STEP_START
    }
    assert "tweets" in started and "tweet_model" not in started
    assert (tmp_path / "output" / "tweets" / "step.json").exists()  # its output is kept
    assert not (tmp_path / "output" / "tweet-model").exists()


def test_a_filter_that_keeps_nothing_fails_row_count_and_warns_kept_ratio(tmp_path, instance):
    source = DataSource("Numbers", {"n": [1, 2, 3, 4]})
    none = source.filter(lambda row: row["n"] > 10, name="None Kept", lazy=False)
    downstream = none.take(1, name="After None")
    result = run([downstream], instance, tmp_path / "output")
    found = evaluations(result)
    assert not found["none_kept:row_count"].passed
    assert found["none_kept:row_count"].severity == dg.AssetCheckSeverity.ERROR
    assert not found["none_kept:kept_ratio"].passed
    assert found["none_kept:kept_ratio"].metadata["removed"].value == 4
    # Not blocking by default: the step downstream ran (and found nothing either).
    assert result.success and not found["after_none:row_count"].passed

    blocked = (
        DataSource("Numbers", {"n": [1, 2, 3, 4]})
        .filter(lambda row: row["n"] > 10, name="None Kept", lazy=False)
        .configure(checks={"row_count": {"blocking": True}})
    )
    after = blocked.take(1, name="After Blocked")
    result = run([after], instance, tmp_path / "blocked")
    assert not result.success and "after_blocked:row_count" not in evaluations(result)
    assert not (tmp_path / "blocked" / "after-blocked").exists()


def test_a_lazy_filter_has_no_checks_and_its_consumer_checks_the_rows(tmp_path, instance):
    source = DataSource("Numbers", {"n": [1, 2, 3, 4]})
    lazy = source.filter(lambda row: row["n"] > 10, name="Lazy None")  # DataDreamer's default: lazy
    written = lazy.save(name="Saved None")
    result = run([written], instance, tmp_path / "output")
    found = evaluations(result)
    assert not [key for key in found if key.startswith("lazy_none:")]  # a recipe: no rows to check
    assert not found["saved_none:row_count"].passed  # the rows it streamed: none


def test_response_format_failures_and_thresholds_per_step(tmp_path, instance, openai_server):
    source = DataSource("Requests", {"text": ["one", "two [[badjson]]", "three", "four"]})
    schema = {"type": "object", "properties": {"title": {"type": "string"}}}
    loose = Prompt(
        "Loose",
        inputs={"prompts": source.output["text"]},
        args={"llm": llm(openai_server), "response_format": schema},
        checks={"empty_generations": False, "response_format_failures": CheckThresholds(warn=0.5)},
    )
    strict = Prompt(
        "Strict",
        inputs={"prompts": source.output["text"]},
        args={"llm": llm(openai_server), "response_format": schema},
        checks={"response_format_failures": {"error": 0.2}},
    )
    found = evaluations(run([loose, strict], instance, tmp_path / "output"))
    assert found["loose:response_format_failures"].passed  # 25 % is under its 50 %
    assert "loose:empty_generations" not in found
    failed = found["strict:response_format_failures"]
    assert not failed.passed and failed.severity == dg.AssetCheckSeverity.ERROR
    assert failed.metadata["failures"].value == 1
    unchecked = ProcessWithPrompt(
        "Unchecked",
        inputs={"inputs": source.output["text"]},
        args={"llm": llm(openai_server), "instruction": "x"},
        checks=False,
    )
    assert list(unchecked.asset.check_specs) == []


def test_checks_report_only_when_selected(tmp_path, instance, openai_server):
    source = DataSource("Topics", {"text": HALF_DUPLICATED})
    tweets = ProcessWithPrompt(
        "Tweets",
        inputs={"inputs": source.output["text"]},
        args={"llm": llm(openai_server), "instruction": "Tweet."},
    )
    materialize([source], instance, tmp_path / "output")
    result = run(
        [tweets],
        instance,
        tmp_path / "output",
        selection=dg.AssetSelection.assets(tweets.asset_key).without_checks(),
    )
    assert result.success and result.get_asset_check_evaluations() == []
    only_duplicates = dg.AssetSelection.assets(tweets.asset_key).without_checks() | dg.AssetSelection.checks(
        dg.AssetCheckKey(tweets.asset_key, "duplicate_generations")
    )
    result = run([tweets], instance, tmp_path / "output", selection=only_duplicates)
    assert [e.check_name for e in result.get_asset_check_evaluations()] == ["duplicate_generations"]
    # Only the check: evaluated on the finished output, with no materialization and no model call.
    calls = openai_server.request_count
    check_key = dg.AssetCheckKey(tweets.asset_key, "duplicate_generations")
    result = run([tweets], instance, tmp_path / "output", selection=dg.AssetSelection.checks(check_key))
    assert result.success and result.asset_materializations_for_node("tweets") == []
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.check_name == "duplicate_generations" and not evaluation.passed
    assert openai_server.request_count == calls


@pytest.mark.parametrize(
    ("table", "final", "passed", "severity"),
    [
        ([{"epoch": 1, "eval_loss": 2.0}, {"epoch": 2, "eval_loss": 1.5}], 1.5, True, None),
        (
            [{"epoch": 1, "eval_loss": 1.5}, {"epoch": 2, "eval_loss": 1.8}],
            1.8,
            False,
            dg.AssetCheckSeverity.WARN,
        ),
        ([{"epoch": 1, "eval_loss": 1.5}, {"epoch": 2, "eval_loss": math.nan}], math.nan, False, "ERROR"),
        ([], None, False, dg.AssetCheckSeverity.WARN),  # validation given, no eval loss recorded
    ],
)
def test_trainer_eval_loss_check(table, final, passed, severity):
    source = DataSource("Pairs", {"q": ["a", "b"], "a": ["c", "d"]})
    trainer = TrainHFFineTune("Tuned", model_name="never/loaded").train(
        train_input=source.output["q"],
        train_output=source.output["a"],
        validation_input=source.output["q"],
        validation_output=source.output["a"],
    )
    assert [spec.name for spec in trainer.asset.check_specs] == ["eval_loss"]
    record = {"metrics_table": table, "metrics": {} if final is None else {"eval_loss": final}}
    [result] = check_results(trainer, trainer.asset_key, record)
    assert result.passed is passed
    if severity == "ERROR":
        assert result.severity == dg.AssetCheckSeverity.ERROR
    elif severity is not None:
        assert result.severity == severity
    no_validation = TrainHFFineTune("Tuned Blind", model_name="never/loaded").train(
        train_input=source.output["q"], train_output=source.output["a"]
    )
    assert list(no_validation.asset.check_specs) == []


def test_empty_generations_are_counted_and_fail_over_the_threshold(tmp_path, instance, openai_server):
    # Refused answers are real None generations; a stop word that cuts the whole answer leaves "".
    texts = [f"topic {i}" + (" [[refuse]]" if i < 3 else "") for i in range(10)]
    source = DataSource("Topics", {"text": texts})
    some = ProcessWithPrompt(
        "Some Refused",
        inputs={"inputs": source.output["text"]},
        args={"llm": llm(openai_server), "instruction": "Tweet."},
    )
    cut = ProcessWithPrompt(
        "All Cut",
        inputs={"inputs": source.output["text"]},
        args={"llm": llm(openai_server), "instruction": "Tweet.", "stop": ["Echo"]},
        checks={"empty_generations": {"warn": None, "error": 0.9}},
    )
    found = evaluations(run([some, cut], instance, tmp_path / "output"))
    refused = found["some_refused:empty_generations"]
    assert refused.metadata["value"].value == pytest.approx(0.3)
    assert (refused.metadata["empty"].value, refused.metadata["generations"].value) == (3, 10)
    assert not refused.passed and refused.severity == dg.AssetCheckSeverity.WARN  # over 10 %, under 50 %
    emptied = found["all_cut:empty_generations"]
    assert emptied.metadata["value"].value == pytest.approx(1.0) and emptied.metadata["empty"].value == 10
    assert not emptied.passed and emptied.severity == dg.AssetCheckSeverity.ERROR
    # Empty answers are not duplicates of one another: only the seven real answers are compared.
    assert found["some_refused:duplicate_generations"].metadata["non_empty_generations"].value == 7
