"""Stale-only runs as a user drives them: `dreamer materialize --stale` (a subprocess) and one
tick of `stale_schedule` evaluated by Dagster's own scheduler against the same instance. After
one step's instruction changes, exactly that step and its downstream steps run; a second call
runs nothing and records no materialization. The causes printed are cross-checked against
Dagster's own stale status."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import pytest

from tests.support.openai_server import FakeOpenAIServer
from tests.support.waiting import HANG_S

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]

DEFINITIONS = textwrap.dedent(
    """
    import os

    from dreamer_dagster import Pipeline
    from dreamer_dagster.llms import OpenAI
    from dreamer_dagster.steps import DataSource, ProcessWithPrompt

    llm = OpenAI("fake-chat", base_url=os.environ["FAKE_OPENAI_BASE_URL"], max_concurrency=4)

    with Pipeline({output!r}) as pipeline:
        source = DataSource("Inputs", {{"text": ["one", "two", "three"]}})
        summary = ProcessWithPrompt(
            "Summary", inputs={{"inputs": source.output["text"]}}, args={{"llm": llm, "instruction": {instruction!r}}}
        )
        tweet = ProcessWithPrompt(
            "Tweet", inputs={{"inputs": summary.output["generations"]}}, args={{"llm": llm, "instruction": "Tweet it."}}
        )
        title = ProcessWithPrompt(
            "Title", inputs={{"inputs": source.output["text"]}}, args={{"llm": llm, "instruction": "Title it."}}
        )

    defs = pipeline.definitions(schedule="0 3 * * *")
    """
)


@pytest.fixture
def server():
    with FakeOpenAIServer() as fake:
        yield fake


class Project:
    """A definitions file, its DAGSTER_HOME and the environment the commands run in."""

    def __init__(self, folder: Path, server: FakeOpenAIServer):
        self.folder = folder
        self.file = folder / "definitions.py"
        self.home = folder / "dagster_home"
        self.home.mkdir()
        # Scheduled runs launch at once (no queue daemon in a test).
        (self.home / "dagster.yaml").write_text(
            "telemetry:\n  enabled: false\n"
            "run_coordinator:\n  module: dagster._core.run_coordinator\n  class: DefaultRunCoordinator\n"
        )
        self.env = {
            **os.environ,
            "DAGSTER_HOME": str(self.home),
            "FAKE_OPENAI_BASE_URL": server.base_url,
            "HF_HUB_OFFLINE": "1",
            "PYTHONPATH": str(REPO),
        }
        self.write("Summarize it.")

    def write(self, instruction: str) -> None:
        self.file.write_text(DEFINITIONS.format(output=str(self.folder / "output"), instruction=instruction))

    def dreamer(self, *args: str) -> str:
        result = subprocess.run(
            [str(BIN / "dreamer"), "materialize", "-f", str(self.file), *args],
            cwd=self.folder,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=HANG_S,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        return result.stdout

    def definitions(self) -> dg.Definitions:
        import importlib.util

        spec = importlib.util.spec_from_file_location(f"defs_{id(self)}_{os.urandom(4).hex()}", self.file)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.defs


def count_materializations(instance: dg.DagsterInstance, keys: list[str]) -> int:
    return sum(len(instance.fetch_materializations(dg.AssetKey(key), limit=10_000).records) for key in keys)


def started_steps(instance: dg.DagsterInstance, run_id: str) -> set[str]:
    return {
        entry.step_key
        for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)
        if entry.step_key
    }


KEYS = ["inputs", "summary", "tweet", "title"]


def test_stale_cli_and_schedule_run_exactly_the_changed_step_and_downstream(tmp_path, server, monkeypatch):
    from dagster._utils.test.data_versions import get_stale_status_resolver

    from dreamer_dagster.staleness import stale_statuses

    project = Project(tmp_path, server)
    for name in ("DAGSTER_HOME", "FAKE_OPENAI_BASE_URL", "PYTHONPATH"):
        monkeypatch.setenv(name, project.env[name])  # for the scheduler's code server, below
    instance = dg.DagsterInstance.from_config(str(project.home))

    first = project.dreamer("--stale")
    assert "Running 4 of 4 steps" in first and first.count("MISSING  never materialized") == 4
    assert server.stats()["requests"] == 9
    assert count_materializations(instance, KEYS) == 4

    # One instruction changes: that step and the one downstream of it are stale.
    project.write("Summarize it in five words.")
    dry = project.dreamer("--stale", "--dry-run")
    assert "Would run 2 of 4 steps" in dry
    lines = {line.split()[0]: line for line in dry.splitlines() if line.startswith("  ")}
    assert set(lines) == {"summary", "tweet"}
    assert "STALE" in lines["summary"] and "has a new code version" in lines["summary"]
    # The cost columns, estimated offline: the new instruction's 3 prompts are not cached (the
    # loopback model has no price); the downstream step's prompts wait on its new input.
    assert "[uncached prompts: 3, est. USD: null (no price is known for OpenAI(" in lines["summary"]
    assert (
        "[uncached prompts: null, est. USD: null (upstream step 'Summary' is not materialized"
        in lines["tweet"]
    )
    assert count_materializations(instance, KEYS) == 4 and server.stats()["requests"] == 9

    # The same answer as Dagster's own stale status (the web UI's "unsynced").
    defs = project.definitions()
    resolver = get_stale_status_resolver(instance, list(defs.assets))
    ours = {status.key.to_user_string(): status for status in stale_statuses(defs, instance)}
    for key in KEYS:
        theirs = resolver.get_status(dg.AssetKey(key)).value
        assert ours[key].status == theirs, key
        reasons = [cause.reason for cause in resolver.get_stale_causes(dg.AssetKey(key))]
        assert [cause.split(" (")[0] for cause in ours[key].causes] == reasons, key

    run = project.dreamer("--stale")
    assert "Running 2 of 4 steps" in run
    [latest] = instance.get_runs(limit=1)
    assert started_steps(instance, latest.run_id) == {"summary", "tweet"}
    assert server.stats()["requests"] == 9 + 6
    assert count_materializations(instance, KEYS) == 6

    again = project.dreamer("--stale")
    assert "Nothing to run: all 4 steps are in sync." in again
    assert instance.get_runs(limit=1)[0].run_id == latest.run_id
    assert count_materializations(instance, KEYS) == 6

    # One tick of the stale schedule, by Dagster's scheduler, after another change.
    project.write("Summarize it in three words.")
    tick_run = evaluate_schedule_tick(project, instance, days=1)
    assert tick_run is not None and tick_run.status == dg.DagsterRunStatus.SUCCESS
    assert tick_run.tags["dagster/schedule_name"] == "dreamer_stale_schedule"
    assert tick_run.asset_selection == {dg.AssetKey("summary"), dg.AssetKey("tweet")}
    assert started_steps(instance, tick_run.run_id) == {"summary", "tweet"}
    assert count_materializations(instance, KEYS) == 8
    assert evaluate_schedule_tick(project, instance, days=2) is None  # in sync: no run at all
    assert count_materializations(instance, KEYS) == 8


def evaluate_schedule_tick(project: Project, instance: dg.DagsterInstance, days: int) -> dg.DagsterRun | None:
    """Run the scheduler daemon's own evaluation of ``dreamer_stale_schedule`` for its next tick."""
    from dagster._core.test_utils import create_test_daemon_workspace_context, poll_for_finished_run
    from dagster._core.workspace.load_target import PythonFileTarget
    from dagster._daemon.daemon import get_default_daemon_logger
    from dagster._scheduler.scheduler import launch_scheduled_runs

    target = PythonFileTarget(
        python_file=str(project.file),
        attribute="defs",
        working_directory=str(project.folder),
        location_name="tweets",
    )
    runs_before = {run.run_id for run in instance.get_runs()}
    with create_test_daemon_workspace_context(target, instance) as context:
        location = next(iter(context.create_request_context().get_code_location_entries().values()))
        repository = next(iter(location.code_location.get_repositories().values()))
        schedule = repository.get_schedule("dreamer_stale_schedule")
        if instance.get_instigator_state(schedule.get_remote_origin_id(), schedule.selector_id) is None:
            instance.start_schedule(schedule)
        start = datetime.datetime.now(datetime.UTC)
        list(
            launch_scheduled_runs(
                context,
                get_default_daemon_logger("SchedulerDaemon"),
                end_datetime_utc=start + datetime.timedelta(days=days),
                iteration_times={},
                max_catchup_runs=1,
            )
        )
        new = [run for run in instance.get_runs() if run.run_id not in runs_before]
        if not new:
            return None
        [run] = new
        return poll_for_finished_run(instance, run.run_id, timeout=HANG_S)
