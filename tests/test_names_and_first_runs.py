"""Step names and first runs: a name is NFC-normalized before it becomes a key and a folder
("Café" typed as NFC or NFD is one step, one folder); a non-ASCII name gets a stable ASCII
key and materializes; a name too long for a folder name is refused at declaration, and the
longest one allowed runs (sharded too: its work folders fit). Scripts started together on
a fresh output folder, without DAGSTER_HOME, all succeed: the instance under the output
folder is created under a lock."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
import unicodedata
from pathlib import Path

import dagster as dg
import pytest

from dreamer_dagster import Pipeline, dreamer_definitions
from dreamer_dagster.llms import OpenAI
from dreamer_dagster.names import MAX_KEY_LENGTH
from dreamer_dagster.steps import DataSource, ProcessWithPrompt, StepDeclarationError
from dreamer_dagster.steps.shards import shards_asset_key
from tests.support.foundation import step_json

REPO = Path(__file__).resolve().parents[1]


def materialize(
    steps: list, instance: dg.DagsterInstance, output: Path, **options
) -> dg.ExecuteInProcessResult:
    defs = dreamer_definitions(steps, output_folder=str(output))
    return dg.materialize(list(defs.assets), instance=instance, resources=dict(defs.resources), **options)


def step_folders(output: Path) -> list[str]:
    return sorted(path.name for path in output.iterdir() if not path.name.startswith((".", "_")))


def test_a_name_typed_as_nfc_or_nfd_is_one_step_and_one_folder(tmp_path, instance):
    # Hangul and the accent both decompose under NFD; the Hangul needs the hash in the key.
    nfc, nfd = (unicodedata.normalize(form, "Café 한국어") for form in ("NFC", "NFD"))
    assert nfc != nfd
    output = tmp_path / "output"
    with Pipeline(str(output)):
        first = DataSource(nfc, {"x": [1, 2]})
    assert materialize([first], instance, output).success
    with Pipeline(str(output)):
        second = DataSource(nfd, {"x": [1, 2]})
    assert second.name == first.name == nfc
    assert second.key == first.key and re.fullmatch(r"cafe_[0-9a-f]{8}", first.key)
    result = materialize([second], instance, output)
    logs = "\n".join(str(entry.user_message) for entry in instance.all_logs(result.run_id))
    assert "Reused the finished output" in logs
    # The folder follows DataDreamer's safe_fn, which keeps letters of any script (NFC).
    assert first.folder == second.folder == unicodedata.normalize("NFC", "café-한국어")
    assert step_folders(output) == [first.folder]
    assert step_json(output, first)["name"] == nfc
    with Pipeline(str(output)):
        DataSource(nfc, {"x": [1]})
        numbered = DataSource(nfd, {"x": [1]})  # the same name once normalized: DataDreamer's "#2"
    assert numbered.name == f"{nfc} #2"


def test_non_ascii_names_get_stable_ascii_keys_and_materialize(tmp_path, instance):
    expected = {  # pinned: a key is a folder name, so it must never change between releases
        "日本語": "77710aed",
        "Résumé Parsing": "resume_parsing",
        "Straße": "stra_e_787f4770",
        "Привет": "e58f1e8c",
    }
    output = tmp_path / "output"
    with Pipeline(str(output)):
        steps = [DataSource(name, {"text": [name, "b"]}) for name in expected]
        taken = steps[0].take(1)  # a step derived from a non-ASCII name reads it as input
    assert {step.name: step.key for step in steps} == expected
    assert all(re.fullmatch(r"[A-Za-z0-9_]+", step.asset_key.to_user_string()) for step in [*steps, taken])
    assert materialize([*steps, taken], instance, output).success
    folders = {"日本語": "日本語", "Résumé Parsing": "résumé-parsing", "Straße": "straße", "Привет": "привет"}
    assert {step.name: step.folder for step in steps} == folders  # DataDreamer's safe_fn
    assert step_folders(output) == sorted([*folders.values(), taken.folder])
    for step in steps:
        assert step_json(output, step)["name"] == step.name
    assert list(taken.output["text"]) == ["日本語"]


def test_a_name_too_long_for_a_folder_is_refused_and_the_longest_runs(tmp_path, instance, openai_server):
    with pytest.raises(StepDeclarationError) as caught:
        DataSource("x" * (MAX_KEY_LENGTH + 1), {"text": ["a"]})
    message = str(caught.value)
    assert "argument 'name'" in message and "255 bytes" in message
    assert "Fix: shorten the step name by at least 1 characters" in message
    assert not (tmp_path / "output").exists()

    output = tmp_path / "output"
    llm = OpenAI("fake-chat", base_url=openai_server.base_url)
    with Pipeline(str(output)):
        source = DataSource("S" * MAX_KEY_LENGTH, {"text": ["a", "b", "c", "d"]})
        made = ProcessWithPrompt(
            "P" * MAX_KEY_LENGTH,
            inputs={"inputs": source.output["text"]},
            args={"llm": llm, "instruction": "Say it."},
            shards=2,
        )
    # Its work folder (.staging/<step>-<host>--<pid>--<run>-...) and its shards' would pass
    # 255 bytes: they are shortened, and the step runs.
    assert materialize([source], instance, output).success
    for key in ("0", "1"):
        assert materialize(
            [source, made], instance, output, partition_key=key, selection=[shards_asset_key(made.asset_key)]
        ).success
    assert materialize([source, made], instance, output, selection=[made.asset_key]).success
    assert len(list(made.output["generations"])) == 4
    assert (output / ("s" * MAX_KEY_LENGTH) / "step.json").is_file()


FIRST_RUN_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from dreamer_dagster import Pipeline
    from dreamer_dagster.steps import DataSource

    flags = Path(sys.argv[1])
    (flags / f"ready-{os.getpid()}").touch()
    while not (flags / "go").exists():  # start the blocks together, imports done
        time.sleep(0.01)
    with Pipeline(os.environ["OUTPUT"]) as pipeline:
        numbers = DataSource(sys.argv[2], {"x": [1, 2, 3]})
        print("ROWS", len(numbers.output))
    """
)


@pytest.mark.parametrize("names", ["one step name", "a step name each"])
def test_scripts_started_together_on_a_fresh_output_folder_all_succeed(tmp_path, names):
    """Five first runs at once, no DAGSTER_HOME: each creates <output>/.dagster's storage
    only after the one before it (flock), so none fails with 'alembic_version already exists'."""
    script = tmp_path / "first_run.py"
    script.write_text(FIRST_RUN_SCRIPT)
    output, flags = tmp_path / "output", tmp_path / "flags"
    flags.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "DREAMER_RUN")}
    env.update(OUTPUT=str(output), PYTHONPATH=str(REPO))
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                str(script),
                str(flags),
                "Numbers" if names == "one step name" else f"Numbers {i}",
            ],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(5)
    ]
    try:
        deadline = time.monotonic() + 300
        while len(list(flags.glob("ready-*"))) < 5 and time.monotonic() < deadline:
            if any(process.poll() is not None for process in processes):
                break
            time.sleep(0.05)
        (flags / "go").touch()
        outputs = [process.communicate(timeout=300)[0] for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    failed = [text[-2000:] for process, text in zip(processes, outputs) if process.returncode != 0]
    assert not failed, "\n-----\n".join(failed)
    assert all("ROWS 3" in text for text in outputs)
    home = output / ".dagster"
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        assert len(instance.get_runs()) == 5  # every script's run is in the one instance
    finally:
        instance.dispose()
