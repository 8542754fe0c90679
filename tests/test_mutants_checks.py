"""Each asset check's measure, thresholds (at and past each boundary), severity, metadata and
description, from a step's record, without a Dagster run; ``checks=`` validation messages; the
generation counter. Written to kill the mutants ``make mutants`` found alive in ``checks.py``
(see docs/mutants.md)."""

from __future__ import annotations

import math
from decimal import Decimal

import dagster as dg
import pytest

from dreamer_dagster.checks import (
    CheckThresholds,
    GenerationCounter,
    applicable_checks,
    build_check_specs,
    check_results,
    generation_columns,
    generation_counts,
    normalize_checks,
)
from dreamer_dagster.llms import OpenAI
from dreamer_dagster.steps import DataSource, ProcessWithPrompt, Prompt
from dreamer_dagster.trainers import TrainHFFineTune

WARN, ERROR = dg.AssetCheckSeverity.WARN, dg.AssetCheckSeverity.ERROR
LLM = OpenAI("fake-chat", base_url="http://127.0.0.1:9/v1")
SOURCE = DataSource("Topics", {"text": ["a", "b"]})


def prompt_step(**settings) -> ProcessWithPrompt:
    return ProcessWithPrompt(
        "Tweets",
        inputs={"inputs": SOURCE.output["text"]},
        args={"llm": LLM, "instruction": "Tweet."},
        outputs={"generations": "tweets"},
        **settings,
    )


def trainer(validation: bool = True):
    pairs = {"train_input": SOURCE.output["text"], "train_output": SOURCE.output["text"]}
    if validation:
        pairs.update(validation_input=SOURCE.output["text"], validation_output=SOURCE.output["text"])
    return TrainHFFineTune("Tuned", model_name="never/loaded").train(**pairs)


def results(step, record, selected=None) -> dict[str, dg.AssetCheckResult]:
    return {r.check_name: r for r in check_results(step, step.asset_key, record, selected)}


def metadata(result: dg.AssetCheckResult) -> dict:
    return {key: value.value for key, value in result.metadata.items()}


def verdict(result: dg.AssetCheckResult):
    return (result.passed, result.severity)


PASSED = (True, WARN)  # a passing result carries WARN as its (unused) severity


# -- what each check measures ------------------------------------------------------------------


def test_generation_checks_measure_shares_of_the_generations():
    record = {
        "num_rows": 10,
        "stats": {"generations": 10, "empty_generations": 2, "duplicate_generations": 2},
    }
    found = results(prompt_step(), record)
    assert set(found) == {"row_count", "empty_generations", "duplicate_generations"}
    assert all(r.asset_key == prompt_step().asset_key for r in found.values())
    assert metadata(found["row_count"]) == {"value": 10.0, "rows": 10, "warn": "none", "error": "1 rows"}
    assert metadata(found["empty_generations"]) == {
        "value": 0.2,
        "generations": 10,
        "empty": 2,
        "warn": "10 %",
        "error": "50 %",
    }
    assert verdict(found["empty_generations"]) == (False, WARN)  # over 10 %, under 50 %
    # Duplicates are counted among the non-empty generations: 2 of 8.
    assert metadata(found["duplicate_generations"]) == {
        "value": 0.25,
        "non_empty_generations": 8,
        "duplicates": 2,
        "warn": "20 %",
        "error": "50 %",
    }
    assert verdict(found["duplicate_generations"]) == (False, WARN)
    assert verdict(found["row_count"]) == PASSED


def test_a_record_without_stats_measures_nothing_wrong():
    found = results(prompt_step(), {"num_rows": 3, "stats": None})
    assert metadata(found["empty_generations"]) == {
        "value": 0.0,
        "generations": 0,
        "empty": 0,
        "warn": "10 %",
        "error": "50 %",
    }
    assert metadata(found["duplicate_generations"]) == {
        "value": 0.0,
        "non_empty_generations": 0,
        "duplicates": 0,
        "warn": "20 %",
        "error": "50 %",
    }
    assert all(r.passed for r in found.values())
    # Each count a record leaves out counts as none.
    only_total = results(prompt_step(), {"num_rows": 4, "stats": {"generations": 4}})
    assert metadata(only_total["empty_generations"])["empty"] == 0
    assert metadata(only_total["empty_generations"])["value"] == 0.0
    assert metadata(only_total["duplicate_generations"])["duplicates"] == 0
    assert metadata(only_total["duplicate_generations"])["value"] == 0.0
    empty = results(prompt_step(), {})
    assert verdict(empty["row_count"]) == (False, ERROR) and metadata(empty["row_count"])["rows"] == 0


@pytest.mark.parametrize(
    ("stats", "share", "outcome"),
    [
        ({"generations": 10, "empty_generations": 1}, 0.1, PASSED),  # at the warn threshold
        ({"generations": 10, "empty_generations": 5}, 0.5, (False, WARN)),  # at the error threshold
        ({"generations": 10, "empty_generations": 6}, 0.6, (False, ERROR)),
        ({"empty_generations": 0}, 0.0, PASSED),  # no generations counted
    ],
)
def test_empty_generations_thresholds(stats, share, outcome):
    found = results(prompt_step(), {"num_rows": 10, "stats": stats})["empty_generations"]
    assert metadata(found)["value"] == pytest.approx(share) and verdict(found) == outcome


@pytest.mark.parametrize(
    ("stats", "share", "outcome"),
    [
        ({"generations": 12, "empty_generations": 2, "duplicate_generations": 2}, 0.2, PASSED),
        ({"generations": 12, "empty_generations": 2, "duplicate_generations": 5}, 0.5, (False, WARN)),
        ({"generations": 12, "empty_generations": 2, "duplicate_generations": 6}, 0.6, (False, ERROR)),
        ({"generations": 4, "duplicate_generations": 1}, 0.25, (False, WARN)),  # no empty ones counted
    ],
)
def test_duplicate_generations_thresholds(stats, share, outcome):
    found = results(prompt_step(), {"num_rows": 12, "stats": stats})["duplicate_generations"]
    assert metadata(found)["value"] == pytest.approx(share) and verdict(found) == outcome


def test_response_format_failures_per_row():
    step = Prompt(
        "Titles",
        inputs={"prompts": SOURCE.output["text"]},
        args={"llm": LLM, "response_format": {"type": "object"}},
    )
    assert "response_format_failures" in {spec.name for spec in step.asset.check_specs}
    found = results(step, {"num_rows": 20, "stats": {"response_format_failures": 1}})
    assert metadata(found["response_format_failures"]) == {
        "value": 0.05,
        "rows": 20,
        "failures": 1,
        "warn": "5 %",
        "error": "50 %",
    }
    assert verdict(found["response_format_failures"]) == PASSED  # at 5 %
    over = results(step, {"num_rows": 20, "stats": {"response_format_failures": 2}})
    assert verdict(over["response_format_failures"]) == (False, WARN)
    none = results(step, {"num_rows": None, "stats": {}})["response_format_failures"]
    assert metadata(none)["value"] == 0.0 and metadata(none)["rows"] == 0
    uncounted = results(step, {"num_rows": 4, "stats": {}})["response_format_failures"]
    assert metadata(uncounted) == {"value": 0.0, "rows": 4, "failures": 0, "warn": "5 %", "error": "50 %"}
    assert "response_format_failures" not in results(prompt_step(), {"num_rows": 1})


def test_kept_ratio_of_a_filter():
    kept = SOURCE.filter(lambda row: True, name="Kept", lazy=False)
    found = results(kept, {"num_rows": 1, "stats": {"rows_kept": 1, "rows_removed": 19}})
    assert metadata(found["kept_ratio"]) == {
        "value": 0.05,
        "kept": 1,
        "removed": 19,
        "warn": "5 %",
        "error": "none",
    }
    assert verdict(found["kept_ratio"]) == PASSED  # at 5 %: not below it
    none_kept = results(kept, {"num_rows": 0, "stats": {"rows_kept": 0, "rows_removed": 4}})
    assert (
        verdict(none_kept["kept_ratio"]) == (False, WARN)
        and metadata(none_kept["kept_ratio"])["value"] == 0.0
    )
    assert verdict(none_kept["row_count"]) == (False, ERROR)
    nothing = results(kept, {"num_rows": 0, "stats": {}})["kept_ratio"]
    assert metadata(nothing)["value"] == 1.0 and nothing.passed  # no input rows: nothing was removed
    only_removed = results(kept, {"num_rows": 0, "stats": {"rows_removed": 2}})["kept_ratio"]
    assert metadata(only_removed) == {"value": 0.0, "kept": 0, "removed": 2, "warn": "5 %", "error": "none"}
    half = results(kept, {"num_rows": 2, "stats": {"rows_kept": 2, "rows_removed": 2}})["kept_ratio"]
    assert metadata(half)["value"] == 0.5
    only_kept = results(kept, {"num_rows": 2, "stats": {"rows_kept": 2}})["kept_ratio"]
    assert metadata(only_kept)["value"] == 1.0 and metadata(only_kept)["removed"] == 0
    assert "kept_ratio" not in results(SOURCE, {"num_rows": 2})


@pytest.mark.parametrize(
    ("table", "final", "value", "extra", "outcome"),
    [
        # the final loss appended when the table lacks it
        ([{"eval_loss": 2.0}], 1.0, 0.0, {"eval_loss": 1.0, "epochs": 2, "previous_eval_loss": 2.0}, PASSED),
        (
            [{"eval_loss": 2.0}, {"eval_loss": 3.0}],
            3.0,
            0.5,
            {"eval_loss": 3.0, "epochs": 2, "previous_eval_loss": 2.0},
            (False, WARN),
        ),
        (
            [{"eval_loss": 1.0}, {"epoch": 2}, {"eval_loss": 1.0}],
            None,
            0.0,
            {"eval_loss": 1.0, "epochs": 2, "previous_eval_loss": 1.0},
            PASSED,
        ),
        (
            [{"eval_loss": 4.0}, {"eval_loss": 2.0}, {"eval_loss": 3.0}],
            None,
            0.5,
            {"eval_loss": 3.0, "epochs": 3, "previous_eval_loss": 2.0},
            (False, WARN),
        ),
        (
            [{"eval_loss": -2.0}, {"eval_loss": -1.0}],
            None,
            0.5,
            {"eval_loss": -1.0, "epochs": 2, "previous_eval_loss": -2.0},
            (False, WARN),
        ),
        (
            [{"eval_loss": 0.0}, {"eval_loss": 0.5}],
            None,
            math.inf,
            {"eval_loss": 0.5, "epochs": 2, "previous_eval_loss": 0.0},
            (False, ERROR),
        ),
        (
            [{"eval_loss": 0.0}, {"eval_loss": 0.0}],
            None,
            0.0,
            {"eval_loss": 0.0, "epochs": 2, "previous_eval_loss": 0.0},
            PASSED,
        ),
        (
            [{"eval_loss": 0.0}, {"eval_loss": -0.5}],
            None,
            0.0,
            {"eval_loss": -0.5, "epochs": 2, "previous_eval_loss": 0.0},
            PASSED,
        ),
        ([], 1.5, 0.0, {"eval_loss": 1.5, "epochs": 1}, PASSED),  # one loss: nothing to compare
        (
            [{"eval_loss": 1.0}, {"eval_loss": 2.0}],
            1.0,
            0.0,
            {"eval_loss": 1.0, "epochs": 3, "previous_eval_loss": 2.0},
            PASSED,
        ),
        (
            [{"eval_loss": 1.0}, {"eval_loss": "nan?"}],
            None,
            math.inf,
            {"eval_loss": "nan?", "epochs": 2, "reason": "an eval loss is not finite"},
            (False, ERROR),
        ),
        (
            [{"eval_loss": math.inf}],
            None,
            math.inf,
            {"eval_loss": "inf", "epochs": 1, "reason": "an eval loss is not finite"},
            (False, ERROR),
        ),
    ],
)
def test_eval_loss_rise_over_the_epoch_before(table, final, value, extra, outcome):
    record = {"metrics_table": table, "metrics": {} if final is None else {"eval_loss": final}}
    found = results(trainer(), record)["eval_loss"]
    expected_value = "inf" if value == math.inf else value
    assert metadata(found) == {"value": expected_value, **extra, "warn": "0 %", "error": "none"}
    assert verdict(found) == outcome


def test_a_trainer_not_yet_given_its_data_has_no_checks():
    untrained = TrainHFFineTune("Untrained", model_name="never/loaded")
    assert applicable_checks(untrained) == []


def test_eval_loss_with_nothing_recorded_warns():
    found = results(trainer(), {"metrics": None})["eval_loss"]
    assert metadata(found) == {"reason": "no eval_loss was recorded", "warn": "0 %", "error": "none"}
    assert verdict(found) == (False, WARN)
    assert list(build_check_specs(trainer(validation=False), trainer().asset_key)) == []


# -- thresholds and settings ----------------------------------------------------------------


def test_step_thresholds_replace_the_defaults_and_can_turn_checks_off():
    record = {"num_rows": 10, "stats": {"generations": 10, "empty_generations": 3}}
    strict = prompt_step(checks={"empty_generations": {"error": 0.25}, "duplicate_generations": False})
    found = results(strict, record)
    assert set(found) == {"row_count", "empty_generations"}
    assert verdict(found["empty_generations"]) == (False, ERROR)
    assert metadata(found["empty_generations"])["warn"] == "10 %"  # kept from the default
    loose = prompt_step(checks={"empty_generations": CheckThresholds(warn=0.5)})
    assert verdict(results(loose, record)["empty_generations"]) == PASSED
    kept = prompt_step(checks={"empty_generations": True})
    assert verdict(results(kept, record)["empty_generations"]) == (False, WARN)
    assert results(prompt_step(checks=False), record) == {}
    # Report only: no threshold, never failing.
    report = prompt_step(checks={"row_count": {"error": None}})
    assert verdict(results(report, {"num_rows": 0})["row_count"]) == PASSED


def test_only_the_selected_checks_of_this_asset_are_evaluated():
    step = prompt_step()
    record = {"num_rows": 1, "stats": {}}
    selected = [
        dg.AssetCheckKey(step.asset_key, "row_count"),
        dg.AssetCheckKey(SOURCE.asset_key, "empty_generations"),
    ]
    assert list(results(step, record, selected)) == ["row_count"]
    assert results(step, record, []) == {}
    assert list(results(step, record)) == ["row_count", "empty_generations", "duplicate_generations"]


def test_check_specs_describe_their_thresholds():
    step = prompt_step(checks={"duplicate_generations": {"warn": None, "error": 0.3, "blocking": True}})
    specs = {spec.name: spec for spec in build_check_specs(step, step.asset_key)}
    assert [spec.asset_key for spec in specs.values()] == [step.asset_key] * 3
    assert specs["row_count"].description == (
        "The step produced rows (fails below the thresholds; no rows is an error). (error below 1 rows)."
    )
    assert specs["empty_generations"].description == (
        "Share of empty or None generations. (warn above 10 %; error above 50 %)."
    )
    assert specs["duplicate_generations"].description == (
        "Share of generations that exactly repeat an earlier one. (error above 30 %; blocking)."
    )
    assert specs["duplicate_generations"].blocking and not specs["row_count"].blocking
    quiet = prompt_step(checks={"row_count": {"error": None}})
    assert build_check_specs(quiet, quiet.asset_key)[0].description.endswith("(reports only).")
    assert [spec.name for spec in build_check_specs(SOURCE, SOURCE.asset_key)] == ["row_count"]


def test_normalize_checks_says_what_is_wrong():
    assert normalize_checks(False) is False
    assert normalize_checks({}) == {}
    assert normalize_checks({"row_count": False, "kept_ratio": True}) == {
        "row_count": False,
        "kept_ratio": True,
    }
    assert normalize_checks(
        {"empty_generations": {"warn": 0.2}, "row_count": CheckThresholds(error=2, blocking=True)}
    ) == {
        "empty_generations": CheckThresholds(warn=0.2, error=0.5),
        "row_count": CheckThresholds(warn=None, error=2, blocking=True),
    }
    cases = [
        (
            True,
            TypeError,
            "must be a dict of check name -> thresholds (such as {'duplicate_generations': "
            "{'warn': 0.1, 'error': 0.3}}) or False for no checks, got True.",
        ),
        (
            {"nope": {}},
            ValueError,
            "unknown check 'nope'; the checks are ['duplicate_generations', 'empty_generations', "
            "'eval_loss', 'kept_ratio', 'response_format_failures', 'row_count'].",
        ),
        (
            {"row_count": 3},
            TypeError,
            "check 'row_count': give a dict such as {'warn': 0.1, 'error': 0.3, 'blocking': True}, "
            "True, or False; got 3.",
        ),
        (
            {"row_count": {"warn": 1, "errors": 2, "blocked": 1}},
            ValueError,
            "check 'row_count': unknown keys ['blocked', 'errors']; use 'warn', 'error', 'blocking'.",
        ),
        (
            {"row_count": {"warn": "1"}},
            TypeError,
            "check 'row_count': 'warn' must be a number or None, got '1'.",
        ),
        (
            {"row_count": {"error": True}},
            TypeError,
            "check 'row_count': 'error' must be a number or None, got True.",
        ),
        ({"row_count": {"blocking": 1}}, TypeError, "check 'row_count': 'blocking' must be True or False."),
    ]
    for value, error, message in cases:
        with pytest.raises(error) as raised:
            normalize_checks(value)
        assert str(raised.value) == message
    # Each key is accepted on its own.
    for key, setting in (("warn", 0.5), ("error", 2), ("blocking", True)):
        assert getattr(normalize_checks({"row_count": {key: setting}})["row_count"], key) == setting
    assert normalize_checks({"row_count": {"warn": None, "error": 1.5}})["row_count"].error == 1.5


# -- counting generations -------------------------------------------------------------------


def test_generation_columns_follow_the_renamed_output():
    assert generation_columns(prompt_step()) == ["tweets"]
    plain = ProcessWithPrompt(
        "Plain", inputs={"inputs": SOURCE.output["text"]}, args={"llm": LLM, "instruction": "x"}
    )
    assert generation_columns(plain) == ["generations"]
    assert generation_columns(SOURCE) == []


def test_the_generation_counter_counts_rows_tables_lists_and_duplicates():
    import pyarrow as pa

    counter = GenerationCounter(["g", "h"])
    assert counter.counts() == {}  # nothing seen: nothing to report
    counter.add({"other": "x"})
    assert counter.counts() == {}
    counter.add({"g": "same", "other": 1})
    counter.add({"g": "same"})
    counter.add({"g": None})
    counter.add({"g": "  "})
    counter.add({"g": ["a", "a", ""]})  # each generation of an n > 1 list counts once
    counter.add({"g": {"k": 1, "j": 2}, "h": "same"})  # a structured answer, compared as JSON
    counter.add({"g": {"j": 2, "k": 1}})  # the same answer: key order does not matter
    counter.add({"g": {"k": 2}})  # another answer
    counter.add({"g": Decimal("1.5")})
    counter.add({"g": Decimal("1.5")})  # not plain JSON: compared by its text
    counter.add({"h": "solo"})  # a row without the first column still counts the second
    counter.add(pa.table({"h": ["t", "t"], "x": [1, 2]}))
    counter.add(pa.table({"x": [1]}))
    assert counter.counts() == {"generations": 16, "empty_generations": 3, "duplicate_generations": 6}
    assert GenerationCounter(["g"]).columns == ["g"]
    fresh = GenerationCounter(["g"])
    fresh.add({"g": "x"})
    assert fresh.counts() == {"generations": 1, "empty_generations": 0, "duplicate_generations": 0}


def test_generation_counts_over_a_dataset_in_batches():
    import datasets

    rows = datasets.Dataset.from_dict({"g": ["a", "b", "a", "", "a"], "other": [1, 2, 3, 4, 5]})
    expected = {"generations": 5, "empty_generations": 1, "duplicate_generations": 2}
    assert generation_counts(rows, ["g", "missing"], batch_size=2) == expected
    assert generation_counts(rows, ["g"]) == expected
    assert generation_counts(rows, ["missing"]) == {}
    lists = datasets.Dataset.from_dict({"g": [["a", "a"], ["b"], ["a"]]})  # n > 1: each counts once
    assert generation_counts(lists, ["g"]) == {
        "generations": 4,
        "empty_generations": 0,
        "duplicate_generations": 2,
    }
