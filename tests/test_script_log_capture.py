"""A script's runs leave stdout/stderr alone: no compute-log capture, no ``tail -F`` child.

Dagster's capture mirrors each log file through a ``tail -F`` child that it stops with
SIGTERM, then waits 30 s for. A process started with SIGTERM ignored (a supervisor, a CI
runner) hands that to every child; a run in a thread (``background=True``, ``concurrent()``)
does not get Dagster's main-thread SIGTERM handler, so its ``tail`` ignored the SIGTERM, the
step waited 30 s a file, the step's own error became ``subprocess.TimeoutExpired`` and the
``tail`` processes lived on. Runs still go to the instance's storage (the web UI lists them).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import psutil
import pytest

from dreamer_dagster import Pipeline
from dreamer_dagster.steps import Step, wait
from tests.support.waiting import HANG_S

REPO = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import json, os, signal, sys
    import psutil
    from dreamer_dagster import Pipeline
    from dreamer_dagster.steps import Step, wait

    def tails():
        return [p.pid for p in psutil.Process().children(recursive=True) if p.name() == "tail"]

    seen = []

    class Rows(Step):
        def setup(self):
            self.register_arg("fail", required=False, default=False)
            self.register_output("out1")

        def run(self):
            seen.extend(tails())
            if self.args["fail"]:
                raise ReferenceError("the failing step's own error")
            return [1, 2]

    with Pipeline("output") as pipeline:
        Rows("First")  # a run in the main thread first, then two in threads
        good = Rows("Good", background=True)
        bad = Rows("Bad", args={"fail": True}, background=True)
        wait(good)
        try:
            wait(bad)
            caught = None
        except BaseException as error:
            caught = f"{type(error).__name__}: {error}"
        rows = list(good.output["out1"])
    sigterm_ignored = signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    report = {"caught": caught, "rows": rows, "seen": seen, "left": tails(), "sigterm_ignored": sigterm_ignored}
    print("RESULT", json.dumps(report), flush=True)
    """
)


#: How the script is started: as a ``cmd &`` job of a non-interactive shell (``make test &``,
#: ``nohup cmd &``: SIGINT ignored) or by a supervisor that ignores SIGTERM.
LAUNCHES = {"sigint-ignored": signal.SIGINT, "sigterm-ignored": signal.SIGTERM}


def _start_as(launch: str) -> None:
    """In the child before exec: SIGINT and SIGTERM as a shell leaves them, then the launch's
    one ignored (the test process's own may already be ignored: a suite started with
    ``make test &`` ignores SIGINT, and an earlier Dagster run copied that onto SIGTERM)."""
    for signum in LAUNCHES.values():
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(LAUNCHES[launch], signal.SIG_IGN)


def _tails_under(folder: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        if process.info["name"] == "tail" and str(folder) in " ".join(process.info["cmdline"] or []):
            found.append(process)
    return found


@pytest.mark.parametrize("launch", list(LAUNCHES))
def test_background_steps_raise_their_own_error_and_leave_no_tail_however_the_script_starts(tmp_path, launch):
    (tmp_path / "script.py").write_text(SCRIPT)
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = dict(os.environ, PYTHONPATH=str(REPO), DAGSTER_HOME=str(tmp_path / "home"))
    env.pop("DREAMER_RUN", None)
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    try:
        # Files, not pipes: a leftover tail holds the script's stdout open after it exits.
        with out.open("w") as stdout, err.open("w") as stderr:
            code = subprocess.call(
                [sys.executable, "script.py"],
                cwd=tmp_path,
                env=env,
                stdout=stdout,
                stderr=stderr,
                timeout=HANG_S,
                preexec_fn=lambda: _start_as(launch),
            )
        assert code == 0, err.read_text()[-3000:]
        line = next(line for line in out.read_text().splitlines() if line.startswith("RESULT "))
        report = json.loads(line.removeprefix("RESULT "))
        assert report["caught"] == "ReferenceError: the failing step's own error", err.read_text()[-3000:]
        assert report["rows"] == [1, 2]
        if launch == "sigint-ignored":  # the runs did not leave SIGTERM ignored: `kill PID` stops it
            assert report["sigterm_ignored"] is False
        assert report["seen"] == [] and report["left"] == []  # no tail child, during or after
        assert _tails_under(tmp_path) == []
        # The runs are in the instance the web UI reads.
        instance = dg.DagsterInstance.from_config(str(tmp_path / "home"))
        try:
            runs = instance.get_runs()
            statuses = sorted(run.status.value for run in runs)
            assert statuses == ["FAILURE", "SUCCESS", "SUCCESS"]
        finally:
            instance.dispose()
    finally:
        for process in _tails_under(tmp_path):  # the old capture's tails ignore SIGTERM
            process.kill()


class Loud(Step):
    """Prints, and records this process's ``tail`` children while it runs."""

    def setup(self):
        self.register_output("out1")

    def run(self):
        print(f"printed by {self.name}", flush=True)
        tails = [p for p in psutil.Process().children(recursive=True) if p.name() == "tail"]
        return [len(tails)]


def test_a_script_run_prints_to_the_terminal_and_is_recorded_without_compute_logs(
    tmp_path, script_home, capfd
):
    with Pipeline(str(tmp_path / "output"), run=True) as pipeline:
        step = Loud("Loud", background=True)
        wait(step)
        assert list(step.output["out1"]) == [0]  # no tail child while it ran
        run_id = pipeline.session.runs[-1]
        assert type(pipeline.session.instance.compute_log_manager).__name__ == "NoOpComputeLogManager"
    assert "printed by Loud" in capfd.readouterr().out  # straight to the script's stdout
    instance = dg.DagsterInstance.get()  # the user's DAGSTER_HOME instance, as the web UI opens it
    try:
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
        assert instance.get_latest_materialization_event(step.asset_key) is not None
    finally:
        instance.dispose()
    assert not (Path(script_home) / "storage" / run_id / "compute_logs").exists()


@pytest.fixture(autouse=True)
def _no_tail_left(tmp_path):
    """Whatever a test here does, no ``tail`` of its folder outlives it."""
    yield
    for process in _tails_under(tmp_path):
        process.kill()
