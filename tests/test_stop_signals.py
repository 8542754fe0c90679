"""A stopped run stops. One SIGTERM or SIGINT to a running script (``python pipeline.py``) or
to ``dagster asset materialize`` ends the run within seconds: a non-zero exit, no step put up
for retry, the run CANCELED (so run retries, enabled in the instance here, never re-queue it),
at most what was in flight sent after the signal, and the answers received kept in the model
cache, so the re-run sends only the rest. A second signal exits at once, even while user code
swallows the first.

3,000 prompts through the loopback OpenAI server, 50 ms each, 16 in flight; the stopped run
is a real process, the re-run happens in this one (tests/test_interrupted.py's helpers).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import datasets
import pytest

from dreamer_dagster.stop_signals import SAME_STOP_S
from tests.support.openai_server import FakeOpenAIServer
from tests.support.waiting import HANG_S
from tests.test_interrupted import REPO, answered, cached_answers, materialize_here, pipeline_script

PROMPTS, IN_FLIGHT = 3000, 16
#: Requests sent when the signal goes (the re-run, in this busier process, sends the rest).
SIGNAL_AT = 5 * PROMPTS // 6
#: The issue's bound: the process is gone this long after the signal.
STOP_S = 10.0
#: Run retries on: a run that ended FAILED would be marked to be re-queued.
DAGSTER_YAML = "telemetry:\n  enabled: false\nrun_retries:\n  enabled: true\n  max_retries: 2\n"
RETRY_EVENTS = {"STEP_UP_FOR_RETRY", "STEP_RESTARTED"}


def sent(server: FakeOpenAIServer) -> int:
    return sum(answered(server).values())


def start(command: list[str], tmp_path: Path, env: dict[str, str]) -> subprocess.Popen:
    """The pipeline's process, alone in its session: a signal reaches it and nothing else."""
    return subprocess.Popen(
        command,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO), "OPENAI_API_KEY": "sk-loopback", **env},
        stdout=open(tmp_path / "run.log", "w"),  # noqa: SIM115 - closed with the process
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_until(condition, process: subprocess.Popen, log: Path, what: str) -> None:
    deadline = time.monotonic() + HANG_S
    while not condition():
        assert process.poll() is None, f"ended before {what}: {log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"never {what}"
        time.sleep(0.02)


def stopped_within_bound(process: subprocess.Popen, log: Path) -> int:
    """The signalled process's exit code; it must be gone within :data:`STOP_S`."""
    signalled = time.monotonic()
    try:
        code = process.wait(timeout=STOP_S)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"still running {STOP_S}s after the signal: {log.read_text()[-3000:]}")
    print(f"exit {code} {time.monotonic() - signalled:.1f}s after the signal")
    return code


def last_run(home: Path) -> tuple[dg.DagsterRun, set[str]]:
    """The instance's latest run and the types of its events."""
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        run = instance.get_runs(limit=1)[0]
        events = {
            entry.dagster_event.event_type_value
            for entry in instance.all_logs(run.run_id)
            if entry.dagster_event
        }
    finally:
        instance.dispose()
    return run, events


@pytest.mark.parametrize(
    ("command", "signum"),
    [("script", signal.SIGTERM), ("script", signal.SIGINT), ("dagster", signal.SIGTERM)],
    ids=["script-SIGTERM", "script-SIGINT", "dagster-asset-materialize-SIGTERM"],
)
def test_one_signal_stops_the_run_and_the_rerun_sends_only_the_rest(command, signum, tmp_path, monkeypatch):
    script = tmp_path / "pipeline.py"
    script.write_text(pipeline_script(PROMPTS, IN_FLIGHT))
    home, output = tmp_path / "dagster_home", tmp_path / "output"
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    args = (
        [sys.executable, script.name]
        if command == "script"
        else [
            str(Path(sys.executable).parent / "dagster"),
            "asset",
            "materialize",
            "-f",
            script.name,
            "--select",
            "*",
        ]
    )
    log = tmp_path / "run.log"
    with FakeOpenAIServer(latency=0.05) as server:
        env = {"BASE_URL": server.base_url, "OUTPUT": str(output), "DAGSTER_HOME": str(home), "KILL_AT": ""}
        process = start(args, tmp_path, env)
        wait_until(lambda: server.request_count >= SIGNAL_AT, process, log, f"{SIGNAL_AT} prompts were sent")
        at_signal = sent(server)
        os.kill(process.pid, signum)
        code = stopped_within_bound(process, log)
        assert code != 0
        if command == "script":
            assert code == 128 + signum  # 143 for SIGTERM, 130 for SIGINT
            assert f"Stopped by {signal.Signals(signum).name}" in log.read_text()
        stopped_run = sent(server)
        print(f"{at_signal} requests at the signal, {stopped_run - at_signal} after it")
        assert stopped_run - at_signal <= 2 * IN_FLIGHT
        assert stopped_run < PROMPTS
        assert not (output / "processed" / "step.json").exists()
        assert cached_answers(output) >= at_signal - 2 * IN_FLIGHT  # what was answered is kept

        run, events = last_run(home)
        assert run.status == dg.DagsterRunStatus.CANCELED, run.status
        assert not events & RETRY_EVENTS, events  # the step was not put up for retry
        assert run.tags.get("dagster/will_retry") != "true"

        materialize_here(script, monkeypatch, env)
        total = sent(server)
        print(f"re-run sent {total - stopped_run}; {total} in all for {PROMPTS} prompts")
        assert total <= PROMPTS + 2 * IN_FLIGHT
        rows = datasets.load_from_disk(str(output / "processed" / "_dataset"))
        assert rows.num_rows == PROMPTS and rows[PROMPTS - 1]["generations"].startswith("ECHO: INPUT: TEXT")


def test_a_second_signal_exits_at_once_while_user_code_swallows_the_first(tmp_path):
    """``post_process`` stuck in a loop that swallows every interrupt: the first SIGTERM cannot
    end the step; the second (after :data:`SAME_STOP_S`) exits 143, the run marked CANCELED and
    the answers received in the model cache."""
    script = tmp_path / "pipeline.py"
    script.write_text(pipeline_script(200, IN_FLIGHT))
    home, output = tmp_path / "dagster_home", tmp_path / "output"
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    log = tmp_path / "run.log"
    with FakeOpenAIServer(latency=0.05) as server:
        env = {
            "BASE_URL": server.base_url,
            "OUTPUT": str(output),
            "DAGSTER_HOME": str(home),
            "KILL_AT": "stuck:40",
        }
        process = start([sys.executable, script.name], tmp_path, env)
        wait_until(lambda: "STUCK" in log.read_text(), process, log, "post_process got stuck")
        os.kill(process.pid, signal.SIGTERM)
        time.sleep(SAME_STOP_S + 1.0)
        assert process.poll() is None, "the first signal ended a step that swallows interrupts"
        os.kill(process.pid, signal.SIGTERM)
        assert stopped_within_bound(process, log) == 128 + signal.SIGTERM
    assert "A second SIGTERM: exiting now" in log.read_text()
    assert cached_answers(output) >= 41  # rows 0-40 were answered before post_process stuck
    run, _ = last_run(home)
    assert run.status == dg.DagsterRunStatus.CANCELED, run.status
