"""TrainOpenAIFineTune against the loopback OpenAI-compatible server: upload, job, polling,
and resuming an interrupted job by its saved ids (no second upload, no second job)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from dreamer_dagster import dreamer_definitions
from dreamer_dagster.steps import DataSource
from dreamer_dagster.trainers import TrainOpenAIFineTune
from tests.support.openai_server import FakeOpenAIServer
from tests.support.waiting import HANG_S

REPO = Path(__file__).resolve().parent.parent


def declare(base_url: str) -> TrainOpenAIFineTune:
    """The pipeline both the interrupted child process and the test declare (one fingerprint)."""
    pairs = DataSource(
        "Tweet Pairs",
        data={
            "abstract": ["We study cats.", "We study dogs.", "We study owls.", "We study bees."],
            "tweet": ["Cats! #nlp", "Dogs! #nlp", "Owls! #nlp", "Bees! #nlp"],
        },
    )
    splits = pairs.splits(train_size=0.5, validation_size=0.5)
    return TrainOpenAIFineTune(
        "Fine-Tune Tweets", model_name="fake-chat", base_url=base_url, poll_interval=0.05
    ).train(
        train_input=splits["train"].output["abstract"],
        train_output=splits["train"].output["tweet"],
        validation_input=splits["validation"].output["abstract"],
        validation_output=splits["validation"].output["tweet"],
        epochs=2,
    )


def materialize(
    trainer: TrainOpenAIFineTune, instance: dg.DagsterInstance, output: Path
) -> dg.ExecuteInProcessResult:
    defs = dreamer_definitions([trainer], output_folder=str(output))
    return dg.materialize(list(defs.assets), instance=instance, resources=dict(defs.resources))


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-loopback-secret")
    return "sk-loopback-secret"


def test_fine_tune_job_runs_to_a_model(tmp_path: Path, instance: dg.DagsterInstance, api_key: str) -> None:
    output = tmp_path / "output"
    with FakeOpenAIServer() as server:
        server.fine_tuning.polls_to_finish = 3
        trainer = declare(server.base_url)
        result = materialize(trainer, instance, output)
        assert result.success
        api = server.fine_tuning
        assert (api.uploads, api.jobs_created) == (2, 1)
        [job] = api.jobs.values()
        assert job["status"] == "succeeded"
        assert job["hyperparameters"] == {"n_epochs": 2}
        assert job["validation_file"] is not None
        assert api.files == {}  # the uploaded files are deleted once the model is trained

        train_lines = [json.loads(line) for line in api.contents[job["training_file"]].decode().splitlines()]
        assert len(train_lines) == 2
        roles = [m["role"] for m in train_lines[0]["messages"]]
        assert roles == ["system", "user", "assistant"]
        assert train_lines[0]["messages"][2]["content"].endswith("#nlp")

        model_dir = output / trainer.folder / "_model"
        assert (
            json.loads((model_dir / "trained_model_name.json").read_text())
            == f"ft:fake-chat:loopback:{job['id']}"
        )
        info = json.loads((model_dir / "dreamer_trainer.json").read_text())
        assert info["fine_tuned_model"] == job["fine_tuned_model"]
        assert info["trainer"] == "TrainOpenAIFineTune"
        assert "Fine-Tune Tweets" in (model_dir / "README.md").read_text()
        record = json.loads((output / trainer.folder / "step.json").read_text())
        assert record["model"] is True
        everything = json.dumps(record) + "".join(p.read_text() for p in model_dir.iterdir() if p.is_file())
        assert api_key not in everything  # the key is never stored

        # A second materialization reuses the finished model: no upload, no job.
        again = materialize(declare(server.base_url), instance, output)
        assert again.success
        assert (api.uploads, api.jobs_created) == (2, 1)


def test_missing_api_key_fails_with_a_fix(
    tmp_path: Path, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with FakeOpenAIServer() as server:
        with pytest.raises(Exception, match="OPENAI_API_KEY"):
            materialize(declare(server.base_url), instance, tmp_path / "output")
        assert server.fine_tuning.uploads == 0


def test_arguments_are_checked_when_declared() -> None:
    with pytest.raises(ValueError, match="poll_interval"):
        TrainOpenAIFineTune("Bad Poll", model_name="fake-chat", poll_interval=0)
    pairs = DataSource("Checked Pairs", data={"a": ["x"], "b": ["y"]})
    with pytest.raises(ValueError, match="epochs"):
        TrainOpenAIFineTune("Bad Epochs", model_name="fake-chat").train(
            train_input=pairs.output["a"], train_output=pairs.output["b"], epochs=0
        )


def _child(base_url: str, output: str) -> None:
    """Run in a subprocess: materialize the trainer (the test kills it mid-job)."""
    trainer = declare(base_url)
    defs = dreamer_definitions([trainer], output_folder=output)
    dg.materialize(list(defs.assets), instance=dg.DagsterInstance.ephemeral(), resources=dict(defs.resources))


def test_killed_job_resumes_without_a_second_upload_or_job(
    tmp_path: Path, instance: dg.DagsterInstance, api_key: str
) -> None:
    output = tmp_path / "output"
    with FakeOpenAIServer() as server:
        api = server.fine_tuning
        api.polls_to_finish = 10_000  # the job runs until the child is killed
        code = f"from tests.test_train_openai_finetune import _child; _child({server.base_url!r}, {str(output)!r})"
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        child = subprocess.Popen([sys.executable, "-c", code], cwd=str(REPO), env=env)
        try:
            deadline = time.monotonic() + HANG_S
            while not (api.jobs_created and sum(api.polls.values()) >= 2):
                assert child.poll() is None, "the child process ended before the job ran"
                assert time.monotonic() < deadline, "the child never created the job"
                time.sleep(0.05)
        finally:
            child.kill()
            child.wait(timeout=HANG_S)
        assert (api.uploads, api.jobs_created) == (2, 1)
        trainer_folder = output / "fine-tune-tweets"
        assert not (trainer_folder / "step.json").exists()
        state = json.loads((trainer_folder / "_checkpoints" / "openai_fine_tune.json").read_text())
        assert state["job_id"] == "ftjob-1"
        assert set(state["files"]) == {"train", "validation"}

        api.polls_to_finish = sum(api.polls.values()) + 2  # the job finishes soon after the restart
        result = materialize(declare(server.base_url), instance, output)
        assert result.success
        assert (api.uploads, api.jobs_created) == (2, 1)
        name = json.loads((trainer_folder / "_model" / "trained_model_name.json").read_text())
        assert name == "ft:fake-chat:loopback:ftjob-1"


def test_a_vanished_job_is_created_again(tmp_path: Path, instance: dg.DagsterInstance, api_key: str) -> None:
    """Saved ids the server no longer knows (another server, expired files) are replaced."""
    output = tmp_path / "output"
    with FakeOpenAIServer() as server:
        trainer = declare(server.base_url)
        checkpoints = output / trainer.folder / "_checkpoints"
        checkpoints.mkdir(parents=True)
        stale = {"files": {"train": {"id": "file-gone", "sha256": "x"}}, "job_id": "ftjob-gone"}
        (checkpoints / "openai_fine_tune.json").write_text(json.dumps(stale))
        (output / trainer.folder / "_in_progress.json").write_text(
            json.dumps({"fingerprint": trainer.fingerprint})
        )
        assert materialize(trainer, instance, output).success
        assert (server.fine_tuning.uploads, server.fine_tuning.jobs_created) == (2, 1)


def test_openai_of_the_trainer_generates_with_the_fine_tuned_model(
    tmp_path: Path, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dreamer_dagster.llms import OpenAI
    from dreamer_dagster.steps import ProcessWithPrompt
    from tests.support.foundation import rows

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    output = tmp_path / "output"
    with FakeOpenAIServer() as server:
        pairs = DataSource("Pairs", {"a": ["x", "y"], "b": ["X", "Y"]})
        trainer = TrainOpenAIFineTune(
            "Tune With Key",
            "fake-chat",
            "Answer in capitals.",
            None,
            "sk-given-explicitly",
            server.base_url,
            poll_interval=0.01,
            default_headers={"X-Project": "tweets"},
        ).train(train_input=pairs.output["a"], train_output=pairs.output["b"])
        assert "sk-given" not in json.dumps(trainer.describe_args(), default=str)
        llm = OpenAI(trainer)
        assert llm.system_prompt == "Answer in capitals." and llm.base_url == server.base_url
        assert trainer in llm.dependencies()
        asked = ProcessWithPrompt(
            "Ask Tuned", inputs={"inputs": pairs.output["a"]}, args={"llm": llm, "instruction": "Say it."}
        )
        monkeypatch.setenv("OPENAI_API_KEY", "sk-for-generation")
        assert materialize(asked, instance, output).success
        [job] = server.fine_tuning.jobs.values()
        chats = [r for r in server.requests if r["path"] == "/v1/chat/completions"]
        assert {r["body"]["model"] for r in chats} == {job["fine_tuned_model"]}
        assert chats[0]["body"]["messages"][0]["content"] == "Answer in capitals."
        uploads = [r for r in server.requests if r["path"] == "/v1/files" and r["method"] == "POST"]
        assert uploads[0]["headers"]["authorization"] == "Bearer sk-given-explicitly"
        assert uploads[0]["headers"]["x-project"] == "tweets"
        assert len(rows(output, asked)["generations"]) == 2
        trainer.pipeline_output_folder = str(output)
        assert trainer.model == job["fine_tuned_model"]  # trainer.model: the fine-tuned model name
        for path in output.rglob("*"):
            assert not path.is_file() or b"sk-given-explicitly" not in path.read_bytes()
