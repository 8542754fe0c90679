"""In a running script a step runs when it is declared, as DataDreamer runs it (issue 15):
a data file gone after the declaration is no matter, ``background=True`` runs in a thread
that ``wait()`` joins, a step declared outside any block runs in memory when read, a file
Dagster loads still only declares, and a caught failure is the step's own exception.
Declaration errors have DataDreamer's types."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import dagster as dg
import pytest

from dreamer_dagster import Pipeline
from dreamer_dagster.errors import StepOutputError, error_chain
from dreamer_dagster.steps import DataSource, JSONDataSource, Step, SuperStep, wait
from tests.support.waiting import HANG_S

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _script_home(script_home):
    """Script-mode blocks record their runs in the shared script DAGSTER_HOME."""


def test_a_step_runs_when_declared_so_a_data_file_removed_after_still_reads(tmp_path):
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps({"out1": i}) + "\n" for i in range(1, 4)))
    with Pipeline(str(tmp_path / "output"), run=True) as pipeline:
        source = JSONDataSource("Rows", data_files=str(data))
        data.unlink()  # DataDreamer read it when the step was declared; so does this
        assert source.progress == 1.0
        doubled = source.map(lambda row: {"out1": row["out1"] * 2}, lazy=False)
        assert doubled.progress == 1.0  # an operation is a step: it ran when made
        assert list(doubled.output["out1"]) == [2, 4, 6]
    session_runs = {run.run_id for run in dg.DagsterInstance.get().get_runs()}
    assert len(session_runs) >= 2 and pipeline.session is None  # one Dagster run a step


class Gated(Step):
    """Waits for the test to open its gate, then writes its rows (or fails)."""

    GATE = threading.Event()

    def setup(self):
        self.register_arg("fail", required=False, default=False)
        self.register_output("out1")

    def run(self):
        assert Gated.GATE.wait(HANG_S)
        if self.args["fail"]:
            raise ReferenceError("failed in the background")
        return [1, 2, 3]


def test_background_step_runs_in_a_thread_and_wait_joins_it(tmp_path):
    Gated.GATE.clear()
    with Pipeline(str(tmp_path / "output"), run=True):
        step = Gated("Gated", background=True)
        failing = Gated("Failing", args={"fail": True}, background=True)
        # The declaration returned while the step waits for the gate: it is not done.
        assert step.progress is None
        Gated.GATE.set()
        wait(step)
        assert step.progress == 1.0 and list(step.output["out1"]) == [1, 2, 3]
        with pytest.raises(ReferenceError, match="failed in the background"):
            wait(failing)
    # The failure the script caught is not raised again when the block ends.


class Boom(Step):
    def setup(self):
        self.register_arg("error")
        self.register_output("out1")

    def run(self):
        raise {"reference": ReferenceError, "connection": ConnectionError}[self.args["error"]](self.name)


def test_a_caught_step_failure_is_the_steps_own_exception_with_dagsters_as_cause(tmp_path):
    with Pipeline(str(tmp_path / "output"), run=True):
        with pytest.raises(ReferenceError) as raised:
            Boom("Plain", args={"error": "reference"})
        assert any(type(e).__module__.startswith("dagster") for e in error_chain(raised.value.__cause__))
        # A retried failure: what the script catches is still the step's own error.
        with pytest.raises(ConnectionError) as retried:
            Boom(
                "Retried",
                args={"error": "connection"},
                retry_policy=dg.RetryPolicy(max_retries=1),
            )
        assert not type(retried.value).__module__.startswith("dagster")
        with pytest.raises(StepOutputError):
            DataSourceLike("Bad output")
        kept = DataSource("Kept", {"x": [1]})
    # The block ended without raising the caught failures again; the other step is done.
    assert kept.progress == 1.0


class DataSourceLike(Step):
    def setup(self):
        self.register_output("out1")

    def run(self):
        return {"wrong": [1]}


MEMORY_SCRIPT = textwrap.dedent(
    """
    import os
    from dreamer_dagster.steps import DataSource

    source = DataSource("Outside", {"x": [1, 2, 3]})  # no block: a declaration
    print("PROGRESS", source.progress, flush=True)
    print("ROWS", list(source.output["x"]), flush=True)  # read: runs in memory
    print("FOLDER", source.pipeline_output_folder, flush=True)
    """
)


def test_a_step_outside_any_block_in_a_script_runs_in_memory_when_read(tmp_path):
    (tmp_path / "script.py").write_text(MEMORY_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in ("DREAMER_RUN", "DAGSTER_HOME")}
    env["PYTHONPATH"] = str(REPO)
    result = subprocess.run(
        [sys.executable, "script.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=HANG_S
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)
    assert lines["PROGRESS"] == "None" and lines["ROWS"] == "[1, 2, 3]"
    assert "dreamer-memory-" in lines["FOLDER"] and not Path(lines["FOLDER"]).exists()  # removed at exit
    assert sorted(p.name for p in tmp_path.iterdir()) == ["script.py"]  # no ./output written


DEFINITIONS_FILE = textwrap.dedent(
    """
    from pathlib import Path

    from dreamer_dagster import Pipeline, dreamer_definitions
    from dreamer_dagster.steps import Step

    class Marker(Step):
        def setup(self):
            self.register_output("out1")

        def run(self):
            Path("RAN").write_text("ran")
            return [1]

    module_level = Marker("Module level")
    with Pipeline("output") as pipeline:
        in_block = Marker("In block")
    defs = dreamer_definitions([module_level, in_block], output_folder="output")
    """
)


def test_a_definitions_file_with_module_level_steps_only_declares(tmp_path):
    (tmp_path / "defs.py").write_text(DEFINITIONS_FILE)
    env = {k: v for k, v in os.environ.items() if k != "DREAMER_RUN"}
    env["PYTHONPATH"] = str(REPO)
    dagster = str(Path(sys.executable).parent / "dagster")
    result = subprocess.run(
        [dagster, "definitions", "validate", "-f", "defs.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG_S,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert not (tmp_path / "RAN").exists() and not (tmp_path / "output").exists()


class Child(Step):
    def setup(self):
        self.register_input("in1")
        self.register_output("out1")

    def run(self):
        return [x + 1 for x in self.inputs["in1"]]


class NotSuper(Step):
    def setup(self):
        self.register_input("in1")
        self.register_output("out1")

    def run(self):
        return Child("child", inputs={"in1": self.inputs["in1"]}).output.dataset


class Super(SuperStep):
    def setup(self):
        self.register_input("in1")
        self.register_output("out1")

    def run(self):
        return Child("child", inputs={"in1": self.inputs["in1"]}).output.dataset


def test_declaration_errors_have_datadreamers_types(tmp_path):
    from datasets import Dataset, DatasetDict

    with pytest.raises(NotImplementedError, match="setup"):
        Step(name="bare")
    with pytest.raises(AttributeError, match="override setup"):

        class Overrides(Step):
            def __init__(self):
                pass

    with pytest.raises(ValueError, match="DatasetDict"):
        DataSource("Dict", DatasetDict({"train": Dataset.from_dict({"x": [1]})}))
    with Pipeline(str(tmp_path / "output"), run=True):
        source = DataSource("Initial", {"x": [1, 2]})
        with pytest.raises(RuntimeError, match="only a SuperStep may"):
            NotSuper("parent", inputs={"in1": source.output["x"]})
        parent = Super("super", inputs={"in1": source.output["x"]}, background=True)
        assert parent.background is False and list(parent.output["out1"]) == [2, 3]


def test_a_step_declared_in_another_thread_while_one_runs_stays_in_the_block(tmp_path, monkeypatch):
    """A step runs when declared; building its run's definitions must not lose a step that
    another thread (``background=True``, ``concurrent()``) declares meanwhile."""
    import dreamer_dagster.definitions as definitions_module

    build = definitions_module.dreamer_definitions
    declared_meanwhile = []
    once = threading.Lock()

    def build_while_another_thread_declares(steps, **kwargs):
        if once.acquire(blocking=False):  # the first build only (the second step's run builds too)
            declared_meanwhile.append(DataSource("Declared Meanwhile", {"text": ["y"]}, background=True))
            wait(declared_meanwhile[0])  # its whole run happens while this one builds
        return build(steps, **kwargs)

    monkeypatch.setattr(definitions_module, "dreamer_definitions", build_while_another_thread_declares)
    with Pipeline(str(tmp_path / "output"), run=True) as pipeline:
        first = DataSource("First", {"text": ["x"]})
    assert [step.name for step in pipeline.steps] == ["First", "Declared Meanwhile"]
    assert list(first.output["text"]) == ["x"] and list(declared_meanwhile[0].output["text"]) == ["y"]
