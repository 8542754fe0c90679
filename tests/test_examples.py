"""DataDreamer's quick-tour examples (``examples/``), each run the way DataDreamer runs it,
``python examples/<name>.py`` in a subprocess, and all loaded by Dagster with one
``dagster definitions validate``.

``gpt-4`` answers from the loopback OpenAI-compatible server (``OPENAI_BASE_URL``),
publishing goes to a loopback Hub (``HF_ENDPOINT``; every uploaded byte is recorded),
and the trainers train a tiny random Llama (``DREAMER_EXAMPLE_MODEL``). After each run
the file is loaded again as definitions: every declared step's folder holds the
finished output of exactly the fingerprint Dagster sees, so the script and the web UI
agree on what is up to date.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import datasets
import pytest

from dreamer_dagster.cli import load_module
from dreamer_dagster.output_folder import OutputFolder
from tests.support.hf_hub_server import add_hub_routes
from tests.support.openai_server import FakeOpenAIServer
from tests.support.waiting import HANG_S

pytestmark = pytest.mark.slow  # subprocesses, and three of them train (still part of the suite)

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
NAMES = [
    "abstract_to_tweet",
    "dataset_cleaning",
    "attributed_prompts",
    "dataset_augmentation",
    "bootstrapping_machine_translation",
    "self_rewarding",
    "aligning",
    "instruction_tuning",
    "custom_step",
]
TOKEN = "hf_loopback_secret_token"
#: Wall-clock seconds of each example's first run (printed at the end of the module).
TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="module")
def loopback():
    """One loopback server for the module: OpenAI's API and the Hub's upload API."""
    with FakeOpenAIServer() as server:
        hub = add_hub_routes(server)
        yield server, hub
    if TIMINGS:
        print("\nexample timings (first run, seconds):", {k: round(v, 1) for k, v in TIMINGS.items()})


def example_env(server: FakeOpenAIServer, model: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "DAGSTER_HOME", "DREAMER_RUN")}
    env.update(
        OPENAI_BASE_URL=server.base_url,
        OPENAI_API_KEY="sk-loopback",
        HF_ENDPOINT=server.base_url.removesuffix("/v1"),
        HF_TOKEN=TOKEN,
        HF_HUB_DISABLE_XET="1",
        DREAMER_EXAMPLE_MODEL=str(model),
        TOKENIZERS_PARALLELISM="false",
        **extra,
    )
    return env


def workdir(base: Path) -> Path:
    """A working directory holding ``examples/data`` (the examples read it from there)."""
    (base / "examples").mkdir(parents=True, exist_ok=True)
    link = base / "examples" / "data"
    if not link.exists():
        link.symlink_to(EXAMPLES / "data")
    return base


def run_example(name: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py")],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG_S,
    )


def declared_steps(name: str, cwd: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> list:
    """The example loaded as Dagster loads it (definitions mode, with the script's
    environment): its pipeline's steps."""
    monkeypatch.chdir(cwd)
    for variable in ("DREAMER_EXAMPLE_MODEL", "OPENAI_BASE_URL", "OPENAI_API_KEY"):
        monkeypatch.setenv(variable, env[variable])
    module = load_module(EXAMPLES / f"{name}.py")
    return list(module.pipeline.steps)


@pytest.mark.parametrize("name", NAMES)
def test_example_runs_as_a_script(name, loopback, tiny_llama, tmp_path, monkeypatch):
    server, hub = loopback
    cwd = workdir(tmp_path)
    started = time.monotonic()
    env = example_env(server, tiny_llama)
    result = run_example(name, cwd, env)
    TIMINGS[name] = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-6000:]
    log = result.stderr
    assert "Initialized. Dreaming to folder: ./output" in log
    assert "Done. Results in folder: ./output" in log
    assert TOKEN not in log + result.stdout

    # Every step ran through Dagster, in the instance under the output folder.
    output = cwd / "output"
    instance = dg.DagsterInstance.from_config(str(output / ".dagster"))
    runs = instance.get_runs()
    assert runs and all(run.tags.get("dreamer/script") == f"{name}.py" for run in runs)
    instance.dispose()

    # Loaded as definitions, the same file declares exactly the fingerprints the script wrote.
    steps = declared_steps(name, cwd, env, monkeypatch)
    assert steps
    folder = OutputFolder(output)
    for step in steps:
        assert folder.step(step.folder).finished_fingerprint() == step.fingerprint, step.name
        assert f"Step {step.name!r} is running." in log
        assert f"Step {step.name!r} finished and is saved to disk" in log
    for file in output.rglob("*"):
        assert not file.is_file() or TOKEN.encode() not in file.read_bytes(), file
    CHECKS.get(name, lambda *_: None)(output, hub, steps)


def _published(hub, kind: str, repo_id: str) -> dict[str, bytes]:
    files = hub.repo_files(kind, repo_id)
    assert files, f"nothing was published to {kind}/{repo_id}"
    assert f"Bearer {TOKEN}" in hub.authorizations
    return files


def _rows(output: Path, key: str, steps: list) -> datasets.Dataset:
    """The rows of the step with asset key ``key``, read from its folder (DataDreamer's name)."""
    folder = {step.key: step.folder for step in steps}[key]
    return datasets.load_from_disk(str(output / folder / "_dataset"))


def check_abstract_to_tweet(output, hub, steps):
    files = _published(hub, "datasets", "datadreamer-dev/abstracts_and_tweets")
    assert {
        "data/train-00000-of-00001.parquet",
        "data/validation-00000-of-00001.parquet",
        "README.md",
    } <= set(files)
    model = _published(hub, "models", "datadreamer-dev/abstracts_to_tweet_model")
    assert {"model.safetensors", "README.md", "config.json"} <= set(model)
    assert len(_rows(output, "generate_tweets_from_abstracts", steps)) == 16
    assert (output / "train-an-abstract--tweet-model" / "_model").is_dir()
    export = {step.key: step for step in steps}["train_an_abstract_tweet_model_publish_to_hf_hub"]
    assert export.dagster_kinds() == {"export", "huggingface"}


def check_dataset_cleaning(output, hub, steps):
    files = _published(hub, "datasets", "datadreamer-dev/cnn_dailymail_sports")
    assert "data/train-00000-of-00001.parquet" in files
    kept = _rows(output, "filter_to_only_keep_sports_articles", steps)
    assert 0 < len(kept) <= 6 and "article" in kept.column_names


def check_attributed_prompts(output, hub, steps):
    _published(hub, "datasets", "datadreamer-dev/movie_reviews")
    reviews = _rows(output, "generate_movie_reviews_select_columns_shuffle", steps)
    assert reviews.column_names == ["reviews"] and len(reviews) == 16
    # The attributes were read from "Generate Attributes" when the reviews ran.
    attribute = _rows(output, "generate_attributes", steps)["generations"][0].split(",")[0]
    assert any(attribute in review for review in reviews["reviews"])


def check_dataset_augmentation(output, hub, steps):
    _published(hub, "datasets", "datadreamer-dev/hotpot_qa_augmented")
    assert _rows(output, "generate_decompositions_select_columns", steps).column_names == [
        "questions",
        "decompositions",
    ]


def check_bootstrapping_machine_translation(output, hub, steps):
    _published(hub, "datasets", "datadreamer-dev/english_to_tamil")
    final = _rows(output, "few_shot_translate_from_english_to_tamil_test_set_select_columns", steps)
    assert len(final) == 4 and final.column_names == ["english", "tamil"]
    # Round 4 took its few-shot examples from round 3's top-2 pairs.
    round_four = {step.key: step for step in steps}["round_4_few_shot_translate_from_english_to_tamil"]
    assert "round_3_get_top_2_translation_pairs" in {parent.key for parent in round_four.upstream()}


def check_self_rewarding(output, hub, steps):
    by_key = {step.key: step for step in steps}
    for round_number in (1, 2, 3):
        model = output / by_key[f"round_{round_number}_self_reward_align_tinyllama_chat"].folder / "_model"
        assert (model / "adapter_config.json").is_file()
        assert len(_rows(output, f"round_{round_number}_judge_candidate_responses", steps)) == 6
    # Rounds 2 and 3 sample with the previous round's adapter.
    sample = by_key["round_2_sample_candidate_response_0"]
    assert "round_1_self_reward_align_tinyllama_chat" in {parent.key for parent in sample.upstream()}


def check_aligning(output, hub, steps):
    assert (output / "align-tinyllama-chat" / "_model" / "adapter_config.json").is_file()


def check_instruction_tuning(output, hub, steps):
    assert (output / "instruction-tune-tinyllama" / "_model" / "adapter_config.json").is_file()


def check_custom_step(output, hub, steps):
    counts = _rows(output, "count_words", steps)
    assert counts["texts"][0] == counts["texts"][0].lower() and counts["word_counts"][0] == 9
    assert (output / "count-words" / "run_output" / "request.json").is_file()
    summarized = _rows(output, "summarize_then_count", steps)
    assert summarized.column_names == ["summaries", "word_counts"] and len(summarized) == 3
    assert (output / "summarize-then-count" / "summarize" / "step.json").is_file()


CHECKS = {name: globals()[f"check_{name}"] for name in NAMES}


def test_a_second_run_reuses_every_step_and_dagster_home_holds_the_runs(loopback, tiny_llama, tmp_path):
    server, hub = loopback
    cwd = workdir(tmp_path)
    first = run_example("dataset_cleaning", cwd, example_env(server, tiny_llama))
    assert first.returncode == 0, first.stderr[-4000:]
    requests, commits = server.request_count, len(hub.commits)
    home = tmp_path / "dagster_home"
    again = run_example("dataset_cleaning", cwd, example_env(server, tiny_llama, DAGSTER_HOME=str(home)))
    assert again.returncode == 0, again.stderr[-4000:]
    # Three steps and the publish (an export step, done once per fingerprint) are reused.
    assert "is running" not in again.stderr
    assert again.stderr.count("results loaded from the output folder") == 4
    assert len(hub.commits) == commits
    chat = [r for r in server.requests[requests:] if r["path"].endswith("/chat/completions")]
    assert chat == []  # no model call paid twice
    instance = dg.DagsterInstance.from_config(str(home))
    # One Dagster run a step, each run when it was declared (as DataDreamer runs steps).
    assert [run.tags.get("dreamer/script") for run in instance.get_runs()] == ["dataset_cleaning.py"] * 4
    instance.dispose()


def test_every_example_loads_as_definitions_and_runs_nothing(loopback, tiny_llama, tmp_path):
    server, _ = loopback
    cwd = workdir(tmp_path)
    before = server.request_count
    command = [sys.executable, "-m", "dagster", "definitions", "validate"]
    for name in NAMES:
        command += ["-f", str(EXAMPLES / f"{name}.py")]
    result = subprocess.run(
        command, cwd=cwd, env=example_env(server, tiny_llama), capture_output=True, text=True, timeout=HANG_S
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Validation successful" in result.stdout + result.stderr
    assert not (cwd / "output").exists()  # nothing ran, nothing was written
    assert server.request_count == before
