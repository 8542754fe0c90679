"""User flows through the ``dagster`` CLI (a subprocess) against the loopback OpenAI server:
a SIGKILLed run resumes with only the missing requests, a wiped instance re-materializes
with none, and the API key never lands on disk or in the logs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import datasets
import pytest

from tests.support.openai_server import FakeOpenAIServer
from tests.support.waiting import HANG_S

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]

DEFINITIONS = textwrap.dedent(
    """
    import os

    import dagster as dg

    from dreamer_dagster import Pipeline
    from dreamer_dagster.llms import OpenAI
    from dreamer_dagster.steps import DataSource, ProcessWithPrompt

    llm = OpenAI("fake-chat", base_url=os.environ["FAKE_OPENAI_BASE_URL"], max_concurrency=2)

    with Pipeline({output!r}) as pipeline:
        source = DataSource("Inputs", {{"text": [f"text {{i}}" for i in range({rows})]}})
        processed = ProcessWithPrompt(
            "Processed",
            inputs={{"inputs": source.output["text"]}},
            args={{"llm": llm, "instruction": {instruction!r}}},
        )

    defs = pipeline.definitions({executor})
    """
)


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    """The loopback server in a thread of the test process; the CLI subprocess calls it."""
    with FakeOpenAIServer() as fake:
        yield fake


def write_definitions(
    folder: Path, rows: int, instruction: str = "Shorten it.", multiprocess: bool = False
) -> Path:
    """A pipeline file; the in-process executor unless ``multiprocess`` (Dagster's default)."""
    path = folder / "definitions.py"
    executor = "" if multiprocess else "executor=dg.in_process_executor"
    text = DEFINITIONS.format(
        output=str(folder / "output"), rows=rows, instruction=instruction, executor=executor
    )
    path.write_text(text)
    return path


def cli_env(folder: Path, server: FakeOpenAIServer, api_key: str = "test-key") -> dict[str, str]:
    home = folder / "dagster_home"
    home.mkdir(exist_ok=True)
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "FAKE_OPENAI_BASE_URL": server.base_url,
        "OPENAI_API_KEY": api_key,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "PYTHONPATH": str(REPO),
    }


def materialize_command(definitions: Path) -> list[str]:
    return [str(BIN / "dagster"), "asset", "materialize", "--select", "*", "-f", str(definitions)]


def run_cli(
    args: list[str], folder: Path, env: dict[str, str], ok: bool = True
) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=folder, env=env, capture_output=True, text=True, timeout=HANG_S)
    if ok:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def processed_rows(folder: Path) -> dict[str, list]:
    return datasets.load_from_disk(str(folder / "output" / "processed" / "_dataset")).to_dict()


def test_sigkill_mid_step_then_rerun_requests_only_the_missing(tmp_path, server):
    total, concurrency = 24, 2
    definitions = write_definitions(tmp_path, total, multiprocess=True)
    env = cli_env(tmp_path, server)
    server.latency = 0.25  # 24 requests, 2 at a time: about 3 s of model calls

    with open(tmp_path / "killed.log", "w") as log:
        process = subprocess.Popen(
            materialize_command(definitions),
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + HANG_S
        while server.request_count < 8 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.poll() is None, "the run ended before it could be killed"
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=HANG_S)
    first = server.request_count
    assert 8 <= first < total
    assert not (tmp_path / "output" / "processed" / "step.json").exists()

    server.reset()
    server.latency = 0.0
    run_cli(materialize_command(definitions), tmp_path, env)
    second = server.request_count
    print(f"killed after {first} requests received of {total}; the re-run made {second}")
    # Only what was not committed is asked again: at most the requests in flight (and
    # finished but not yet collected) when the run died, on top of the never-sent ones.
    assert total - first <= second <= total - first + 2 * concurrency
    assert second < total
    data = processed_rows(tmp_path)
    assert data["inputs"] == [f"text {i}" for i in range(total)]
    assert data["generations"] == [f"Echo: {prompt}" for prompt in data["prompts"]]


def test_wiped_instance_rematerializes_with_zero_requests(tmp_path, server):
    definitions = write_definitions(tmp_path, 5)
    env = cli_env(tmp_path, server)
    run_cli(materialize_command(definitions), tmp_path, env)
    assert server.request_count == 5
    before = processed_rows(tmp_path)

    run_cli([str(BIN / "dagster"), "asset", "wipe", "--all", "--noprompt"], tmp_path, env)
    server.reset()
    result = run_cli(materialize_command(definitions), tmp_path, env)
    assert server.request_count == 0
    assert "Reused the finished output of 'Processed'" in result.stdout + result.stderr
    assert processed_rows(tmp_path) == before

    # A changed instruction re-runs the step: 5 new calls, none for the unchanged source.
    server.reset()
    write_definitions(tmp_path, 5, instruction="Lengthen it.")
    run_cli(materialize_command(definitions), tmp_path, env)
    assert server.request_count == 5


def test_api_key_never_reaches_disk_or_logs(tmp_path, server):
    secret = f"sk-test-{uuid.uuid4().hex}"
    definitions = write_definitions(tmp_path, 4)
    env = cli_env(tmp_path, server, api_key=secret)
    outputs = [run_cli(materialize_command(definitions), tmp_path, env)]
    # The key was really used...
    assert server.requests[0]["headers"]["authorization"] == f"Bearer {secret}"

    # ...also by a run that the server refuses with a 401.
    server.fail_next(401, 100)
    write_definitions(tmp_path, 4, instruction="Refused.")
    refused = run_cli(materialize_command(definitions), tmp_path, env, ok=False)
    assert refused.returncode != 0
    assert "'Processed'" in refused.stdout + refused.stderr and "fake-chat" in refused.stdout + refused.stderr
    outputs.append(refused)

    needle = secret.encode()
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    # What is searched: the output folder (datasets, step.json, the model cache) and
    # DAGSTER_HOME (run and event storage, compute logs).
    assert list((tmp_path / "output" / ".cache").glob("*.db"))
    assert [path for path in files if "dagster_home" in path.parts]
    assert [str(path) for path in files if needle in path.read_bytes()] == []
    for result in outputs:
        assert secret not in result.stdout and secret not in result.stderr
