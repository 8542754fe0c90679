"""Sharded steps (``shards=N``): each shard a Dagster partition writing ``<step>/_shards/<k>/``,
the merge reading them in order as one dataset, the model cache keyed as one unsharded run
(a repeated prompt keeps its occurrence across shards), and the clear errors."""

from __future__ import annotations

import dagster as dg
import pytest

from dreamer_dagster import Pipeline, dreamer_definitions
from dreamer_dagster.llms import OpenAI
from dreamer_dagster.output_folder import OutputFolder
from dreamer_dagster.steps import DataFromPrompt, DataSource, ProcessWithPrompt, StepDeclarationError
from dreamer_dagster.steps.shards import shard_fingerprint, shards_asset_key
from tests.support.foundation import rows, step_json
from tests.support.openai_server import FakeRequest, FakeResponse

TEXTS = ["a", "b", "a", "c", "a", "d", "b", "e", "f", "a"]  # repeats across shard borders


def declare(output, base_url: str, shards: int | None, **options) -> dict:
    llm = OpenAI("fake-chat", base_url=base_url)
    sharding = {"shards": shards} if shards else {}
    with Pipeline(str(output)):
        source = DataSource("Texts", {"text": TEXTS})
        gen = ProcessWithPrompt(
            "Gen",
            inputs={"inputs": source.output["text"]},
            args={"llm": llm, "instruction": "Say it.", "temperature": 1.0},
            **sharding,
            **options,
        )
        made = DataFromPrompt("Made", args={"llm": llm, "instruction": "Invent.", "n": 7}, **sharding)
        after = gen.take(5, name="After")
    return {"source": source, "gen": gen, "made": made, "after": after}


def materialize(steps: dict, instance, output, partition: str | None = None, select=None):
    defs = dreamer_definitions(list(steps.values()), output_folder=str(output))
    return dg.materialize(
        list(defs.assets),
        instance=instance,
        resources=dict(defs.resources),
        selection=select,
        partition_key=partition,
        raise_on_error=True,
    )


def test_shards_answer_as_one_unsharded_run_and_merge_in_order(tmp_path, instance, openai_server):
    output = tmp_path / "output"
    plain = declare(output, openai_server.base_url, None)
    materialize(plain, instance, output)
    expected = {name: rows(output, plain[name]) for name in ("gen", "made", "after")}
    calls = openai_server.request_count
    assert calls == len(TEXTS) + 7

    sharded = declare(output, openai_server.base_url, 3)
    assert sharded["gen"].fingerprint == plain["gen"].fingerprint  # the output's identity
    gen_key, made_key = sharded["gen"].asset_key, sharded["made"].asset_key
    assert sharded["gen"].asset.code_versions_by_key[gen_key] != plain["gen"].fingerprint
    shards_key = shards_asset_key(gen_key)
    assert sharded["gen"].shards_asset.key == shards_key
    assert sharded["gen"].shards_asset.partitions_def.get_partition_keys() == ["0", "1", "2"]

    for key in ["2", "0", "1"]:  # any order, each its own run
        materialize(sharded, instance, output, key, [shards_key, shards_asset_key(made_key)])
    # Every repeat of "a" kept its occurrence over all shards: every answer came from the cache.
    assert openai_server.request_count == calls
    folder = OutputFolder(output).step("gen")
    records = [folder.shard(key).step_json() for key in ("0", "1", "2")]
    assert [r["shard"] for r in records] == [
        {"key": "0", "count": 3, "start": 0, "stop": 3},
        {"key": "1", "count": 3, "start": 3, "stop": 6},
        {"key": "2", "count": 3, "start": 6, "stop": 10},
    ]
    assert [r["fingerprint"] for r in records] == [shard_fingerprint(sharded["gen"], k) for k in "012"]
    assert sum(r["num_rows"] for r in records) == len(TEXTS)

    result = materialize(sharded, instance, output, select=[gen_key, made_key, sharded["after"].asset_key])
    assert result.success
    for name in ("gen", "made", "after"):
        assert rows(output, sharded[name]) == expected[name]
    record = step_json(output, sharded["gen"])
    assert record["fingerprint"] == sharded["gen"].fingerprint
    assert [s["key"] for s in record["shards"]] == ["0", "1", "2"]
    assert record["stats"]["cache_hits"] == len(TEXTS)
    assert openai_server.request_count == calls

    # A shard made again with the same rows leaves the merge as it is (same data version)...
    forced = declare(output, openai_server.base_url, 3, force=True)
    materialize(forced, instance, output, "1", [shards_key])
    assert folder.shard("1").step_json()["datetime"] != records[1]["datetime"]
    again = materialize(sharded, instance, output, select=[gen_key])
    [event] = again.asset_materializations_for_node(gen_key.to_python_identifier())
    assert event.metadata["dreamer/reused"].value is True
    # ...a shard whose output changed makes it merge again.
    changed = {**folder.shard("1").step_json(), "data_version": "c4a0ed0000000001"}
    folder.files.write_json(folder.shard("1").step_json_path, changed)
    again = materialize(sharded, instance, output, select=[gen_key])
    [event] = again.asset_materializations_for_node(gen_key.to_python_identifier())
    assert event.metadata["dreamer/reused"].value is False
    assert step_json(output, sharded["gen"])["shards"][1]["data_version"] == "c4a0ed0000000001"
    assert rows(output, sharded["gen"]) == expected["gen"]


def test_a_changed_shard_set_or_a_changed_shard_marks_the_merge_unsynced(tmp_path, instance, openai_server):
    from dagster._utils.test.data_versions import get_stale_status_resolver

    output = tmp_path / "output"

    def merge_status(steps: dict) -> str:
        defs = dreamer_definitions(list(steps.values()), output_folder=str(output))
        resolver = get_stale_status_resolver(instance, list(defs.assets))
        return resolver.get_status(steps["gen"].asset_key).value

    two = declare(output, openai_server.base_url, 2)
    gen_key = two["gen"].asset_key
    materialize(two, instance, output, select=[two["source"].asset_key])
    for key in ("0", "1"):
        materialize(two, instance, output, key, [shards_asset_key(gen_key)])
    materialize(two, instance, output, select=[gen_key])
    assert merge_status(two) == "FRESH"
    assert merge_status(declare(output, openai_server.base_url, 3)) == "STALE"  # another shard set

    # Shard 1 made again with other answers (no cache, another server answer): a new data version.
    def answer(request: FakeRequest) -> FakeResponse:
        text = "Changed: " + request.body["messages"][-1]["content"]
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        body = {"id": "x", "object": "chat.completion", "created": 1, "model": "m", "choices": [choice]}
        return FakeResponse(200, body)

    openai_server.add_route("POST", r"/v1/chat/completions", answer)
    for cache in (output / ".cache").glob("*"):
        cache.unlink()
    forced = declare(output, openai_server.base_url, 2, force=True)
    materialize(forced, instance, output, "1", [shards_asset_key(gen_key)])
    assert merge_status(two) == "STALE"
    materialize(two, instance, output, select=[gen_key])
    assert merge_status(two) == "FRESH"
    generations = rows(output, two["gen"])["generations"]
    assert not generations[0].startswith("Changed") and generations[-1].startswith("Changed")


def test_a_single_run_backfill_policy_makes_a_range_of_shards_in_one_run(tmp_path, instance, openai_server):
    output = tmp_path / "output"
    steps = declare(output, openai_server.base_url, 3, backfill_policy=dg.BackfillPolicy.single_run())
    shards_key = shards_asset_key(steps["gen"].asset_key)
    assert steps["gen"].shards_asset.backfill_policy == dg.BackfillPolicy.single_run()
    materialize(steps, instance, output, select=[steps["source"].asset_key])
    defs = dreamer_definitions(list(steps.values()), output_folder=str(output))
    result = dg.materialize(
        list(defs.assets),
        instance=instance,
        resources=dict(defs.resources),
        selection=[shards_key],
        tags={"dagster/asset_partition_range_start": "0", "dagster/asset_partition_range_end": "2"},
    )
    assert result.success
    folder = OutputFolder(output).step("gen")
    assert [folder.shard(key).step_json()["shard"]["key"] for key in "012"] == ["0", "1", "2"]
    assert openai_server.request_count == len(TEXTS)
    materialize(steps, instance, output, select=[steps["gen"].asset_key])
    assert rows(output, steps["gen"])["inputs"] == TEXTS


def test_missing_shards_and_unpartitioned_runs_fail_clearly(tmp_path, instance, openai_server):
    output = tmp_path / "output"
    steps = declare(output, openai_server.base_url, 2)
    gen_key = steps["gen"].asset_key
    materialize(steps, instance, output, select=[steps["source"].asset_key])
    materialize(steps, instance, output, "0", [shards_asset_key(gen_key)])
    with pytest.raises(dg.Failure, match=r"shards \['1'\] of 2 are not materialized.*--partition"):
        materialize(steps, instance, output, select=[gen_key])
    with pytest.raises(dg.Failure, match="runs per partition.*--partition 0"):
        materialize(steps, instance, output, select=[shards_asset_key(gen_key)])
    defs = dreamer_definitions(list(steps.values()), output_folder=str(output))
    job = defs.resolve_job_def("dreamer_pipeline")
    assert shards_asset_key(gen_key) not in job.asset_layer.executable_asset_keys


def test_bad_shards_fail_when_declared(tmp_path):
    with Pipeline(str(tmp_path / "output")):
        source = DataSource("Texts", {"text": TEXTS})
        llm = OpenAI("fake-chat", base_url="http://127.0.0.1:9/v1")
        for bad, words in [(0, "from 1 to"), (2.5, "whole number"), (True, "whole number")]:
            with pytest.raises(StepDeclarationError, match=words) as caught:
                ProcessWithPrompt(
                    f"Bad {bad}",
                    inputs={"inputs": source.output["text"]},
                    args={"llm": llm, "instruction": "x"},
                    shards=bad,
                )
            assert "argument 'shards'" in str(caught.value)
        with pytest.raises(StepDeclarationError, match="cannot be sharded"):
            DataSource("Sharded source", {"text": TEXTS}, shards=2)
        with pytest.raises(StepDeclarationError, match="unexpected keyword arguments"):
            source.take(2, name="Taken", shards=2)
        with pytest.raises(StepDeclarationError, match="dg.BackfillPolicy"):
            ProcessWithPrompt(
                "Bad policy",
                inputs={"inputs": source.output["text"]},
                args={"llm": llm, "instruction": "x"},
                shards=2,
                backfill_policy="one run",
            )
