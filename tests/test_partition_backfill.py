"""A backfill over a range of partitions, as a Dagster user runs it: each partitions
definition of a pipeline has a job of its own (``dreamer_pipeline_daily``...), and
``dagster job backfill`` over it makes one run per partition."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import dagster as dg

from dreamer_dagster import Pipeline
from dreamer_dagster.llms import OpenAI
from dreamer_dagster.output_folder import OutputFolder
from dreamer_dagster.partition_jobs import partition_job_suffix
from dreamer_dagster.steps import DataFromPrompt, DataSource, ProcessWithPrompt
from dreamer_dagster.testing.http_messages import prompt_text
from tests.support.waiting import HANG_S

DAYS = ["2026-12-01", "2026-12-02", "2026-12-03"]
DAILY = dg.DailyPartitionsDefinition(start_date=DAYS[0], end_date="2026-12-05")


def job_steps(defs: dg.Definitions, name: str) -> list[str]:
    job = defs.resolve_job_def(name)
    return sorted(key.to_user_string() for key in job.asset_layer.selected_asset_keys)


def test_each_partitions_definition_has_a_job_beside_the_pipelines(tmp_path):
    llm = OpenAI("m", base_url="http://127.0.0.1:9/v1")
    other_daily = dg.DailyPartitionsDefinition(start_date="2026-11-01")
    with Pipeline(str(tmp_path), run=False) as pipeline:
        DataFromPrompt("Sharded", args={"llm": llm, "n": 4, "instruction": "x"}, shards=2)
        daily = DataFromPrompt(
            "Daily", args={"llm": llm, "n": 1, "instruction": "{partition_key}"}, partitions_def=DAILY
        )
        ProcessWithPrompt(  # same partitions: in the same job
            "Tweets",
            inputs={"inputs": daily.output["generations"]},
            args={"llm": llm, "instruction": "t"},
            partitions_def=DAILY,
        )
        DataSource("Older", {"text": ["a"]}, partitions_def=other_daily)
        DataSource("Language", {"text": ["a"]}, partitions_def=dg.StaticPartitionsDefinition(["en", "fr"]))
        DataSource("Topic", {"text": ["a"]}, partitions_def=dg.DynamicPartitionsDefinition(name="topics"))
        ProcessWithPrompt(
            "Digest", inputs={"inputs": daily.output["generations"]}, args={"llm": llm, "instruction": "y"}
        )
    defs = pipeline.definitions(schedule="0 3 * * *")
    dg.Definitions.validate_loadable(defs)
    daily_job, older_job = (f"dreamer_pipeline_{partition_job_suffix(p)}" for p in (DAILY, other_daily))
    assert daily_job != older_job and daily_job.startswith("dreamer_pipeline_daily_")  # two daily: hashed
    assert sorted(job.name for job in defs.jobs) == sorted(
        ["dreamer_pipeline", daily_job, older_job, "dreamer_pipeline_static", "dreamer_pipeline_topics"]
    )
    assert job_steps(defs, "dreamer_pipeline") == ["digest", "sharded"]
    assert job_steps(defs, daily_job) == ["daily", "tweets"]
    assert job_steps(defs, older_job) == ["older"]
    assert defs.resolve_job_def("dreamer_pipeline_static").partitions_def == dg.StaticPartitionsDefinition(
        ["en", "fr"]
    )
    # another IO manager key: the jobs take the pipeline job's name
    named = pipeline.definitions(io_manager_key="other_io")
    assert "dreamer_pipeline_other_io_static" in {job.name for job in named.jobs}
    # unpartitioned: the pipeline's job only, as before
    with Pipeline(str(tmp_path / "plain"), run=False) as plain:
        DataSource("Rows", {"text": ["a"]})
    assert [job.name for job in plain.definitions().jobs] == ["dreamer_pipeline"]


def write_defs(path, output, base_url: str) -> None:
    path.write_text(
        textwrap.dedent(
            f"""
            import dagster as dg
            from dreamer_dagster import Pipeline
            from dreamer_dagster.llms import OpenAI
            from dreamer_dagster.steps import DataFromPrompt

            with Pipeline({str(output)!r}) as pipeline:
                DataFromPrompt(
                    "News",
                    args={{"llm": OpenAI("fake-chat", base_url={base_url!r}), "n": 1,
                          "instruction": "Headline for {{partition_key}}."}},
                    partitions_def=dg.DailyPartitionsDefinition(start_date="2026-12-01", end_date="2026-12-05"),
                )
            defs = pipeline.definitions()
            """
        )
    )


def backfill(tmp_path, env: dict) -> str:
    """``dagster job backfill`` over DAYS (the runs are queued); returns the backfill id."""
    done = subprocess.run(
        [sys.executable, "-m", "dagster", "job", "backfill", "-f", "defs.py", "-j", "dreamer_pipeline_daily"]
        + ["--from", DAYS[0], "--to", DAYS[-1], "--noprompt"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG_S,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Launched backfill job" in done.stdout, done.stdout
    return done.stdout.split("Launched backfill job `")[1].split("`")[0]


def wait_for_runs(instance: dg.DagsterInstance, backfill_id: str, daemon: subprocess.Popen) -> list:
    """The backfill's runs, once each has finished (bounded only against a hang)."""
    deadline = time.monotonic() + HANG_S
    while time.monotonic() < deadline:
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        if len(runs) == len(DAYS) and all(run.is_finished for run in runs):
            return runs
        assert daemon.poll() is None, "the daemon exited"
        time.sleep(1)
    raise AssertionError(f"backfill {backfill_id} did not finish: {[r.status for r in runs]}")


def materialized_reused(instance: dg.DagsterInstance, run_id: str) -> bool:
    (entry,) = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    return entry.asset_materialization.metadata["dreamer/reused"].value


def test_a_cli_backfill_makes_one_partition_a_run_and_reuses_them(tmp_path, openai_server):
    output = tmp_path / "output"
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    write_defs(tmp_path / "defs.py", output, openai_server.base_url)
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    with dg.DagsterInstance.from_config(str(home)) as instance:  # its storage made before the daemon's
        # Dagster's default run coordinator queues the backfill's runs; the daemon launches them
        # (as `dagster dev` does), each in a run worker subprocess.
        daemon = subprocess.Popen(
            [sys.executable, "-m", "dagster._daemon", "run", "-f", "defs.py"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            runs = wait_for_runs(instance, backfill(tmp_path, env), daemon)
            assert sorted(run.tags["dagster/partition"] for run in runs) == DAYS  # one run a partition
            assert {run.job_name for run in runs} == {"dreamer_pipeline_daily"}
            assert [run.status for run in runs] == [dg.DagsterRunStatus.SUCCESS] * len(DAYS)
            assert not any(materialized_reused(instance, run.run_id) for run in runs)

            prompts = sorted(prompt_text(request["body"]) for request in openai_server.requests)
            assert len(prompts) == len(DAYS)
            assert [day in prompt for day, prompt in zip(DAYS, prompts, strict=True)] == [True] * len(DAYS)
            records = [OutputFolder(output).step("news").partition(day).step_json() for day in DAYS]
            assert [record["partition"]["key"] for record in records] == DAYS
            answers = [
                OutputFolder(output).step("news").partition(day).load_dataset().to_dict()["generations"][0]
                for day in DAYS
            ]
            assert len(set(answers)) == len(DAYS)
            assert [day in answer for day, answer in zip(DAYS, answers, strict=True)] == [True] * len(DAYS)

            again = wait_for_runs(instance, backfill(tmp_path, env), daemon)
            assert [run.status for run in again] == [dg.DagsterRunStatus.SUCCESS] * len(DAYS)
            assert all(materialized_reused(instance, run.run_id) for run in again)
            assert len(openai_server.requests) == len(DAYS)  # the second backfill: no request
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
                daemon.wait()
