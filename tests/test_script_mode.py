"""One file, two modes: a ``Pipeline`` block run as a script materializes its steps through
Dagster and gives real data, exports and publishing inside the block; loaded as Dagster
definitions, the same block only declares, data access says what works instead, and
exports become export assets. DataDreamer's session arguments (``verbose``,
``log_level``, ``log_date``, ``hf_log``, ``":memory:"``) are honoured."""

from __future__ import annotations

import json
import logging
import os
import runpy
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import pytest

from dreamer_dagster import Pipeline
from dreamer_dagster.cli import load_definitions, load_module
from dreamer_dagster.errors import OutputNotAvailableError
from dreamer_dagster.llms import OpenAI
from dreamer_dagster.staleness import stale_statuses
from dreamer_dagster.steps import DataSource, ProcessWithPrompt, Step
from dreamer_dagster.steps.export_step import ExportStep
from tests.support.waiting import HANG_S


@pytest.fixture(autouse=True)
def _runs_in_the_shared_home(script_home):
    """Script-mode blocks here record their runs in one shared instance (the tests that
    check the instance under the output folder unset DAGSTER_HOME)."""


SCRIPT = textwrap.dedent(
    """
    import os
    from dreamer_dagster import Pipeline
    from dreamer_dagster.llms import OpenAI
    from dreamer_dagster.steps import DataSource, ProcessWithPrompt

    llm = OpenAI("fake-chat", base_url=os.environ["BASE_URL"])
    with Pipeline(os.environ["OUTPUT"]) as pipeline:
        topics = DataSource("Topics", {"text": ["rivers", "bridges", "trains"]})
        first = topics.output["text"][0]
        compare = ProcessWithPrompt(
            "Compare",
            inputs={"inputs": topics.output["text"]},
            args={"llm": llm, "instruction": f"Compare with: {first}"},
        )
        SEEN = {"rows": len(compare.output), "first": compare.output["generations"][0],
                "num_rows": compare.output.num_rows, "iterated": [row["inputs"] for row in compare.output],
                "head": compare.head(2).to_dict("list"), "path": compare.export_to_json("compare.json"),
                "compared": (first == "rivers", first != "rivers", first.upper())}
    defs = pipeline.definitions()
    """
)


@pytest.fixture
def script(tmp_path, openai_server, monkeypatch):
    path = tmp_path / "pipeline.py"
    path.write_text(SCRIPT)
    monkeypatch.setenv("BASE_URL", openai_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-loopback")
    monkeypatch.setenv("OUTPUT", str(tmp_path / "output"))
    monkeypatch.delenv("DREAMER_RUN", raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    return path


def test_run_as_main_the_block_materializes_and_data_is_real(script, tmp_path, openai_server, capsys):
    namespace = runpy.run_path(str(script), run_name="__main__")
    seen = namespace["SEEN"]
    assert seen["rows"] == 3 and seen["num_rows"] == 3
    assert seen["iterated"] == ["rivers", "bridges", "trains"]
    assert seen["head"]["inputs"] == ["rivers", "bridges"]
    assert seen["compared"][:2] == (True, False) and str(seen["compared"][2]) == "RIVERS"
    # The f-string formatted the real value: the prompt says "rivers", never "Deferred(".
    prompts = [r["body"]["messages"][-1]["content"] for r in openai_server.requests]
    assert prompts and all("Compare with: rivers" in p and "Deferred" not in p for p in prompts)
    assert seen["first"].startswith("Echo: ")
    assert seen["path"] == "compare.json"
    assert [json.loads(line)["inputs"] for line in (tmp_path / "compare.json").read_text().splitlines()] == [
        "rivers",
        "bridges",
        "trains",
    ]
    log = capsys.readouterr().err
    for name in ("Topics", "Compare", "Compare (export_to_json)"):
        assert f"Step {name!r} is running." in log
        assert f"Step {name!r} finished and is saved to disk" in log
    # The runs are Dagster runs, in the instance under the output folder.
    instance = dg.DagsterInstance.from_config(str(tmp_path / "output" / ".dagster"))
    runs = instance.get_runs()
    keys = {key.to_user_string() for run in runs for key in (run.asset_selection or [])}
    assert {"topics", "compare", "compare_export_to_json"} <= keys
    instance.dispose()

    # Run again: everything is reused, no model call is paid twice.
    calls = openai_server.request_count
    again = runpy.run_path(str(script), run_name="__main__")["SEEN"]
    assert again["first"] == seen["first"] and openai_server.request_count == calls
    assert "results loaded from the output folder" in capsys.readouterr().err


def test_loaded_as_definitions_nothing_runs_and_data_access_says_what_works(script, tmp_path, openai_server):
    with pytest.raises(OutputNotAvailableError) as raised:
        load_definitions(script)
    message = str(raised.value)
    # The first data access in the block is the f-string: it names the step and the fix.
    assert "Step 'Topics' (DataSource)" in message
    assert "formatting Topics.output['text'][0] into text" in message
    assert "being loaded as Dagster definitions" in message and "step.output['column']" in message
    assert "run the file as a script (python pipeline.py)" in message
    assert openai_server.request_count == 0
    assert not (tmp_path / "output").exists()


def test_definitions_mode_data_access_and_formatting_raise(tmp_path):
    with Pipeline(str(tmp_path / "output"), run=False) as pipeline:
        source = DataSource("Source", {"text": ["a", "b"]})
        deferred = source.output["text"][0]
        for access in (
            lambda: len(source.output),
            lambda: list(source.output),
            lambda: source.output[0],
            lambda: source.output.num_rows,
            lambda: source.output.dataset,
            lambda: source.dataset,
            lambda: source.head(),
            lambda: len(source.output["text"]),
            lambda: list(source.output["text"]),
            lambda: str(deferred),
            lambda: f"{deferred}",
            lambda: "prefix " + deferred,
            lambda: deferred == "a",
            lambda: deferred != "a",
            lambda: source.export_to_dict(),
            lambda: source.export_to_list(),
            lambda: source.data_card(),
        ):
            with pytest.raises(OutputNotAvailableError, match="Step 'Source' \\(DataSource\\)"):
                access()
        assert repr(deferred) == "Deferred(Source.output['text'][0])"  # repr never computes
    assert pipeline.steps == [source]


def test_exports_in_definitions_mode_are_export_assets_unsynced_with_their_step(tmp_path, instance):
    output = tmp_path / "output"

    def declare(word: str):
        with Pipeline(str(output), run=False) as pipeline:
            source = DataSource("Source", {"text": [word, "b", "c"]})
            export = source.export_to_json(str(tmp_path / "rows.json"), train_size=2, test_size=1)
        return pipeline, source, export

    pipeline, source, export = declare("a")
    assert isinstance(export, ExportStep) and export.name == "Source (export_to_json)"
    assert export.dagster_kinds() == {"export"}
    defs = pipeline.definitions()
    graph = defs.resolve_asset_graph()
    assert graph.get(export.asset_key).parent_keys == {source.asset_key}
    assert dg.materialize(list(defs.assets), instance=instance, resources=dict(defs.resources)).success
    written = json.loads(export.finished_output()[0][0]["result"])
    assert set(written) == {"train", "test"} and Path(written["train"]).is_file()
    assert statuses(defs, instance) == {"source": False, "source_export_to_json": False}

    # The source changes: its export is unsynced before anything runs.
    changed, _, changed_export = declare("z")
    assert changed_export.fingerprint != export.fingerprint
    assert statuses(changed.definitions(), instance) == {"source": True, "source_export_to_json": True}

    # Files removed by hand are written again, though the export is otherwise finished.
    Path(written["train"]).unlink()
    assert export.force
    assert dg.materialize(list(defs.assets), instance=instance, resources=dict(defs.resources)).success
    assert Path(written["train"]).is_file() and not export.force


def statuses(defs: dg.Definitions, instance: dg.DagsterInstance) -> dict[str, bool]:
    return {status.key.to_user_string(): status.needs_run for status in stale_statuses(defs, instance)}


def test_publish_reads_hf_token_at_run_time_and_never_stores_a_token(
    tmp_path, instance, openai_server, monkeypatch
):
    from huggingface_hub import constants

    from tests.support.hf_hub_server import add_hub_routes

    hub = add_hub_routes(openai_server)
    monkeypatch.setattr(constants, "ENDPOINT", openai_server.base_url.removesuffix("/v1"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with Pipeline(str(tmp_path / "output"), run=False) as pipeline:
        source = DataSource("Source", {"text": ["a", "b"]})
        publish = source.publish_to_hf_hub("someone/rows", private=True)
    defs = pipeline.definitions()
    monkeypatch.setenv("HF_TOKEN", "hf_read_at_run_time")  # set after declaring
    assert dg.materialize(list(defs.assets), instance=instance, resources=dict(defs.resources)).success
    assert "Bearer hf_read_at_run_time" in hub.authorizations
    assert hub.created[("datasets", "someone/rows")] is True
    assert "data/train-00000-of-00001.parquet" in hub.repo_files("datasets", "someone/rows")
    assert publish.result() == "https://huggingface.co/datasets/someone/rows"

    # In a running script, publishing returns the URL; a token= given in the call is used
    # and never stored.
    with Pipeline(str(tmp_path / "output"), run=True):
        source = DataSource("Source", {"text": ["a", "b"]})
        url = source.publish_to_hf_hub("someone/other", token="hf_given_in_the_call")
    assert url == "https://huggingface.co/datasets/someone/other"
    assert "Bearer hf_given_in_the_call" in hub.authorizations
    assert hub.created[("datasets", "someone/other")] is False
    for path in (tmp_path / "output").rglob("*"):
        data = path.read_bytes() if path.is_file() else b""
        assert b"hf_read_at_run_time" not in data and b"hf_given_in_the_call" not in data, path


def test_run_mode_rules(tmp_path, monkeypatch):
    monkeypatch.delenv("DREAMER_RUN", raising=False)
    assert Pipeline(str(tmp_path)).script_mode is False  # a test module is not __main__
    assert Pipeline(str(tmp_path), run=True).script_mode is True
    monkeypatch.setenv("DREAMER_RUN", "1")
    assert Pipeline(str(tmp_path)).script_mode is True
    assert Pipeline(str(tmp_path), run=False).script_mode is False  # run= wins
    monkeypatch.setenv("DREAMER_RUN", "0")
    file = tmp_path / "main.py"
    file.write_text("from dreamer_dagster import Pipeline\nMODE = Pipeline('out').script_mode\n")
    assert runpy.run_path(str(file), run_name="__main__")["MODE"] is False  # forced off
    monkeypatch.delenv("DREAMER_RUN")
    assert runpy.run_path(str(file), run_name="__main__")["MODE"] is True
    assert load_module(file).MODE is False  # how Dagster imports a file
    monkeypatch.setenv("DREAMER_RUN", "maybe")
    with pytest.raises(ValueError, match="DREAMER_RUN='maybe': use 1"):
        Pipeline(str(tmp_path))


def test_session_arguments_logging(tmp_path, capsys):
    def run(**session):
        with Pipeline(str(tmp_path / "output"), run=True, **session):
            DataSource("Quiet", {"x": [1]})
            DataSource("Loud", {"x": [2]}, verbose=True)
        return capsys.readouterr().err

    plain = run()
    assert "[ dreamer_dagster ] Step 'Quiet' is running." in plain
    dated = run(log_date=True)
    assert dated.splitlines()[0].startswith("[20") and "[ dreamer_dagster ] Initialized." in dated
    silent = run(verbose=False)
    assert "Quiet" not in silent and "Initialized" not in silent
    assert "Reused the finished output of 'Loud'" in silent  # the step's own verbose=True wins
    warnings_only = run(log_level=logging.WARNING)
    assert "Quiet" not in warnings_only and "Initialized" not in warnings_only


class LogLevels(Step):
    """Records, while it runs, the level of the transformers logger and the datasets bars."""

    def setup(self):
        self.register_arg("tag")
        self.register_output("transformers_level")
        self.register_output("datasets_bars")

    def run(self):
        import datasets

        level = logging.getLogger("transformers").getEffectiveLevel()
        return {"transformers_level": [level], "datasets_bars": [datasets.is_progress_bar_enabled()]}


def test_hf_log_quiets_hugging_face_logs_only_while_steps_run(tmp_path):
    import datasets

    before = logging.getLogger("transformers").getEffectiveLevel(), datasets.is_progress_bar_enabled()
    for hf_log, expected in ((False, (logging.ERROR, False)), (True, before)):
        with Pipeline(str(tmp_path / "output"), hf_log=hf_log, run=True):
            step = LogLevels(f"Levels {hf_log}", args={"tag": hf_log})
        row = step.output[0]
        assert (row["transformers_level"], row["datasets_bars"]) == expected
    assert (
        logging.getLogger("transformers").getEffectiveLevel(),
        datasets.is_progress_bar_enabled(),
    ) == before


def test_in_memory_runs_in_a_temporary_folder_removed_at_exit(tmp_path):
    code = textwrap.dedent(
        """
        from dreamer_dagster import Pipeline
        from dreamer_dagster.steps import DataSource
        with Pipeline(":memory:") as pipeline:
            source = DataSource("Source", {"x": [1, 2]})
            print(pipeline.output_folder, len(source.output), Pipeline.initialized(), flush=True)
            try:
                Pipeline.get_output_folder_path()
            except RuntimeError as error:
                print("in-memory:", error, flush=True)
        print(source.output["x"][1], Pipeline.initialized())
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"},
        capture_output=True,
        text=True,
        timeout=HANG_S,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    folder, rows, initialized = result.stdout.splitlines()[0].split()
    assert rows == "2" and initialized == "True" and "dreamer-memory-" in folder
    assert "in-memory: The pipeline is running in-memory" in result.stdout
    assert result.stdout.splitlines()[-1] == "2 False"  # readable after the block, as in DataDreamer
    assert not Path(folder).exists()  # removed when the process ended
    assert not (tmp_path / ":memory:").exists() and list(tmp_path.iterdir()) == []


def test_start_stop_and_the_open_block(tmp_path):
    pipeline = Pipeline(str(tmp_path / "output"), run=True)
    assert not Pipeline.initialized()
    pipeline.start()
    assert Pipeline.initialized() and Pipeline.get_output_folder_path() == str(tmp_path / "output")
    source = DataSource("Source", {"x": [1, 2, 3]})
    pipeline.stop()
    assert not Pipeline.initialized()
    assert source.progress == 1.0 and list(source.output["x"]) == [1, 2, 3]


def test_save_num_shards_and_num_proc_reach_save_to_disk(tmp_path):
    with Pipeline(str(tmp_path / "output"), run=True):
        sharded = DataSource("Sharded", {"x": list(range(10))}, save_num_shards=3, save_num_proc=1)
        plain = DataSource("Plain", {"x": list(range(10))})
    assert len(list(Path(sharded.dataset_path).glob("*.arrow"))) == 3
    assert len(list(Path(plain.dataset_path).glob("*.arrow"))) == 1
    assert list(sharded.output["x"]) == list(range(10))
    same = {"x": list(range(10))}
    assert DataSource("S", same, save_num_shards=3).fingerprint != DataSource("S", same).fingerprint


def test_wait_concurrent_background_and_lazy_are_accepted(tmp_path, openai_server, monkeypatch):
    from dreamer_dagster.steps import concurrent, wait

    monkeypatch.setenv("OPENAI_API_KEY", "sk-loopback")
    llm = OpenAI("fake-chat", base_url=openai_server.base_url)
    with Pipeline(str(tmp_path / "output"), run=True) as pipeline:
        made = concurrent(
            lambda: DataSource("One", {"text": ["x"]}, background=True),
            lambda: DataSource("Two", {"text": ["y"]}, background=True),
        )
        assert [step.name for step in made] == ["One", "Two"]
        wait(*made)
        assert made[0].progress == 1.0 and made[1].progress == 1.0  # materialized by wait()
        lazy = ProcessWithPrompt(
            "Lazy",
            inputs={"inputs": made[0].output["text"]},
            args={"llm": llm, "instruction": "Echo.", "lazy": True},
        )
    assert (
        lazy.fingerprint
        == ProcessWithPrompt(
            "Lazy",
            inputs={"inputs": made[0].output["text"]},
            args={"llm": llm, "instruction": "Echo.", "lazy": False},
        ).fingerprint
    )
    assert len(pipeline.steps) == 3 and lazy.output["generations"][0].startswith("Echo: ")
    with pytest.raises(TypeError, match="must be steps"):
        wait("not a step")


ROUND_TRIP = textwrap.dedent(
    """
    import os
    from dreamer_dagster import Pipeline
    from dreamer_dagster.llms import OpenAI
    from dreamer_dagster.steps import DataSource, ProcessWithPrompt

    llm = OpenAI("fake-chat", base_url=os.environ["BASE_URL"])
    with Pipeline("output") as pipeline:
        topics = DataSource("Topics", {"text": ["rivers", "bridges", "trains"]})
        compare = ProcessWithPrompt(
            "Compare",
            inputs={"inputs": topics.output["text"]},
            args={"llm": llm, "instruction": "Compare with: " + os.environ["WORD"]},
        )
        print("EXPORTED", compare.export_to_json("compare.json"), flush=True)
    defs = pipeline.definitions()
    """
)


def test_python_script_and_dagster_asset_materialize_agree_on_one_file(tmp_path, openai_server):
    """`python pipeline.py` runs the block through Dagster (the runs land in DAGSTER_HOME);
    `dagster asset materialize` on the same file then finds every step and the export up to
    date and pays no model call; a change made in the file is run by either."""
    (tmp_path / "pipeline.py").write_text(ROUND_TRIP)
    home = tmp_path / "dagster_home"
    env = {k: v for k, v in os.environ.items() if k != "DREAMER_RUN"}
    env.update(
        BASE_URL=openai_server.base_url,
        OPENAI_API_KEY="sk-loopback",
        DAGSTER_HOME=str(home),
        WORD="rivers",
        PYTHONPATH=str(Path(__file__).resolve().parents[1]),
    )

    def run(*command: str, **extra: str) -> str:
        result = subprocess.run(
            list(command), cwd=tmp_path, env={**env, **extra}, capture_output=True, text=True, timeout=HANG_S
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        return result.stdout + result.stderr

    script = run(sys.executable, "pipeline.py")
    assert "EXPORTED compare.json" in script
    assert "[ dreamer_dagster ] Step 'Compare' is running." in script
    assert (tmp_path / "compare.json").read_text().count('"inputs"') == 3
    calls = openai_server.request_count
    assert calls == 3
    instance = dg.DagsterInstance.from_config(str(home))
    selected = {key.to_user_string() for run_ in instance.get_runs() for key in run_.asset_selection or []}
    assert selected == {"topics", "compare", "compare_export_to_json"}
    instance.dispose()

    dagster = str(Path(sys.executable).parent / "dagster")
    cli = run(dagster, "asset", "materialize", "-f", "pipeline.py", "--select", "*")
    # Loaded as definitions, the export call declared an export asset and ran nothing.
    assert "EXPORTED ExportStep('Compare (export_to_json)')" in cli and "EXPORTED compare.json" not in cli
    assert "results loaded from the output folder" in cli and "is running" not in cli
    assert openai_server.request_count == calls  # nothing paid twice

    # The file changes: under `dagster asset materialize`, only the changed step and its export run.
    cli = run(dagster, "asset", "materialize", "-f", "pipeline.py", "--select", "*", WORD="bridges")
    assert openai_server.request_count == calls + 3
    assert "Reused the finished output of 'Topics'" in cli
    assert "Step 'Compare (export_to_json)' is running" in cli
    # ... and the script, run again with that change, finds everything done.
    again = run(sys.executable, "pipeline.py", WORD="bridges")
    assert "is running" not in again and openai_server.request_count == calls + 3
