"""Steps run out of the orchestrator's process through Dagster Pipes (``pipes_client=``).

- A prompt step through ``dg.PipesSubprocessClient``: the same step.json, metadata, data
  version and check results as in process, the worker's log lines in the run's log, reused
  on the next run without starting a process.
- A trainer through ``Pipeline(pipes_client=...)`` in a real run process: the same model
  files, step.json and metadata as in process; torch never imported by the orchestrator;
  the pipeline's data source stays in process.
- A SIGTERM to ``dagster asset materialize`` reaches the external process; the answers
  received are in the model cache and the re-run asks only for the rest.
- ``k8s_gpu_launch``: the pod ``PipesK8sClient`` would create (GPU limits, command, env,
  the launch spec in the Pipes context, no secret) run as a local process; ``emr_launch``'s
  job flow; settings refused at declaration and at ``definitions()``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg
import pytest

from dreamer_dagster import dreamer_definitions
from dreamer_dagster.cli import load_definitions
from dreamer_dagster.steps import DataSource, ProcessWithPrompt
from dreamer_dagster.steps.step import StepDeclarationError
from dreamer_dagster.testing import FakeLLM
from tests.support.openai_server import FakeOpenAIServer
from tests.support.waiting import HANG_S
from tests.test_interrupted import answered, cached_answers

REPO = Path(__file__).resolve().parents[1]
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00")

PROMPT_PIPELINE = textwrap.dedent(
    """
    import os

    import dagster as dg

    from dreamer_dagster import Pipeline
    from dreamer_dagster.steps import DataSource, ProcessWithPrompt
    from dreamer_dagster.testing import FakeLLM

    client = dg.PipesSubprocessClient() if os.environ.get("PIPES") == "1" else None
    with Pipeline(os.environ["OUTPUT"]) as pipeline:
        source = DataSource("Inputs", {"text": [f"text {i}" for i in range(6)]})
        ProcessWithPrompt(
            "Processed",
            inputs={"inputs": source.output["text"]},
            args={"llm": FakeLLM(), "instruction": "Shorten it."},
            pipes_client=client,
        )
    defs = pipeline.definitions()
    """
)

TRAINER_PIPELINE = textwrap.dedent(
    """
    import os

    import dagster as dg

    from dreamer_dagster import Pipeline
    from dreamer_dagster.steps import DataSource
    from dreamer_dagster.trainers import TrainHFClassifier

    client = dg.PipesSubprocessClient() if os.environ.get("PIPES") == "1" else None
    with Pipeline(os.environ["OUTPUT"], pipes_client=client) as pipeline:  # trainers and local models
        reviews = DataSource(
            "Reviews", {"text": ["I love it", "I hate it", "Great", "Awful"], "label": ["pos", "neg", "pos", "neg"]}
        )
        TrainHFClassifier("Sentiment", model_name=os.environ["MODEL"]).train(
            train_input=reviews.output["text"], train_output=reviews.output["label"], epochs=1, batch_size=4
        )
    defs = pipeline.definitions()
    """
)

#: Materializes a definitions file in a process of its own; prints what the run recorded and
#: whether the run process imported torch.
DRIVER = textwrap.dedent(
    """
    import json, sys

    import dagster as dg

    from dreamer_dagster.cli import load_definitions

    defs = load_definitions(sys.argv[1])
    with dg.instance_for_test() as instance:
        result = dg.materialize(list(defs.assets), resources=dict(defs.resources), instance=instance)
        messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    events = result.get_asset_materialization_events()
    print("RESULT " + json.dumps({
        "success": result.success,
        "torch": "torch" in sys.modules,
        "metadata": {
            event.asset_key.to_user_string(): {k: repr(v) for k, v in event.materialization.metadata.items()}
            for event in events
        },
        "data_versions": {
            event.asset_key.to_user_string(): event.materialization.tags.get("dagster/data_version")
            for event in events
        },
        "messages": messages,
    }))
    """
)


def untimed(value: object) -> str:
    """``value`` as JSON text with every ISO date and time replaced (a card's "Date & Time")."""
    return TIME.sub("<time>", json.dumps(value, sort_keys=True, default=repr))


def record_of(output: Path, key: str) -> dict:
    return json.loads((output / key / "step.json").read_text())


def assert_same_output(folder: Path, expected_folder: Path) -> None:
    """Two step folders hold the same output: step.json alike but for dates; the same files
    with the same contents, but for what differs between any two runs (the date in a card,
    the random ``_fingerprint`` in ``_dataset/state.json``)."""
    record, expected = (
        json.loads((folder / "step.json").read_text()),
        json.loads((expected_folder / "step.json").read_text()),
    )
    assert record["fingerprint"] == expected["fingerprint"]
    unchanged = ("manifest", "data_version")
    assert untimed({k: v for k, v in record.items() if k not in unchanged}) == untimed(
        {k: v for k, v in expected.items() if k not in unchanged}
    )
    files, expected_files = record["manifest"]["files"], expected["manifest"]["files"]
    assert set(files) == set(expected_files)
    differ = {name for name in files if files[name] != expected_files[name]}
    assert differ <= {"_dataset/state.json", "_model/README.md", "_model/data_card.json"}, differ
    for name in differ:
        text, expected_text = (folder / name).read_text(), (expected_folder / name).read_text()
        if name.endswith("state.json"):
            text, expected_text = (
                json.dumps({k: v for k, v in json.loads(t).items() if k != "_fingerprint"})
                for t in (text, expected_text)
            )
        assert TIME.sub("", text) == TIME.sub("", expected_text), name


def materialize_here(script: Path, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    defs = load_definitions(script)
    result = dg.materialize(list(defs.assets), resources=dict(defs.resources), instance=instance)
    assert result.success
    return result


def metadata_of(result: dg.ExecuteInProcessResult, key: str) -> dict:
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == key]
    return dict(event.materialization.metadata)


def check_outcomes(result: dg.ExecuteInProcessResult) -> dict:
    return {
        (e.asset_check_evaluation_data.check_name, e.asset_check_evaluation_data.passed): untimed(
            {k: repr(v) for k, v in e.asset_check_evaluation_data.metadata.items()}
        )
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }


def messages(instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult) -> list[str]:
    return [entry.user_message for entry in instance.all_logs(result.run_id)]


def test_a_prompt_step_through_pipes_writes_what_an_in_process_run_writes(tmp_path, instance, monkeypatch):
    script = tmp_path / "pipeline.py"
    script.write_text(PROMPT_PIPELINE)
    output = tmp_path / "output"
    monkeypatch.setenv("OUTPUT", str(output))
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    in_process = materialize_here(script, instance)
    expected = record_of(output, "processed")
    output.rename(tmp_path / "in_process")

    monkeypatch.setenv("PIPES", "1")
    through_pipes = materialize_here(script, instance)
    record = record_of(output, "processed")
    log = messages(instance, through_pipes)
    assert any("'Processed' runs out of this process through PipesSubprocessClient" in m for m in log)
    assert not any("'Inputs' runs out of this process" in m for m in log)
    # the worker's own log lines came back through Pipes
    assert any("is running in a Dagster Pipes process" in m for m in log)

    assert record["data_version"] == expected["data_version"]
    assert_same_output(output / "processed", tmp_path / "in_process" / "processed")
    assert sorted(p.name for p in (output / "processed").iterdir()) == sorted(
        p.name for p in (tmp_path / "in_process" / "processed").iterdir()
    )
    metadata = metadata_of(through_pipes, "processed")
    assert metadata["dreamer/reused"] == dg.MetadataValue.bool(False)
    in_process_metadata = {
        k: v
        for k, v in metadata_of(in_process, "processed").items()
        if k not in ("dreamer/path", "dagster/uri")
    }
    assert untimed({k: repr(v) for k, v in metadata.items() if k in in_process_metadata}) == untimed(
        {k: repr(v) for k, v in in_process_metadata.items()}
    )
    assert set(metadata) == set(metadata_of(in_process, "processed"))
    (materialization,) = [
        e for e in through_pipes.get_asset_materialization_events() if e.asset_key.path == ["processed"]
    ]
    assert materialization.materialization.tags["dagster/data_version"] == record["data_version"]
    assert check_outcomes(through_pipes) == check_outcomes(in_process)
    assert ("empty_generations", True) in check_outcomes(through_pipes)

    again = materialize_here(script, instance)  # reused: no external process
    assert metadata_of(again, "processed")["dreamer/reused"] == dg.MetadataValue.bool(True)
    assert not any("runs out of this process" in m for m in messages(instance, again))


def run_driver(script: Path, env: dict[str, str]) -> dict:
    completed = subprocess.run(
        [sys.executable, "-c", DRIVER, str(script)],
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        text=True,
        timeout=HANG_S,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    assert completed.returncode == 0 and lines, completed.stderr[-4000:]
    return json.loads(lines[-1][len("RESULT ") :])


@pytest.mark.slow
def test_a_trainer_through_pipes_matches_in_process_and_the_orchestrator_never_imports_torch(
    tmp_path, minilm
):
    script = tmp_path / "pipeline.py"
    script.write_text(TRAINER_PIPELINE)
    output = tmp_path / "output"
    env = {"OUTPUT": str(output), "MODEL": str(minilm)}
    in_process = run_driver(script, env)
    assert in_process["success"] and in_process["torch"]  # the check below means something
    expected = record_of(output, "sentiment")
    output.rename(tmp_path / "in_process")

    through_pipes = run_driver(script, {**env, "PIPES": "1"})
    assert through_pipes["success"]
    assert not through_pipes["torch"]  # the run process never imported torch
    log = through_pipes["messages"]
    assert any("'Sentiment' runs out of this process" in m for m in log)
    assert not any("'Reviews' runs out of this process" in m for m in log)  # a data source stays

    record = record_of(output, "sentiment")
    assert "_model/model.safetensors" in record["manifest"]["files"]
    assert_same_output(output / "sentiment", tmp_path / "in_process" / "sentiment")  # the same weights
    assert through_pipes["data_versions"]["sentiment"] == record["data_version"]
    assert through_pipes["metadata"]["sentiment"]["dreamer/fingerprint"] == repr(
        dg.MetadataValue.text(expected["fingerprint"])
    )
    assert untimed(through_pipes["metadata"]["sentiment"]) == untimed(in_process["metadata"]["sentiment"])


SLOW_PIPELINE = textwrap.dedent(
    """
    import os

    import dagster as dg

    from dreamer_dagster import Pipeline
    from dreamer_dagster.llms import OpenAI
    from dreamer_dagster.steps import DataSource, ProcessWithPrompt

    llm = OpenAI("fake-chat", base_url=os.environ["BASE_URL"], max_concurrency=IN_FLIGHT)
    with Pipeline(os.environ["OUTPUT"]) as pipeline:
        source = DataSource("Inputs", {"text": [f"text {i}" for i in range(PROMPTS)]})
        ProcessWithPrompt(
            "Processed",
            inputs={"inputs": source.output["text"]},
            args={"llm": llm, "instruction": "Shorten it."},
            pipes_client=dg.PipesSubprocessClient(),
        )
    defs = pipeline.definitions()
    """
)
PROMPTS, IN_FLIGHT = 2000, 8


def worker_processes(pid: int) -> list:
    import psutil

    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []
    found = []
    for child in children:
        try:
            if "dreamer_dagster.pipes.worker" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:
            continue
    return found


def test_sigterm_to_the_run_stops_the_external_process_and_keeps_its_answers(tmp_path, monkeypatch):
    import psutil

    script = tmp_path / "pipeline.py"
    script.write_text(SLOW_PIPELINE.replace("PROMPTS", str(PROMPTS)).replace("IN_FLIGHT", str(IN_FLIGHT)))
    home, output = tmp_path / "dagster_home", tmp_path / "output"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    log = tmp_path / "run.log"
    with FakeOpenAIServer(latency=0.05) as server:
        env = {"BASE_URL": server.base_url, "OUTPUT": str(output), "DAGSTER_HOME": str(home)}
        process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "dagster"),
                "asset",
                "materialize",
                "-f",
                script.name,
                "--select",
                "*",
            ],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(REPO), "OPENAI_API_KEY": "sk-loopback", **env},
            stdout=open(log, "w"),  # noqa: SIM115 - closed with the process
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + HANG_S
        while server.request_count < PROMPTS // 4:
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the external process never sent its prompts"
            time.sleep(0.02)
        (worker,) = worker_processes(process.pid)
        at_signal = sum(answered(server).values())
        os.kill(process.pid, signal.SIGTERM)
        try:
            code = process.wait(timeout=HANG_S)
        except subprocess.TimeoutExpired:
            process.kill()
            pytest.fail(log.read_text()[-3000:])
        assert code != 0
        assert not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE  # it was stopped too
        stopped = sum(answered(server).values())
        assert stopped < PROMPTS, "the external process ran on after the signal"
        assert stopped - at_signal <= 2 * IN_FLIGHT
        assert not (output / "processed" / "step.json").exists()
        assert cached_answers(output) >= at_signal - 2 * IN_FLIGHT  # what was answered is kept

        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-loopback")
        monkeypatch.setenv("PYTHONPATH", str(REPO))
        with dg.instance_for_test() as instance:
            materialize_here(script, instance)  # through the external process again
        total = sum(answered(server).values())
        assert total <= PROMPTS + 2 * IN_FLIGHT, total
    assert record_of(output, "processed")["num_rows"] == PROMPTS


K8S_PIPELINE = textwrap.dedent(
    """
    import os

    from dreamer_dagster import DreamerTranslator, Pipeline
    from dreamer_dagster.pipes import k8s_gpu_launch
    from dreamer_dagster.steps import DataSource, ProcessWithPrompt
    from dreamer_dagster.testing import FakeLLM
    from tests.support.pipes_k8s import LocalPodK8sClient

    GPU_POD = k8s_gpu_launch(
        LocalPodK8sClient(), image="registry.example/tweets:1", gpus=1, namespace="ml",
        node_selector={"cloud.google.com/gke-accelerator": "nvidia-l4"},
    )


    class GpuTranslator(DreamerTranslator):
        def get_op_settings(self, step):
            settings = super().get_op_settings(step)
            return settings.replace(pipes_client=GPU_POD) if step.key == "processed" else settings


    with Pipeline(os.environ["OUTPUT"], translator=GpuTranslator()) as pipeline:
        source = DataSource("Inputs", {"text": [f"text {i}" for i in range(4)]})
        ProcessWithPrompt(
            "Processed", inputs={"inputs": source.output["text"]}, args={"llm": FakeLLM(), "instruction": "Go."}
        )
    defs = pipeline.definitions()
    """
)


def test_a_gpu_pod_through_pipes_k8s_client_runs_the_step(tmp_path, instance, monkeypatch):
    """The pod PipesK8sClient would create, from the translator's launch: a GPU node, the
    worker's command, the Pipes context holding the launch spec and no secret; run here."""
    from dagster_pipes import decode_env_var

    from tests.support import pipes_k8s

    script = tmp_path / "pipeline.py"
    script.write_text(K8S_PIPELINE)
    output = tmp_path / "output"
    monkeypatch.setenv("OUTPUT", str(output))
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-for-the-pod")
    pipes_k8s.PODS.clear()
    result = materialize_here(script, instance)
    (launched,) = pipes_k8s.PODS  # only the translator's step went out
    pod, container = launched["pod"], launched["pod"].spec.containers[0]
    assert launched["namespace"] == "ml"
    assert container.image == "registry.example/tweets:1"
    assert container.command == ["python", "-m", "dreamer_dagster.pipes.worker"]
    assert container.resources.limits == {"nvidia.com/gpu": "1"}
    assert [t.key for t in pod.spec.tolerations] == ["nvidia.com/gpu"]
    assert pod.spec.node_selector == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    env = {variable.name: variable.value for variable in container.env}
    assert env["DREAMER_RUN"] == "0"
    assert "sk-not-for-the-pod" not in json.dumps(pod.to_dict(), default=str)
    spec = decode_env_var(env["DAGSTER_PIPES_CONTEXT"])["data"]["extras"]["dreamer_step"]
    assert spec["key"] == "processed" and spec["step"] == "Processed"
    assert spec["fingerprint"] == record_of(output, "processed")["fingerprint"]
    assert spec["output_folder"]["path"] == str(output)
    assert spec["inputs"] == {
        "inputs": {"folder": "inputs", "fingerprint": record_of(output, "inputs")["fingerprint"]}
    }
    assert spec["file"] == str(script.resolve())
    assert sorted(spec["checks"]) == ["duplicate_generations", "empty_generations", "row_count"]
    assert metadata_of(result, "processed")["dagster/row_count"] == dg.MetadataValue.int(4)


def test_emr_launch_runs_the_worker_on_gpu_core_nodes():
    from dagster_aws.pipes import PipesEMRClient, PipesS3MessageReader

    from dreamer_dagster.pipes import emr_launch

    client = PipesEMRClient(
        message_reader=PipesS3MessageReader(bucket="pipes", client=object()), client=object()
    )
    launch = emr_launch(client, instance_type="g5.2xlarge", bootstrap_script="s3://code/install.sh")
    params = launch.run_arguments()["run_job_flow_params"]
    core = [g for g in params["Instances"]["InstanceGroups"] if g["InstanceRole"] == "CORE"]
    assert core == [{"InstanceRole": "CORE", "InstanceType": "g5.2xlarge", "InstanceCount": 1}]
    (step,) = params["Steps"]
    assert step["HadoopJarStep"]["Jar"] == "command-runner.jar"
    assert step["HadoopJarStep"]["Args"] == [
        "env",
        "DREAMER_RUN=0",
        "python3",
        "-m",
        "dreamer_dagster.pipes.worker",
        "--s3-messages",
    ]
    assert params["BootstrapActions"][0]["ScriptBootstrapAction"]["Path"] == "s3://code/install.sh"


def test_bad_pipes_settings_are_refused_early(tmp_path):
    with pytest.raises(StepDeclarationError, match=r"'Src'.*argument 'pipes_client'.*PipesSubprocessClient"):
        DataSource("Src", {"a": [1]}, pipes_client="subprocess")
    source = DataSource("Src", {"a": ["x"]})
    sharded = ProcessWithPrompt(
        "Sharded",
        inputs={"inputs": source.output["a"]},
        args={"llm": FakeLLM(), "instruction": "Go."},
        shards=2,
        pipes_client=dg.PipesSubprocessClient(),
    )
    with pytest.raises(StepDeclarationError, match=r"'Sharded'.*'pipes_client'.*shards= cannot be combined"):
        dreamer_definitions([sharded], output_folder=str(tmp_path / "out"))
    with pytest.raises(TypeError, match="argument 'pipes_client'"):
        dreamer_definitions([source], output_folder=str(tmp_path / "out"), pipes_client=object())


def test_an_external_process_on_other_code_fails_the_step_saying_so(tmp_path, instance, monkeypatch):
    """The worker declares the step from its own environment: another fingerprint there
    (other code, other data) fails the step with the fix, and commits nothing."""
    script = tmp_path / "pipeline.py"
    script.write_text(
        PROMPT_PIPELINE.replace("range(6)", 'range(int(os.environ["ROWS"]))').replace(
            "dg.PipesSubprocessClient()", 'dg.PipesSubprocessClient(env={"ROWS": "3"})'
        )
    )
    output = tmp_path / "output"
    for name, value in {"OUTPUT": str(output), "PYTHONPATH": str(REPO), "PIPES": "1", "ROWS": "6"}.items():
        monkeypatch.setenv(name, value)
    defs = load_definitions(script)
    result = dg.materialize(
        list(defs.assets), resources=dict(defs.resources), instance=instance, raise_on_error=False
    )
    assert not result.success
    errors = " ".join(  # the worker's exception, reported through Pipes
        str(entry.dagster_event.engine_event_data.error)
        for entry in instance.all_logs(result.run_id)
        if entry.dagster_event and entry.dagster_event.event_type_value == "ENGINE_EVENT"
    )
    assert (
        "declares it with fingerprint" in errors
        and "Fix: run the external process on the same code" in errors
    )
    assert not (output / "processed" / "step.json").exists()
    steps = [
        e for e in result.all_events if e.step_key == "processed" and e.event_type_value.startswith("STEP_")
    ]
    assert "STEP_UP_FOR_RETRY" not in {e.event_type_value for e in steps}  # a retry cannot fix it
