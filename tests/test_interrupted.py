"""Interrupted equals uninterrupted: a step SIGKILLed at seeded random points (mid-batch,
during post-processing, between the last ``_dataset`` write and ``step.json``, while a
trainer writes ``_model``) and run again gives, row for row, the output of a run that was
never interrupted, with every answer the cache held never asked again (at most what was in flight
paid twice).

The killed run is a subprocess that kills itself (SIGKILL) at the chosen point; the
re-run and the uninterrupted reference run in the test process."""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import dagster as dg
import datasets
import pytest

from dreamer_dagster.cli import load_definitions
from tests.support.openai_server import FakeOpenAIServer
from tests.support.waiting import HANG_S

REPO = Path(__file__).resolve().parents[1]
PROMPTS, CONCURRENCY = 16, 3

# Kill points: set before anything is imported, so the patched functions are the ones used.
KILLS = textwrap.dedent(
    """
    import os, signal

    KILL_AT = os.environ.get("KILL_AT", "")

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    if KILL_AT.startswith("answers:"):  # after the cache commit that reaches N answers
        from dreamer_dagster.cache import ModelCache

        limit, written, put_many = int(KILL_AT.split(":")[1]), [0], ModelCache.put_many

        def counting_put_many(self, items):
            items = list(items)
            put_many(self, items)
            written[0] += len(items)
            if written[0] >= limit:
                die()

        ModelCache.put_many = counting_put_many
    if KILL_AT == "before_step_json":  # _dataset is in place, step.json not yet written
        import dreamer_dagster.output_folder as output_folder

        write_json = output_folder._write_json_atomic

        def dying_write(path, data):
            if path.name == "step.json" and path.parent.name == os.environ["KILL_STEP"]:
                die()
            write_json(path, data)

        output_folder._write_json_atomic = dying_write
    if KILL_AT == "model_write":  # the first weights file written into the staged _model
        import safetensors.torch

        save_file = safetensors.torch.save_file

        def dying_save_file(tensors, filename, *args, **kwargs):
            save_file(tensors, filename, *args, **kwargs)
            if "/.staging/" in str(filename) and "/_model" in str(filename):
                with open(filename, "r+b") as handle:
                    handle.truncate(os.path.getsize(filename) // 2)
                die()

        safetensors.torch.save_file = dying_save_file
    """
)

PIPELINE_TEMPLATE = textwrap.dedent(
    """
    import os
    import time

    from dreamer_dagster import Pipeline
    from dreamer_dagster.llms import OpenAI
    from dreamer_dagster.steps import DataSource, ProcessWithPrompt


    def post_process(generation):
        row = generation.split("text ")[1].split()[0]
        if os.environ.get("KILL_AT") == f"post:{row}":
            os.kill(os.getpid(), 9)
        if os.environ.get("KILL_AT") == f"stuck:{row}":  # user code that swallows every interrupt
            announced = False
            while True:
                try:  # STUCK is printed inside: a signal sent on seeing it lands where it is swallowed
                    if not announced:
                        print("STUCK", flush=True)
                        announced = True
                    time.sleep(0.05)
                except BaseException:
                    pass
        return generation.upper()


    llm = OpenAI("fake-chat", base_url=os.environ["BASE_URL"], max_concurrency=CONCURRENCY)
    with Pipeline(os.environ["OUTPUT"]) as pipeline:
        source = DataSource("Inputs", {"text": [f"text {i}" for i in range(PROMPTS)]})
        processed = ProcessWithPrompt(
            "Processed",
            inputs={"inputs": source.output["text"]},
            args={"llm": llm, "instruction": "Shorten it.", "post_process": post_process},
        )
    defs = pipeline.definitions()
    """
)


def pipeline_script(prompts: int, concurrency: int) -> str:
    """The pipeline file: ``prompts`` rows through an OpenAI model ``concurrency`` at a time
    (``KILL_AT=post:N`` / ``stuck:N``: SIGKILL itself / hang in post_process at row N)."""
    return PIPELINE_TEMPLATE.replace("CONCURRENCY", str(concurrency)).replace("PROMPTS", str(prompts))


PIPELINE = pipeline_script(PROMPTS, CONCURRENCY)

TRAINER = textwrap.dedent(
    """
    import os

    from dreamer_dagster import Pipeline
    from dreamer_dagster.steps import DataSource
    from dreamer_dagster.trainers import TrainHFFineTune

    with Pipeline(os.environ["OUTPUT"]) as pipeline:
        data = DataSource("Pairs", {"q": ["a b", "c d", "e f", "g h"], "a": ["1", "2", "3", "4"]})
        TrainHFFineTune(
            "Tune", model_name=os.environ["TINY_MODEL"], peft_config={"r": 2, "target_modules": ["q_proj"]}
        ).train(
            train_input=data.output["q"],
            train_output=data.output["a"],
            epochs=1,
            batch_size=2,
            save_strategy="steps",
            save_steps=1,
        )
    defs = pipeline.definitions()
    """
)


def run_killed(script: Path, env: dict[str, str]) -> None:
    """Run ``script``'s definitions in a subprocess that SIGKILLs itself at ``KILL_AT``."""
    code = KILLS + (
        "\nimport dagster as dg, sys\nfrom dreamer_dagster.cli import load_definitions\n"
        "defs = load_definitions(sys.argv[1])\n"
        "dg.materialize(list(defs.assets), resources=dict(defs.resources))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(script)],
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        text=True,
        timeout=HANG_S,
    )
    assert result.returncode == -9, f"not killed at {env['KILL_AT']}: {result.stderr[-3000:]}"


def materialize_here(script: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    defs = load_definitions(script)
    assert dg.materialize(list(defs.assets), resources=dict(defs.resources)).success


def answered(server: FakeOpenAIServer) -> Counter:
    return Counter(
        request["body"]["messages"][-1]["content"]
        for request in server.requests
        # a request cut off by the kill while it was being sent is no answer
        if request["path"].endswith("/chat/completions") and isinstance(request["body"], dict)
    )


def cached_answers(output: Path) -> int:
    """How many answers the killed run had committed to its model cache files."""
    total = 0
    for path in (output / ".cache").glob("*.db"):
        with sqlite3.connect(path) as connection:
            total += connection.execute("SELECT COUNT(*) FROM cache").fetchone()[0]
    return total


def test_a_step_killed_anywhere_reruns_to_the_uninterrupted_output(tmp_path, monkeypatch):
    script = tmp_path / "pipeline.py"
    script.write_text(PIPELINE)
    rng = random.Random(8)  # seeded: the same points every run
    kill_points = [
        f"answers:{rng.randint(1, PROMPTS - 2)}",
        f"answers:{rng.randint(1, PROMPTS - 2)}",
        f"post:{rng.randint(0, PROMPTS - 1)}",
        "before_step_json",
    ]
    with FakeOpenAIServer(latency=0.02) as server:
        reference = tmp_path / "reference"
        materialize_here(script, monkeypatch, {"BASE_URL": server.base_url, "OUTPUT": str(reference)})
        expected = datasets.load_from_disk(str(reference / "processed" / "_dataset")).to_dict()
        assert expected["generations"][0] == "ECHO: INPUT: TEXT 0\n\nINSTRUCTION: SHORTEN IT."
        prompts = set(answered(server))
        assert len(prompts) == PROMPTS

        for number, kill_at in enumerate(kill_points):
            output = tmp_path / f"killed-{number}"
            env = {
                "BASE_URL": server.base_url,
                "OUTPUT": str(output),
                "KILL_AT": kill_at,
                "KILL_STEP": "processed",
            }
            server.reset()
            run_killed(script, env)
            assert not (output / "processed" / "step.json").exists()
            killed_run = answered(server)
            committed = cached_answers(output)
            server.reset()
            materialize_here(script, monkeypatch, {**env, "KILL_AT": ""})
            got = datasets.load_from_disk(str(output / "processed" / "_dataset")).to_dict()
            assert got == expected, kill_at  # row for row
            rerun = answered(server)
            both = killed_run + rerun
            assert set(both) == prompts
            extra = sum(both.values()) - PROMPTS
            print(
                f"{kill_at}: killed run {sum(killed_run.values())} answers ({committed} in the cache), "
                f"re-run {sum(rerun.values())}, paid twice {extra}"
            )
            # Every answer the cache held when the process died is never asked again: the
            # re-run asks exactly the rest. Answers are written as they arrive, so what
            # is paid twice is at most what was in flight when SIGKILL struck.
            assert sum(rerun.values()) == PROMPTS - committed, (kill_at, rerun)
            assert extra == sum(killed_run.values()) - committed, (kill_at, both)
            assert extra <= CONCURRENCY, (kill_at, both)
            if kill_at.startswith("answers:"):
                assert committed >= int(kill_at.split(":")[1])
            if kill_at in ("before_step_json",) or kill_at.startswith("post:"):
                assert committed >= 1


@pytest.mark.slow
def test_a_trainer_killed_while_writing_its_model_reruns_to_the_same_weights(
    tmp_path, monkeypatch, tiny_llama
):
    from safetensors.torch import load_file

    script = tmp_path / "trainer.py"
    script.write_text(TRAINER)
    reference = tmp_path / "reference"
    materialize_here(
        script, monkeypatch, {"OUTPUT": str(reference), "TINY_MODEL": str(tiny_llama), "KILL_AT": ""}
    )
    output = tmp_path / "killed"
    env = {"OUTPUT": str(output), "TINY_MODEL": str(tiny_llama), "KILL_AT": "model_write"}
    run_killed(script, env)
    assert not (output / "tune" / "step.json").exists()
    assert not (output / "tune" / "_model").exists()  # the half-written model was never committed
    assert list((output / "tune" / "_checkpoints").glob("checkpoint-*"))
    materialize_here(script, monkeypatch, {**env, "KILL_AT": ""})
    record = json.loads((output / "tune" / "step.json").read_text())
    assert record["stats"]["resumed"] is True
    weights = "adapter_model.safetensors"
    expected = load_file(str(reference / "tune" / "_model" / weights))
    got = load_file(str(output / "tune" / "_model" / weights))
    assert expected.keys() == got.keys()
    for name, tensor in expected.items():
        assert (tensor - got[name]).abs().max().item() <= 1e-6, name
