"""Scaling out with real components on loopback: the celery executor (Redis broker, two celery
worker processes, each with its own local folder as if on its own machine) runs the shards of a
sharded step over an S3-compatible output folder (moto); and Dagster's instance storage on
PostgreSQL (the documented deploy/dagster-postgres.yaml)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.reconstruct import ReconstructableRepository

from dreamer_dagster.output_folder import OutputFolder
from tests.support.openai_server import FakeOpenAIServer
from tests.support.services import EXTRAS_FIX, missing_service, redis_server, running_postgres
from tests.support.waiting import HANG_S

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SHARDS, ROWS = 4, 40

DEFINITIONS = (
    textwrap.dedent(
        """
    import os

    from dagster_celery import celery_executor

    from dreamer_dagster import Pipeline
    from dreamer_dagster.llms import OpenAI
    from dreamer_dagster.steps import DataSource, ProcessWithPrompt

    llm = OpenAI("fake-chat", base_url=os.environ["BASE_URL"], max_concurrency=4)
    with Pipeline(os.environ["OUTPUT"]) as pipeline:
        source = DataSource("Inputs", {"text": [f"text {i % 30}" for i in range(ROWS)]})  # with repeats
        ProcessWithPrompt(
            "Tweets",
            inputs={"inputs": source.output["text"]},
            args={"llm": llm, "instruction": "Shorten it.", "temperature": 1.0},
            shards=SHARDS,
        )
    broker = os.environ["BROKER"]
    defs = pipeline.definitions(executor=celery_executor.configured({"broker": broker, "backend": broker}))
    """
    )
    .replace("ROWS", str(ROWS))
    .replace("SHARDS", str(SHARDS))
)


def dagster(args: list[str], env: dict, cwd: Path) -> None:
    result = subprocess.run(
        [str(BIN / "dagster"), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=HANG_S
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]


def test_celery_workers_run_every_shard_over_s3_and_a_second_backfill_calls_no_model(
    tmp_path, s3_server, monkeypatch
):
    pytest.importorskip(
        "dagster_celery", reason=missing_service("dagster-celery is not installed", EXTRAS_FIX)
    )
    output = f"s3://{s3_server.make_bucket()}/output"
    definitions = tmp_path / "definitions.py"
    definitions.write_text(DEFINITIONS)
    home = tmp_path / "dagster_home"
    home.mkdir()
    with redis_server() as broker, FakeOpenAIServer(latency=0.05) as server:
        config = tmp_path / "celery_config"
        config.mkdir()
        (config / "dagster_celery_config.py").write_text(
            f"broker_url = {broker!r}\nresult_backend = {broker!r}\n"
        )
        env = {
            **os.environ,
            **s3_server.env,
            "DAGSTER_HOME": str(home),
            "OUTPUT": output,
            "BASE_URL": server.base_url,
            "BROKER": broker,
            "PYTHONPATH": os.pathsep.join([str(REPO), str(config)]),
            "DREAMER_LOCAL_FOLDER": str(tmp_path / "run-processes"),
        }
        workers = {}
        try:
            for name in ("w1", "w2"):  # two machines: each its own local folder (model caches...)
                worker_env = {**env, "DREAMER_LOCAL_FOLDER": str(tmp_path / f"machine-{name}")}
                workers[name] = subprocess.Popen(
                    [str(BIN / "celery"), "-A", "dagster_celery.app", "worker", "--pool", "solo",
                     "--prefetch-multiplier=1", "-Q", "dagster", "-n", f"{name}@%h", "--loglevel", "WARNING"],
                    env=worker_env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
            for name, value in env.items():
                monkeypatch.setenv(name, value)  # the runs start here, loading the same file
            recon = ReconstructableRepository.for_file(str(definitions), "defs").get_reconstructable_job(
                "__ASSET_JOB"
            )
            instance = dg.DagsterInstance.from_config(str(home))

            def run(asset: str, partition: str | None = None) -> None:
                tags = {"dagster/partition": partition} if partition is not None else None
                with dg.execute_job(
                    recon, instance=instance, tags=tags, asset_selection=[dg.AssetKey(asset)]
                ) as result:
                    assert result.success, [str(e) for e in result.all_events if e.is_failure]

            run("inputs")

            def backfill() -> None:
                """One run per shard, at once (what a backfill of every partition launches)."""
                with ThreadPoolExecutor(SHARDS) as pool:
                    list(pool.map(lambda key: run("tweets_shards", key), map(str, range(SHARDS))))
                run("tweets")

            backfill()
            folder = OutputFolder(output).step("tweets")
            shards = [folder.shard(str(key)).step_json() for key in range(SHARDS)]
            pids = {name: process.pid for name, process in workers.items()}
            ran_on = [record["worker"]["pid"] for record in shards]
            print(f"shards ran on {[next(n for n, p in pids.items() if p == pid) for pid in ran_on]}")
            assert os.getpid() not in ran_on
            assert set(ran_on) <= set(pids.values())  # every shard ran in a celery worker
            assert sum(record["num_rows"] for record in shards) == ROWS
            merged = folder.load_dataset()
            assert merged["inputs"] == [f"text {i % 30}" for i in range(ROWS)]  # every row once, in order
            assert all(text in answer for text, answer in zip(merged["inputs"], merged["generations"]))
            first_calls = server.request_count
            assert first_calls == ROWS  # one call per row: no shard ran twice

            # Again on fresh machines (no local cache) and with no step folder: every answer is
            # read from the calls the workers published to the output folder.
            OutputFolder(output).files.remove_tree(OutputFolder(output).root / "tweets")
            for name in workers:
                shutil.rmtree(tmp_path / f"machine-{name}", ignore_errors=True)
            backfill()
            assert server.request_count == first_calls  # zero model calls
            again = OutputFolder(output).step("tweets").load_dataset()
            assert again.to_dict() == merged.to_dict()
        finally:
            if "instance" in locals():
                instance.dispose()
            for process in workers.values():
                process.terminate()
            for process in workers.values():
                try:
                    process.wait(timeout=60)  # then killed
                except subprocess.TimeoutExpired:
                    process.kill()


POSTGRES_PIPELINE = textwrap.dedent(
    """
    import os

    from dreamer_dagster import Pipeline
    from dreamer_dagster.steps import DataSource

    with Pipeline(os.environ["OUTPUT"]) as pipeline:
        seed = DataSource("Seed", {"text": ["a", "b", "c"]})
        seed.take(2, name="First Two")
    defs = pipeline.definitions()
    """
)


def test_instance_storage_on_postgresql(tmp_path):
    pytest.importorskip(
        "dagster_postgres", reason=missing_service("dagster-postgres is not installed", EXTRAS_FIX)
    )
    import dagster as dg

    with running_postgres() as url:
        home = tmp_path / "dagster_home"
        home.mkdir()
        shutil.copy(REPO / "deploy" / "dagster-postgres.yaml", home / "dagster.yaml")
        script = tmp_path / "pipeline.py"
        script.write_text(POSTGRES_PIPELINE)
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "DAGSTER_POSTGRES_URL": url,
            "OUTPUT": str(tmp_path / "output"),
            "PYTHONPATH": str(REPO),
        }
        dagster(["asset", "materialize", "-f", str(script), "--select", "*"], env, tmp_path)

        os.environ["DAGSTER_POSTGRES_URL"] = url
        try:
            with dg.DagsterInstance.from_config(str(home)) as instance:
                storages = [instance.run_storage, instance.event_log_storage, instance.schedule_storage]
                assert [type(s).__name__ for s in storages] == [
                    "PostgresRunStorage",
                    "PostgresEventLogStorage",
                    "PostgresScheduleStorage",
                ]
                [run] = instance.get_runs()
                assert run.is_success
                for key, rows in (("seed", 3), ("first_two", 2)):
                    event = instance.get_latest_materialization_event(dg.AssetKey(key))
                    assert event is not None and event.run_id == run.run_id
                    metadata = event.asset_materialization.metadata
                    assert metadata["dagster/row_count"].value == rows
                    assert metadata["dreamer/fingerprint"].value
                    assert instance.get_latest_data_version_record(dg.AssetKey(key)) is not None
        finally:
            os.environ.pop("DAGSTER_POSTGRES_URL", None)
