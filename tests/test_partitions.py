"""Partitions users declare (``partitions_def=``, or from the translator): each partition
its own folder ``<step>/_partitions/<key>/`` with its own step.json, fingerprint and reuse;
the key in prompts and functions; downstream steps partition to partition or reading all
partitions; what is not supported refused at ``definitions()``."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import dagster as dg
import pytest

from dreamer_dagster import DreamerTranslator, Pipeline, dreamer_definitions
from dreamer_dagster.llms import OpenAI
from dreamer_dagster.output_folder import OutputFolder
from dreamer_dagster.partition_folders import partition_folder_name
from dreamer_dagster.steps import DataFromPrompt, DataSource, ProcessWithPrompt, StepDeclarationError
from dreamer_dagster.testing.http_messages import prompt_text
from dreamer_dagster.trainers import TrainHFFineTune
from tests.support.waiting import HANG_S

DAYS = ["2026-12-01", "2026-12-02"]
DAILY = dg.DailyPartitionsDefinition(start_date=DAYS[0], end_date="2026-12-03")


def declare(output, base_url: str, instruction: str = "Write a headline for {partition_key}.") -> dict:
    llm = OpenAI("fake-chat", base_url=base_url)
    with Pipeline(str(output)):
        news = DataFromPrompt(
            "News", args={"llm": llm, "n": 2, "instruction": instruction}, partitions_def=DAILY
        )
        tweets = ProcessWithPrompt(  # the same partitions: partition to partition
            "Tweets",
            inputs={"inputs": news.output["generations"]},
            args={"llm": llm, "instruction": "Tweet it."},
            partitions_def=DAILY,
        )
        digest = ProcessWithPrompt(  # no partitions: reads every partition, in key order
            "Digest",
            inputs={"inputs": news.output["generations"]},
            args={"llm": llm, "instruction": "Summarize."},
        )
    return {"news": news, "tweets": tweets, "digest": digest}


def materialize(steps, instance, output, partition=None, only=None):
    defs = dreamer_definitions(list(steps.values()), output_folder=str(output))
    selection = [step.asset_key for step in (only or steps.values())]
    return dg.materialize(
        list(defs.assets),
        instance=instance,
        resources=dict(defs.resources),
        selection=selection,
        partition_key=partition,
        raise_on_error=True,
    )


def partition_rows(output, step, key) -> tuple[dict, dict]:
    """The step.json and rows of partition ``key`` of ``step`` (a step or its folder name)."""
    folder = OutputFolder(output).step(getattr(step, "key", step)).partition(key)
    record = folder.step_json()
    assert record is not None, f"{folder.path} is not a finished partition"
    return record, folder.load_dataset(record).to_dict()


def reused(result, step) -> bool:
    events = result.asset_materializations_for_node(step.asset.node_def.name)
    return events[-1].metadata["dreamer/reused"].value


def test_daily_partitions_have_their_own_folders_answers_and_reuse(tmp_path, instance, openai_server):
    output = tmp_path / "output"
    steps = declare(output, openai_server.base_url)
    news, tweets, digest = steps["news"], steps["tweets"], steps["digest"]
    assert news.asset.partitions_def == DAILY and digest.asset.partitions_def is None
    partitioned = [news, tweets]

    first = materialize(steps, instance, output, DAYS[0], partitioned)
    assert reused(first, news) is False
    asked_first = [prompt_text(r["body"]) for r in openai_server.requests]
    assert [text.endswith(f"Write a headline for {DAYS[0]}.") for text in asked_first[:2]] == [True, True]
    count = openai_server.request_count
    second = materialize(steps, instance, output, DAYS[1], partitioned)
    assert reused(second, news) is False  # never the first day's folder
    asked_second = [prompt_text(r["body"]) for r in openai_server.requests[count:]]
    assert asked_second[0].endswith(f"Write a headline for {DAYS[1]}.")  # the key in the prompt
    assert not any(DAYS[0] in text for text in asked_second)

    records, data = {}, {}
    for day in DAYS:
        records[day], data[day] = partition_rows(output, news, day)
        assert (output / "news" / "_partitions" / day / "step.json").is_file()
    assert data[DAYS[0]]["generations"] != data[DAYS[1]]["generations"]  # distinct answers
    assert [records[d]["partition"] for d in DAYS] == [{"key": d} for d in DAYS]
    assert records[DAYS[0]]["fingerprint"] != records[DAYS[1]]["fingerprint"]
    assert {records[d]["step_fingerprint"] for d in DAYS} == {news.fingerprint}
    assert not (output / "news" / "step.json").exists()

    # Partition to partition: each day's tweets read that day's news only.
    for day in DAYS:
        _, tweet_rows = partition_rows(output, tweets, day)
        assert tweet_rows["inputs"] == data[day]["generations"]

    # Materializing the first day again reuses its folder: no model call.
    count = openai_server.request_count
    again = materialize(steps, instance, output, DAYS[0], partitioned)
    assert reused(again, news) is True and reused(again, tweets) is True
    assert openai_server.request_count == count

    # Reading all partitions: the unpartitioned digest reads both days, in key order.
    materialize(steps, instance, output, only=[digest])
    digest_folder = OutputFolder(output).step(digest.folder)
    record = digest_folder.step_json()
    assert record["partitions_read"] == {"news": DAYS}
    assert digest_folder.load_dataset(record).to_dict()["inputs"] == (
        data[DAYS[0]]["generations"] + data[DAYS[1]]["generations"]
    )
    count = openai_server.request_count
    result = materialize(steps, instance, output, only=[digest])
    assert reused(result, digest) is True and openai_server.request_count == count


def test_a_changed_step_backs_up_and_restores_each_partition(tmp_path, instance, openai_server):
    output = tmp_path / "output"
    first = declare(output, openai_server.base_url)
    materialize(first, instance, output, DAYS[0], [first["news"]])
    old = partition_rows(output, first["news"], DAYS[0])[0]["fingerprint"]
    changed = declare(output, openai_server.base_url, "Write a poem for {partition_key}.")
    materialize(changed, instance, output, DAYS[0], [changed["news"]])
    assert (output / "_backups" / "news" / "_partitions" / DAYS[0] / old / "step.json").is_file()
    count = openai_server.request_count
    reverted = declare(output, openai_server.base_url)
    result = materialize(reverted, instance, output, DAYS[0], [reverted["news"]])
    assert reused(result, reverted["news"]) is True and openai_server.request_count == count


def test_staleness_is_per_partition(tmp_path, instance, openai_server):
    from dagster._utils.test.data_versions import get_stale_status_resolver

    output = tmp_path / "output"

    def statuses(steps) -> dict:
        defs = dreamer_definitions(list(steps.values()), output_folder=str(output))
        resolver = get_stale_status_resolver(instance, list(defs.assets))
        return {
            (name, day): resolver.get_status(steps[name].asset_key, day).value
            for name in ("news", "tweets")
            for day in DAYS
        }

    steps = declare(output, openai_server.base_url)
    materialize(steps, instance, output, DAYS[0], [steps["news"], steps["tweets"]])
    assert statuses(steps) == {
        ("news", DAYS[0]): "FRESH",
        ("news", DAYS[1]): "MISSING",
        ("tweets", DAYS[0]): "FRESH",
        ("tweets", DAYS[1]): "MISSING",
    }
    changed = declare(output, openai_server.base_url, "Write a poem for {partition_key}.")
    assert statuses(changed)[("news", DAYS[0])] == "STALE"  # a new code version (fingerprint)
    materialize(changed, instance, output, DAYS[0], [changed["news"]])
    assert statuses(changed) == {
        ("news", DAYS[0]): "FRESH",
        ("news", DAYS[1]): "MISSING",
        ("tweets", DAYS[0]): "STALE",  # its day's input has a new data version
        ("tweets", DAYS[1]): "MISSING",
    }


def test_the_key_reaches_functions_and_static_keys_are_folder_safe(tmp_path, instance):
    output = tmp_path / "output"

    def rows(partition_key):
        yield {"text": f"about {partition_key}"}

    def tag(row, partition_key):
        return {"text": f"{row['text']} [{partition_key}]"}

    keys = dg.StaticPartitionsDefinition(["en", "Fr/../x"])
    with Pipeline(str(output)):
        source = DataSource("Texts", rows, partitions_def=keys)
        tagged = source.map(tag, name="Tagged", partitions_def=keys)
    for key in keys.get_partition_keys():
        materialize({"source": source, "tagged": tagged}, instance, output, key)
    folders = sorted(p.name for p in (output / "texts" / "_partitions").iterdir())
    assert folders == sorted(partition_folder_name(k) for k in keys.get_partition_keys())
    assert "Fr" not in "".join(folders) and ".." not in "".join(folders)
    assert partition_rows(output, source, "Fr/../x")[1] == {"text": ["about Fr/../x"]}
    assert partition_rows(output, tagged, "en")[1] == {"text": ["about en [en]"]}


def test_a_new_dynamic_partition_makes_a_step_reading_all_of_them_run_again(tmp_path, instance):
    output = tmp_path / "output"
    topics = dg.DynamicPartitionsDefinition(name="topics")

    def rows(partition_key):
        yield {"text": f"about {partition_key}"}

    with Pipeline(str(output)):
        source = DataSource("Topics", rows, partitions_def=topics)
        every = source.select_columns(["text"], name="Every topic")  # reads every partition
    steps = {"source": source, "every": every}
    instance.add_dynamic_partitions("topics", ["cats", "dogs"])
    for key in ("cats", "dogs"):
        materialize(steps, instance, output, key, [source])
    materialize(steps, instance, output, only=[every])
    folder = OutputFolder(output).step(every.folder)
    assert folder.load_dataset().to_dict()["text"] == ["about cats", "about dogs"]

    instance.add_dynamic_partitions("topics", ["owls"])  # a new key: the step's fingerprint is the same
    materialize(steps, instance, output, "owls", [source])
    result = materialize(steps, instance, output, only=[every])
    assert reused(result, every) is False  # never the two-topic output, reused as if complete
    assert folder.load_dataset().to_dict()["text"] == ["about cats", "about dogs", "about owls"]
    assert folder.step_json()["partitions_read"] == {"topics": ["cats", "dogs", "owls"]}


def test_a_pipeline_mixing_shards_and_partitions_loads_with_its_job_and_schedule(tmp_path):
    llm = OpenAI("m", base_url="http://127.0.0.1:9/v1")
    with Pipeline(str(tmp_path), run=False) as pipeline:
        DataFromPrompt("Sharded", args={"llm": llm, "n": 4, "instruction": "x"}, shards=2)
        daily = DataFromPrompt(
            "Daily", args={"llm": llm, "n": 1, "instruction": "{partition_key}"}, partitions_def=DAILY
        )
        languages = dg.StaticPartitionsDefinition(["en", "fr"])
        DataFromPrompt(
            "Language", args={"llm": llm, "n": 1, "instruction": "{partition_key}"}, partitions_def=languages
        )
        ProcessWithPrompt(
            "Digest", inputs={"inputs": daily.output["generations"]}, args={"llm": llm, "instruction": "y"}
        )
    defs = pipeline.definitions(schedule="0 3 * * *")
    dg.Definitions.validate_loadable(defs)
    job = defs.resolve_job_def("dreamer_pipeline")  # partitioned steps run by partition, in backfills
    assert sorted(key.to_user_string() for key in job.asset_layer.selected_asset_keys) == [
        "digest",
        "sharded",
    ]


def test_a_script_run_refuses_a_partitioned_step_with_the_fix(tmp_path, script_home):
    refused = pytest.raises(
        RuntimeError, match=r"'Days' is partitioned.*Fix: .*--select days --partition <key>"
    )
    with refused, Pipeline(str(tmp_path / "output"), run=True):
        DataSource("Days", {"text": ["a"]}, partitions_def=DAILY)
    assert not (tmp_path / "output" / "days").exists()


def test_partition_folder_names_are_plain_or_hashed_and_never_collide():
    assert partition_folder_name("2026-12-01") == "2026-12-01"
    assert partition_folder_name("en") == "en"
    odd = ["../etc", "A", "a b", "2026-12-01-05:00", "_x", ".hidden", "x" * 300, "日本"]
    names = [partition_folder_name(key) for key in odd]
    assert all(name.startswith("_") and "/" not in name and len(name) <= 60 for name in names)
    assert len(set(names)) == len(odd) and partition_folder_name("A") != "a"


def test_unsupported_partitions_are_refused_at_definitions(tmp_path):
    class DailyTranslator(DreamerTranslator):
        def get_asset_spec(self, step):
            return super().get_asset_spec(step).replace_attributes(partitions_def=DAILY)

    with Pipeline(str(tmp_path)):
        source = DataSource("Texts", {"text": ["a", "b"]})
        trainer = TrainHFFineTune("Tune", model_name="sshleifer/tiny-gpt2").train(
            train_input=source.output["text"], train_output=source.output["text"], epochs=1
        )
    with pytest.raises(StepDeclarationError) as error:
        dreamer_definitions([trainer], output_folder=str(tmp_path), translator=DailyTranslator())
    message = str(error.value)
    assert "'Tune'" in message and "'partitions_def'" in message and "translator" in message
    assert "Fix: partition the steps that make its data" in message
    with pytest.raises(StepDeclarationError, match="cannot be partitioned"):
        TrainHFFineTune("Tune 2", model_name="m", partitions_def=DAILY)

    with Pipeline(str(tmp_path)):
        source = DataSource("Texts", {"text": ["a", "b"]})
        with pytest.raises(StepDeclarationError, match="shards= and partitions cannot be combined"):
            ProcessWithPrompt(
                "Both",
                inputs={"inputs": source.output["text"]},
                args={"llm": OpenAI("m", base_url="http://127.0.0.1:9/v1"), "instruction": "x"},
                shards=2,
                partitions_def=DAILY,
            )
        with pytest.raises(StepDeclarationError, match="must be a Dagster partitions definition"):
            DataSource("Named", {"text": ["a"]}, partitions_def="daily")
        monthly = DataSource(
            "Monthly", {"text": ["a"]}, partitions_def=dg.MonthlyPartitionsDefinition(start_date="2026-01-01")
        )
        daily = monthly.select_columns(["text"], name="Daily view", partitions_def=DAILY)
        every_month = monthly.select_columns(["text"], name="Every month")
        unfilled = DataFromPrompt(
            "Unfilled",
            args={
                "llm": OpenAI("m", base_url="http://127.0.0.1:9/v1"),
                "n": 1,
                "instruction": "{partition_key}",
            },
        )
    with pytest.raises(StepDeclarationError, match="'Daily view'.*'partition_mapping'.*Fix: give both"):
        dreamer_definitions([daily], output_folder=str(tmp_path))
    with pytest.raises(
        StepDeclarationError, match=r"'Unfilled'.*\{partition_key\}.*Fix: give partitions_def="
    ):
        dreamer_definitions([unfilled], output_folder=str(tmp_path))
    defs = dreamer_definitions([every_month], output_folder=str(tmp_path))  # reads every month
    assert defs.resolve_assets_def(every_month.asset_key).partitions_def is None


def test_cli_materializes_one_partition(tmp_path, openai_server_process):
    output = tmp_path / "output"
    home = tmp_path / "home"
    home.mkdir()
    script = tmp_path / "defs.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import dagster as dg
            from dreamer_dagster import Pipeline
            from dreamer_dagster.llms import OpenAI
            from dreamer_dagster.steps import DataFromPrompt

            with Pipeline({str(output)!r}) as pipeline:
                DataFromPrompt(
                    "News",
                    args={{"llm": OpenAI("fake-chat", base_url={openai_server_process!r}), "n": 1,
                          "instruction": "Headline for {{partition_key}}."}},
                    partitions_def=dg.DailyPartitionsDefinition(start_date="2026-12-01", end_date="2026-12-03"),
                )
            defs = pipeline.definitions()
            """
        )
    )
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    for day in DAYS:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "dagster",
                "asset",
                "materialize",
                "-f",
                str(script),
                "--select",
                "news",
                "--partition",
                day,
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=HANG_S,
        )
        assert done.returncode == 0, done.stderr[-3000:]
    answers = [partition_rows(output, "news", day)[1]["generations"][0] for day in DAYS]
    assert [day in answer for day, answer in zip(DAYS, answers, strict=True)] == [True, True]
