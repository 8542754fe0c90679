"""Nothing answered is lost, nothing is paid twice: whatever ends a step early (an exception in
``post_process`` or a filter function, a failed write, SIGTERM / SIGINT from Dagster's run
termination), the answers already received are in the model cache, so the fixed re-run pays
only for what was never answered. Answers are counted at the loopback server."""

from __future__ import annotations

import errno
import json
import os
import re
import runpy
import signal
import subprocess
import textwrap
import time
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest

from dreamer_dagster.cache import ModelCache
from dreamer_dagster.call_scope import LOG_INTERVAL_S
from dreamer_dagster.errors import RequestRejectedError, is_retryable
from dreamer_dagster.llms import OpenAI
from dreamer_dagster.steps import DataSource, FilterWithPrompt, ProcessWithPrompt
from tests.support.foundation import materialization_metadata, materialize, rows
from tests.support.openai_server import FakeOpenAIServer, control, start_server_process
from tests.support.waiting import HANG_S
from tests.test_resume_and_secrets import cli_env, materialize_command

PROMPTS, CONCURRENCY = 20, 4


def answered(server: FakeOpenAIServer) -> int:
    return sum(server.answered.values())


def cached(output: Path, llm: OpenAI) -> int:
    with ModelCache(output / ".cache", llm.cache_name()) as cache:
        return len(cache)


def fails_at_row(limit: int):
    def post_process(text: str) -> str:
        if text.endswith(f"text {limit}\n\nInstruction: Shorten it."):
            raise ValueError("a bug in post_process")
        return text

    return post_process


def keep_until(limit: int):
    def keep(text: str) -> bool:
        if text.endswith(f"text {limit}\n\nInstruction: Shorten it."):
            raise ValueError("a bug in filter_func")
        return True

    return keep


def declare(case: str, source: DataSource, llm: OpenAI, broken: bool):
    args = {"llm": llm, "instruction": "Shorten it."}
    if case == "post_process":
        args["post_process"] = fails_at_row(6) if broken else (lambda text: text)
    if case == "filter_func":
        args["filter_func"] = keep_until(6) if broken else (lambda text: True)
        return FilterWithPrompt("Step", inputs={"inputs": source.output["text"]}, args=args)
    return ProcessWithPrompt("Step", inputs={"inputs": source.output["text"]}, args=args)


@pytest.mark.parametrize("case", ["post_process", "filter_func", "write"])
def test_a_failing_step_keeps_every_answer_and_the_rerun_pays_only_the_rest(
    case, tmp_path, instance, openai_server, monkeypatch
):
    openai_server.latency = 0.05
    llm = OpenAI("fake-chat", base_url=openai_server.base_url, max_concurrency=CONCURRENCY)
    source = DataSource("Inputs", {"text": [f"text {i}" for i in range(PROMPTS)]})
    materialize([source], instance, tmp_path)
    step = declare(case, source, llm, broken=True)
    if case == "write":
        from datasets.arrow_writer import ArrowWriter

        write = ArrowWriter.write
        written = []

        def full_disk(self, example, *args, **kwargs):
            written.append(example)
            if len(written) > 6:
                raise OSError(errno.ENOSPC, "No space left on device")
            return write(self, example, *args, **kwargs)

        monkeypatch.setattr(ArrowWriter, "write", full_disk)
    with pytest.raises(dg.Failure) as failure:  # a bug or a full disk: a retry cannot fix either
        materialize([step], instance, tmp_path, only=[step])
    assert failure.value.allow_retries is False
    monkeypatch.undo()
    first = answered(openai_server)
    # The failure came early: most prompts were never sent.
    assert 6 < first < PROMPTS
    # Every answer that reached the client is in the cache, collected by the step or not;
    # only requests still in flight when the step failed can be missing.
    assert first - CONCURRENCY <= cached(tmp_path, llm) <= first

    fixed = declare(case, source, llm, broken=False)
    materialize([fixed], instance, tmp_path)
    assert [len(column) for column in rows(tmp_path, fixed).values()][0] == PROMPTS
    assert answered(openai_server) <= PROMPTS + CONCURRENCY
    assert cached(tmp_path, llm) == PROMPTS


DEFINITIONS = textwrap.dedent(
    """
    import os

    from dreamer_dagster import Pipeline
    from dreamer_dagster.llms import OpenAI
    from dreamer_dagster.steps import DataSource, ProcessWithPrompt

    llm = OpenAI("fake-chat", base_url=os.environ["FAKE_OPENAI_BASE_URL"], max_concurrency={concurrency})

    with Pipeline({output!r}) as pipeline:
        source = DataSource("Inputs", {{"text": [f"text {{i}}" for i in range({rows})]}})
        ProcessWithPrompt(
            "Processed", inputs={{"inputs": source.output["text"]}}, args={{"llm": llm, "instruction": "Shorten it."}}
        )

    defs = pipeline.definitions()
    """
)


def rerun_in_process(definitions: Path, instance: dg.DagsterInstance) -> None:
    """Materialize a definitions file's assets in this process (the re-run after a failure)."""
    defs = runpy.run_path(str(definitions))["defs"]
    dg.materialize(list(defs.assets), instance=instance, resources=dict(defs.resources))


def test_terminating_a_dagster_run_keeps_every_answer(tmp_path, instance, monkeypatch):
    """A real signal to a real ``dagster asset materialize`` (Dagster's default multiprocess
    executor), the way a run termination reaches the run process: it forwards the
    termination to the step's process, which saves what it received before it exits."""
    total, concurrency = 48, 4
    definitions = tmp_path / "definitions.py"
    output = tmp_path / "output"
    definitions.write_text(DEFINITIONS.format(output=str(output), rows=total, concurrency=concurrency))
    with FakeOpenAIServer() as server:
        env = cli_env(tmp_path, server)
        server.latency = 0.15  # 48 prompts, 4 at a time: ~1.8 s of calls
        with open(tmp_path / "terminated.log", "w") as log:
            process = subprocess.Popen(
                materialize_command(definitions), cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT
            )
            deadline = time.monotonic() + HANG_S
            while answered(server) < 12 and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            assert process.poll() is None, "the run ended before it could be terminated"
            os.kill(process.pid, signal.SIGTERM)
            assert process.wait(timeout=HANG_S) != 0
        first = answered(server)
        log_text = (tmp_path / "terminated.log").read_text()
        assert "STEP_FAILURE" in log_text or "interrupted" in log_text.lower(), log_text[-2000:]
        assert first < total, "the run finished before the signal"
        assert not (output / "processed" / "step.json").exists()
        llm = OpenAI("fake-chat", base_url=server.base_url)
        print(f"answered {first} of {total} before the run ended; {cached(output, llm)} in the cache")
        assert first - concurrency <= cached(output, llm) <= first

        server.latency = 0.0
        monkeypatch.setenv("FAKE_OPENAI_BASE_URL", server.base_url)
        rerun_in_process(definitions, instance)
        assert answered(server) <= total + concurrency
        assert max(server.answered.values()) <= 2 and len(server.answered) == total
        assert cached(output, llm) == total


def test_a_thousand_prompts_through_faults_are_answered_exactly_once(tmp_path, instance):
    faults = {"429": 0.10, "500": 0.05, "malformed": 0.03, "timeout": 0.02, "disconnect": 0.01}
    # The server in its own process, so that its answers never wait on this one's threads.
    with start_server_process() as base_url:
        control(
            base_url,
            "/_configure",
            {"fault_mix": faults, "seed": 7, "retry_after": "0.01", "timeout_after": 0.8},
        )
        llm = OpenAI(
            "fake-chat",
            base_url=base_url,
            max_concurrency=16,
            timeout=0.5,
            retry_initial_delay=0.01,
            retry_max_delay=0.1,
        )
        source = DataSource("Inputs", {"text": [f"text {i}" for i in range(1000)]})
        step = ProcessWithPrompt(
            "Faulty", inputs={"inputs": source.output["text"]}, args={"llm": llm, "instruction": "x"}
        )
        started = time.monotonic()
        result = materialize([step], instance, tmp_path)
        elapsed = time.monotonic() - started
        deadline = time.monotonic() + HANG_S
        while (server := control(base_url, "/_stats"))["in_flight"] and time.monotonic() < deadline:
            time.sleep(0.05)  # a timed-out request's handler may still be sleeping
    data = rows(tmp_path, step)
    assert data["inputs"] == [f"text {i}" for i in range(1000)]
    assert data["generations"] == [f"Echo: {prompt}" for prompt in data["prompts"]]
    assert server["answered"] == server["answered_prompts"] == 1000
    assert server["most_answers_for_one_prompt"] == 1

    statuses = Counter(server["statuses"])
    malformed = statuses["200"] - 1000
    assert statuses["429"] > 50 and statuses["500"] > 20 and malformed > 10
    assert statuses["timeout"] > 5 and statuses["disconnect"] > 2
    metadata = materialization_metadata(result, step)
    assert metadata["dreamer/retries"] == server["requests"] - 1000
    assert metadata["dreamer/retries_rate_limited"] == statuses["429"]
    assert metadata["dreamer/retries_server_error"] == statuses["500"]
    assert metadata["dreamer/retries_malformed"] == malformed
    assert metadata["dreamer/retries_timeout"] == statuses["timeout"]
    assert metadata["dreamer/retries_connection"] == statuses["disconnect"]
    assert 1 <= metadata["dreamer/concurrency_limit_min"] < 16
    messages = [event.user_message for event in instance.all_logs(result.run_id) if event.user_message]
    reports = [m for m in messages if "retried calls since the last report" in m]
    # A bounded rate: the first at once, then at most one every LOG_INTERVAL_S, and the last.
    assert 1 <= len(reports) <= 2 + elapsed // LOG_INTERVAL_S


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_a_rejected_request_fails_the_step_without_retry(status, tmp_path, instance, openai_server):
    openai_server.fail_next(status, 100)
    llm = OpenAI("fake-chat", base_url=openai_server.base_url, max_concurrency=2)
    source = DataSource("Inputs", {"text": ["a", "b", "c"]})
    step = ProcessWithPrompt(
        "Refused", inputs={"inputs": source.output["text"]}, args={"llm": llm, "instruction": "x"}
    )
    with pytest.raises(dg.Failure) as failure:
        materialize([step], instance, tmp_path)
    assert failure.value.allow_retries is False
    message = failure.value.description
    assert "Step 'Refused' (ProcessWithPrompt): the LLM OpenAI('fake-chat'" in message
    assert f"'fake-chat' at {openai_server.base_url} failed: HTTP {status}: " in message
    assert " Fix: " in message
    assert openai_server.statuses[status] <= 2  # no retry: only what was already in flight
    cause = failure.value.__cause__
    assert not is_retryable(cause)
    while cause is not None and not isinstance(cause, RequestRejectedError):
        cause = cause.__cause__
    assert cause is not None and cause.status == status


def test_five_hundreds_run_out_of_retries_as_a_retryable_failure(tmp_path, instance, openai_server):
    openai_server.fail_next(500, 100)
    llm = OpenAI("fake-chat", base_url=openai_server.base_url, max_retries=2, retry_initial_delay=0.01)
    source = DataSource("Inputs", {"text": ["a"]})
    step = ProcessWithPrompt(
        "Flaky",
        inputs={"inputs": source.output["text"]},
        args={"llm": llm, "instruction": "x"},
        retry_policy=dg.RetryPolicy(max_retries=1, delay=0.1),  # the default waits 10 s and more
    )
    with pytest.raises(Exception) as failure:  # noqa: PT011 - the point is which one it is not
        materialize([step], instance, tmp_path)
    assert not isinstance(failure.value, dg.Failure)  # left to Dagster's retry policy
    assert "HTTP 500" in str(failure.value) and "after 3 attempts" in str(failure.value)
    assert is_retryable(failure.value)
    assert openai_server.statuses[500] == 2 * 3  # Dagster ran the step twice, 3 attempts each


TRAINING_DEFINITIONS = textwrap.dedent(
    """
    import os
    import time

    import dagster as dg
    from transformers import TrainerCallback

    from dreamer_dagster import Pipeline
    from dreamer_dagster.steps import DataSource
    from dreamer_dagster.trainers import TrainHFFineTune


    class SlowDown(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            time.sleep(float(os.environ.get("SLOW_TRAINING") or 0))


    with Pipeline({output!r}) as pipeline:
        data = DataSource("Pairs", {{"q": ["a b", "c d", "e f", "g h"], "a": ["1", "2", "3", "4"]}})
        TrainHFFineTune("Tune", model_name={model!r}, peft_config={{"r": 4, "target_modules": ["q_proj"]}}).train(
            train_input=data.output["q"], train_output=data.output["a"], epochs=2, batch_size=1,
            callbacks=[SlowDown()],
        )

    defs = pipeline.definitions(executor=dg.in_process_executor)
    """
)


def test_an_interrupted_training_saves_a_checkpoint_before_it_stops(tmp_path, instance, tiny_llama):
    """SIGTERM to ``dagster asset materialize`` mid-epoch: checkpoints are saved once an epoch,
    yet the run stops with one at the step it reached.
    (The in-process executor keeps this test short; the multiprocess path is the one
    ``test_terminating_a_dagster_run_keeps_every_answer`` takes.)"""
    output = tmp_path / "output"
    definitions = tmp_path / "definitions.py"
    definitions.write_text(TRAINING_DEFINITIONS.format(output=str(output), model=str(tiny_llama)))
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(home), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    command = materialize_command(definitions)
    checkpoints = output / "tune" / "_checkpoints"
    log_path = tmp_path / "interrupted.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command, cwd=tmp_path, env={**env, "SLOW_TRAINING": "0.4"}, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + HANG_S
        while "Tune step 2/8" not in log_path.read_text():
            assert process.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, "training did not reach step 2"
            time.sleep(0.1)
        os.kill(process.pid, signal.SIGTERM)
        assert process.wait(timeout=HANG_S) != 0
    text = log_path.read_text()
    # Dagster hands SIGTERM to its SIGINT handler; the trainer holds either.
    assert re.search(r"SIG(INT|TERM) received: saving a checkpoint at step [23]", text), text[-3000:]
    assert not (output / "tune" / "step.json").exists()
    saved = sorted(int(path.name.split("-")[1]) for path in checkpoints.glob("checkpoint-*"))
    assert len(saved) == 1 and 2 <= saved[0] < 4  # mid-epoch: the epoch's own save is at step 4

    rerun_in_process(definitions, instance)
    metrics = json.loads((output / "tune" / "step.json").read_text())["metrics"]
    assert metrics["resumed_from_step"] == saved[0]
    assert metrics["global_step"] == 8 and metrics["steps_this_run"] == 8 - saved[0]


class Stopped(Exception):
    """What this test's own SIGINT / SIGTERM handler raises."""


class FakeTrainer:
    def __init__(self):
        self.callbacks = []

    def add_callback(self, callback):
        self.callbacks.append(callback)

    def remove_callback(self, callback):
        self.callbacks.remove(callback)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_training_is_held_until_a_checkpoint_is_saved(signum):
    from transformers import TrainerControl, TrainerState

    from dreamer_dagster.trainers.interrupts import checkpoint_on_interrupt

    def stop(received, frame):
        raise Stopped(received)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        trainer, logged = FakeTrainer(), []
        with pytest.raises(Stopped), checkpoint_on_interrupt(trainer, logged.append):
            [callback] = trainer.callbacks
            control = callback.on_step_end(None, TrainerState(global_step=3), TrainerControl())
            assert not control.should_save
            os.kill(os.getpid(), signum)  # held: training goes on to the end of its step
            control = callback.on_step_end(None, TrainerState(global_step=4), TrainerControl())
            assert control.should_save and control.should_training_stop
        assert logged == [
            f"{signal.Signals(signum).name} received: saving a checkpoint at step 4 before stopping."
        ]
        assert trainer.callbacks == [] and signal.getsignal(signum) is stop

        with pytest.raises(Stopped), checkpoint_on_interrupt(FakeTrainer()):  # a second signal does not wait
            os.kill(os.getpid(), signum)
            os.kill(os.getpid(), signum)
            pytest.fail("the second signal should have stopped training at once")
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
