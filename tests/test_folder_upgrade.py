"""Nothing paid for is lost on upgrade: an output folder written by the release at 8b57660
(underscore step folders) is moved under DataDreamer's folder names on the first run of
the current code, with a log line naming both, and reused with no model call.

The folder is ``tests/fixtures/upgrade_from_8b57660/output`` (made by that release's code
running ``pipeline.py`` beside it; see its docstring)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg

from dreamer_dagster import metadata as keys
from tests.support.foundation import materialize

FIXTURE = Path(__file__).parent / "fixtures" / "upgrade_from_8b57660"
OLD_TWEETS_FP = "c442928a553c2a2e"  # write_tweets/step.json ("Write a tweet.")
OLD_HAIKU_FP = "e8381cacc1680c4a"  # _backups/write_tweets/<fp> ("Write a haiku.")


def _pipeline():
    spec = importlib.util.spec_from_file_location("upgrade_pipeline", FIXTURE / "pipeline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _old_output(tmp_path: Path) -> Path:
    output = tmp_path / "output"
    shutil.copytree(FIXTURE / "output", output)
    return output


def _messages(instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult) -> list[str]:
    return [str(entry.user_message) for entry in instance.all_logs(result.run_id) if entry.user_message]


def test_a_folder_written_by_the_last_release_is_moved_and_reused_with_no_model_call(tmp_path, instance):
    output = _old_output(tmp_path)
    topics, tweets, first = _pipeline().declare("Write a tweet.")
    assert (topics.folder, tweets.folder, first.folder) == (
        "seed-topics",
        "write-tweets",
        "write-tweets-take",
    )

    result = materialize([first], instance, output)

    assert tweets.args["llm"].prompts_sent == []  # zero model calls
    for old, new in [
        ("seed_topics", "seed-topics"),
        ("write_tweets", "write-tweets"),
        ("write_tweets_take", "write-tweets-take"),
    ]:
        assert not (output / old).exists() and (output / new / "step.json").is_file()
    assert (output / "_backups" / "write-tweets" / OLD_HAIKU_FP / "step.json").is_file()
    assert not (output / "_backups" / "write_tweets").exists()
    messages = _messages(instance, result)
    assert any("Moved step folder 'write_tweets' to 'write-tweets'" in m for m in messages), messages
    assert any(
        f"Moved backup _backups/write_tweets/{OLD_HAIKU_FP} to _backups/write-tweets/" in m for m in messages
    )
    # The steps the old release finished are reused as they are (same fingerprints, no run).
    for step in (topics, tweets):
        [event] = result.asset_materializations_for_node(step.key)
        assert event.metadata[keys.REUSED].value is True, step.name
    assert tweets.fingerprint == OLD_TWEETS_FP
    import datasets

    rows = datasets.load_from_disk(str(output / "write-tweets" / "_dataset"))["tweets"]
    assert rows == [f"tweet about {topic}" for topic in _pipeline().TOPICS]

    # The backed-up configuration comes back from _backups/<new name>/: no model call either.
    _, haiku, _ = _pipeline().declare("Write a haiku.")
    again = materialize([haiku], instance, output)
    assert haiku.args["llm"].prompts_sent == [] and haiku.fingerprint == OLD_HAIKU_FP
    [event] = again.asset_materializations_for_node(haiku.key)
    assert event.metadata[keys.REUSED].value is True
    assert (output / "_backups" / "write-tweets" / OLD_TWEETS_FP / "step.json").is_file()


def test_dreamer_verify_moves_an_old_folder_first_and_finds_it_in_sync(tmp_path):
    output = _old_output(tmp_path)
    definitions = tmp_path / "defs.py"
    definitions.write_text(
        "import importlib.util\n"
        "from dreamer_dagster import dreamer_definitions\n"
        f"spec = importlib.util.spec_from_file_location('p', {str(FIXTURE / 'pipeline.py')!r})\n"
        "p = importlib.util.module_from_spec(spec); spec.loader.exec_module(p)\n"
        "topics, tweets, first = p.declare('Write a tweet.')\n"
        f"defs = dreamer_definitions([tweets], output_folder={str(output)!r})\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "dreamer_dagster", "verify", "-f", str(definitions)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Moved step folder 'write_tweets' to 'write-tweets'" in done.stdout
    lines = {
        line.split()[1]: line.split()[0]
        for line in done.stdout.splitlines()
        if line[:2] in ("OK", "DR", "MI")
    }
    assert lines == {"seed_topics": "OK", "write_tweets": "OK"}, done.stdout
    assert (output / "write-tweets" / "step.json").is_file() and not (output / "write_tweets").exists()
