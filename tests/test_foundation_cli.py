"""User flows through the real ``dagster`` CLI and ``make``, each in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.waiting import HANG_S

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

DEFINITIONS = textwrap.dedent(
    """
    import dagster as dg

    from dreamer_dagster import Pipeline
    from dreamer_dagster.steps import DataSource

    COUNTER = {counter!r}


    def topics():
        with open(COUNTER, "a") as handle:
            handle.write("source\\n")
        for topic in ["parsing", "translation", "summarization", "tagging"]:
            yield {{"topic": topic}}


    def shout(row):
        with open(COUNTER, "a") as handle:
            handle.write("map\\n")
        return {{"topic": row["topic"].upper()}}


    with Pipeline({output!r}) as pipeline:
        source = DataSource("Topics", topics, columns=["topic"])
        loud = source.map(shout, name="Loud Topics", output_columns=["topic"], lazy=False)
        splits = loud.splits(train_size=0.5, test_size=0.5, name="Topic Splits")

    defs = pipeline.definitions(executor=dg.in_process_executor)
    """
)


def dagster(args: list[str], cwd: Path, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "DAGSTER_HOME": str(home), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    result = subprocess.run(
        [str(BIN / "dagster"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=HANG_S
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def fingerprints(output: Path) -> dict[str, str]:
    return {
        folder.name: json.loads((folder / "step.json").read_text())["fingerprint"]
        for folder in output.iterdir()
        if not folder.name.startswith((".", "_"))
    }


def test_materialize_after_asset_wipe_reuses_finished_folders(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    counter = tmp_path / "calls.txt"
    output = tmp_path / "output"
    (tmp_path / "defs.py").write_text(DEFINITIONS.format(counter=str(counter), output=str(output)))

    dagster(["asset", "materialize", "--select", "*", "-f", "defs.py"], tmp_path, home)
    first_calls = counter.read_text().splitlines()
    assert first_calls.count("source") == 1
    assert first_calls.count("map") == 4
    finished = fingerprints(output)
    assert set(finished) == {"topics", "loud-topics", "topic-splits-train", "topic-splits-test"}

    dagster(["asset", "wipe", "--all", "--noprompt"], tmp_path, home)
    rerun = dagster(["asset", "materialize", "--select", "*", "-f", "defs.py"], tmp_path, home)
    assert counter.read_text().splitlines() == first_calls  # no step body ran again
    assert "Reused the finished output" in rerun.stderr + rerun.stdout
    assert fingerprints(output) == finished
    assert not (output / "_backups").exists()


@pytest.mark.slow
def test_make_main_on_a_clean_copy(tmp_path):
    # The working tree without what git ignores (outputs, caches, the venv).
    tracked = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    copy = tmp_path / "repo"
    for name in filter(None, tracked):
        source = REPO / name
        if source.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    (copy / ".venv").symlink_to(REPO / ".venv")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("DAGSTER_HOME", None)
    # `-o install`: the linked .venv is the repository's own; reinstalling the
    # package from the copy would point its editable install at this folder.
    result = subprocess.run(
        ["make", "-o", "install", "main"], cwd=copy, env=env, capture_output=True, text=True, timeout=HANG_S
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    import datasets

    output = copy / "output"
    steps = sorted(p.name for p in output.iterdir() if not p.name.startswith((".", "_")))
    assert steps == [
        "abstract-tweet-splits-train",
        "abstract-tweet-splits-validation",
        "generate-research-paper-abstracts",
        "generate-tweets-from-abstracts",
        "train-an-abstract--tweet-model",
    ]
    for name in steps:
        record = json.loads((output / name / "step.json").read_text())
        assert record["fingerprint"]

    def columns(name: str) -> dict[str, list]:
        return datasets.load_from_disk(str(output / name / "_dataset")).to_dict()

    abstracts = columns("generate-research-paper-abstracts")["abstracts"]
    assert len(abstracts) == 8 and all(text.strip() for text in abstracts)
    tweets = columns("generate-tweets-from-abstracts")
    assert tweets["abstracts"] == abstracts
    assert len(tweets["tweets"]) == 8 and all(text.strip() for text in tweets["tweets"])
    train = columns("abstract-tweet-splits-train")
    validation = columns("abstract-tweet-splits-validation")
    assert (len(train["abstracts"]), len(validation["abstracts"])) == (6, 2)
    assert sorted(train["abstracts"] + validation["abstracts"]) == sorted(abstracts)
    model = output / "train-an-abstract--tweet-model" / "_model"
    assert (model / "adapter_config.json").is_file()
    assert (model / "adapter_model.safetensors").stat().st_size > 0
    assert json.loads((model / "adapter_config.json").read_text())["r"] == 8
