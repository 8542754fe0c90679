"""Two `dagster asset materialize` processes at once, against the loopback server (a thread of
the test process): a pool of limit 1 keeps requests in flight within one model's
max_concurrency; two runs of one step never work in its folder together, and no call is paid
twice. Also the step lock itself: exclusive, named, and gone with a killed holder.

The pool test runs on PostgreSQL instance storage (deploy/dagster-postgres.yaml), as a
deployment with pools should: on SQLite, Dagster's slot claim is a SELECT then an UPDATE by
id with no lock (``SqlEventLogStorage._claim_concurrency_slot``; ``FOR UPDATE`` means nothing
there), so two runs claiming at the same instant can both get the one slot. Its server holds every
answer until the test has seen what it waits for (both runs in flight; one in flight and the
other blocked by the pool), so the test does not depend on how fast two processes start."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import datasets
import pytest

from dreamer_dagster.output_folder import OutputFolder, StepLocked
from tests.support.openai_server import FakeOpenAIServer
from tests.support.services import EXTRAS_FIX, missing_service, running_postgres
from tests.support.waiting import HANG_S

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]
MAX_CONCURRENCY = 4

DEFINITIONS = textwrap.dedent(
    """
    import os

    from dreamer_dagster import Pipeline
    from dreamer_dagster.llms import OpenAI
    from dreamer_dagster.steps import DataSource, ProcessWithPrompt

    llm = OpenAI("fake-chat", base_url=os.environ["FAKE_OPENAI_BASE_URL"], max_concurrency={max_concurrency}, timeout=600)

    with Pipeline({output!r}) as pipeline:
        source = DataSource("Inputs", {{"text": [f"text {{i}}" for i in range({rows})]}})
        for name in ("Step A", "Step B"):
            ProcessWithPrompt(name, inputs={{"inputs": source.output["text"]}}, args={{"llm": llm, "instruction": name}})

    defs = pipeline.definitions()
    """
)


@pytest.fixture
def server():
    with FakeOpenAIServer(latency=0.2) as fake:
        yield fake


def setup(
    folder: Path, server: FakeOpenAIServer, rows: int, postgres_url: str | None = None
) -> tuple[Path, dict]:
    definitions = folder / "definitions.py"
    definitions.write_text(
        DEFINITIONS.format(output=str(folder / "output"), rows=rows, max_concurrency=MAX_CONCURRENCY)
    )
    home = folder / "dagster_home"
    home.mkdir()
    extra = {}
    if postgres_url is not None:
        shutil.copy(REPO / "deploy" / "dagster-postgres.yaml", home / "dagster.yaml")
        extra["DAGSTER_POSTGRES_URL"] = postgres_url
    env = {
        **os.environ,
        **extra,
        "DAGSTER_HOME": str(home),
        "FAKE_OPENAI_BASE_URL": server.base_url,
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(REPO),
    }
    dagster(["asset", "materialize", "-f", str(definitions), "--select", "inputs"], folder, env)
    return definitions, env


def dagster(args: list[str], folder: Path, env: dict) -> str:
    result = subprocess.run(
        [str(BIN / "dagster"), *args], cwd=folder, env=env, capture_output=True, text=True, timeout=HANG_S
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def together(commands: list[list[str]], folder: Path, env: dict) -> list[str]:
    """Start the ``dagster`` commands at once; wait for all; each must succeed."""
    return finish(start(commands, folder, env))


def test_a_pool_of_limit_one_keeps_two_runs_within_one_models_concurrency(tmp_path):
    pytest.importorskip(
        "dagster_postgres", reason=missing_service("dagster-postgres is not installed", EXTRAS_FIX)
    )
    with running_postgres() as url, GatedServer() as server:
        _pool_of_one(tmp_path, server, url)


class GatedServer(FakeOpenAIServer):
    """Holds every answer until the test opens the gate, so what overlaps is decided by the
    test, not by how fast two ``dagster`` processes start on a busy machine."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def _route(self, request):
        self.gate.wait(HANG_S)
        return super()._route(request)


def _pool_of_one(tmp_path: Path, server: GatedServer, postgres_url: str) -> None:
    rows = 12
    server.gate.set()
    definitions, env = setup(tmp_path, server, rows, postgres_url)
    pool = f"openai_127_0_0_1_{server.port}"
    materialize = [
        ["asset", "materialize", "-f", str(definitions), "--select", key] for key in ("step_a", "step_b")
    ]

    # Without a limit on the pool, both runs reach the server while its answers are held...
    server.reset()
    server.gate.clear()
    runs = start(materialize, tmp_path, env)
    wait_until(lambda: server.in_flight > MAX_CONCURRENCY, runs, "both runs to have requests in flight")
    server.gate.set()
    finish(runs)
    assert server.stats()["requests"] == 2 * rows

    # ...with the pool set to 1, the second run waits for the slot while the first one's
    # answers are held: never more than one model's max_concurrency in flight.
    dagster(["instance", "concurrency", "set", pool, "1"], tmp_path, env)
    _forget_outputs(tmp_path / "output", ["step-a", "step-b"])  # so both run and call the server again
    server.reset()
    server.gate.clear()
    runs = start(materialize, tmp_path, env)
    blocked = f"blocked by limit for pool {pool}"

    def one_at_the_server_the_other_blocked() -> bool:
        assert server.in_flight <= MAX_CONCURRENCY, "both runs have requests in flight"
        return server.in_flight > 0 and any(blocked in log.read_text() for _, log in runs)

    wait_until(one_at_the_server_the_other_blocked, runs, f"one run at the server and the other {blocked!r}")
    server.gate.set()
    finish(runs)
    assert server.stats()["requests"] == 2 * rows
    assert server.max_in_flight <= MAX_CONCURRENCY


def start(commands: list[list[str]], folder: Path, env: dict) -> list[tuple[subprocess.Popen, Path]]:
    """Start the ``dagster`` commands at once, each writing its output to a log file."""
    runs = []
    for number, args in enumerate(commands):
        log = folder / f"run-{number}.log"
        with log.open("w") as stream:
            process = subprocess.Popen(
                [str(BIN / "dagster"), *args], cwd=folder, env=env, stdout=stream, stderr=subprocess.STDOUT
            )
        runs.append((process, log))
    return runs


def wait_until(condition, runs: list[tuple[subprocess.Popen, Path]], what: str) -> None:
    """Wait for ``condition`` while the runs are alive; a run that ends first fails the test."""
    deadline = time.monotonic() + HANG_S
    try:
        while not condition():
            ended = [log for process, log in runs if process.poll() is not None]
            assert not ended, f"waiting for {what}, a run ended: " + ended[0].read_text()[-3000:]
            assert time.monotonic() < deadline, f"waited {HANG_S} s for {what}"
            time.sleep(0.1)
    except AssertionError:
        for process, _ in runs:
            process.kill()
        raise


def finish(runs: list[tuple[subprocess.Popen, Path]]) -> list[str]:
    outputs = []
    for process, log in runs:
        process.wait(timeout=HANG_S)
        output = log.read_text()
        assert process.returncode == 0, output[-3000:]
        outputs.append(output)
    return outputs


def test_two_runs_of_one_step_share_one_folder_and_pay_each_call_once(tmp_path, server):
    rows = 40  # 40 prompts x 0.2 s / 4 in flight: 2 s, while the other run waits
    definitions, env = setup(tmp_path, server, rows)
    server.reset()
    outputs = together(
        [["asset", "materialize", "-f", str(definitions), "--select", "step_a"]] * 2, tmp_path, env
    )
    assert server.stats()["requests"] == rows  # no call paid twice
    joined = "\n".join(outputs)
    assert "Reused the finished output of 'Step A'" in joined
    assert sum("Reused the finished output of 'Step A'" in output for output in outputs) == 1

    output = tmp_path / "output" / "step-a"
    record = json.loads((output / "step.json").read_text())
    dataset = datasets.load_from_disk(str(output / "_dataset"))
    assert record["num_rows"] == dataset.num_rows == rows
    assert [row["inputs"] for row in dataset] == [f"text {i}" for i in range(rows)]
    assert not (output / "_in_progress.json").exists() and not (tmp_path / "output" / "_backups").exists()
    assert list((tmp_path / "output" / ".staging").iterdir()) == []


def test_the_step_lock_names_its_holder_and_dies_with_it(tmp_path):
    folder = OutputFolder(tmp_path / "output").step("held_step")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from dreamer_dagster.output_folder import OutputFolder; "
            "lock = OutputFolder(Path(sys.argv[1])).step('held_step').lock(); lock.acquire('run abc123 (test)'); "
            "print('HELD', flush=True); time.sleep(60)",
            str(tmp_path / "output"),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert holder.stdout.readline().strip() == "HELD"
        lock = folder.lock()
        assert lock.holder() == "run abc123 (test)"
        with pytest.raises(
            StepLocked, match=r"Step 'held_step' is locked by another run \(run abc123 \(test\)\)"
        ):
            lock.acquire("run def456", timeout=0)
        waited = []
        with pytest.raises(StepLocked, match="after waiting"):
            lock.acquire("run def456", timeout=1.0, on_wait=waited.append)
        assert waited == ["run abc123 (test)"]
        holder.send_signal(signal.SIGKILL)  # a dead process leaves no lock behind
        holder.wait(timeout=HANG_S)
        lock.acquire("run def456", timeout=0)  # free at once: no wait
        assert lock.holder() == "run def456"
        lock.release()
    finally:
        holder.kill()


def _forget_outputs(output: Path, folders: list[str]) -> None:
    """Delete step folders and the model cache: the next runs must call the server again."""
    import shutil

    for folder in folders:
        shutil.rmtree(output / folder)
    shutil.rmtree(output / ".cache")
