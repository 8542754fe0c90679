"""A trainer written DataDreamer's way (``_train``, ``_setup_folder_and_resume``, ``_load``,
``model_path``, ``_save_resource``, ``license``, ``citation``...) works here: in a script it
trains at ``train()``, ``model`` / ``model_path`` / ``model_card()`` behave as DataDreamer's,
and in a file Dagster loads it is an asset whose column arguments are its dependencies."""

from __future__ import annotations

import json
import runpy
import textwrap
from pathlib import Path

import pytest

from dreamer_dagster.cli import load_module

TRAINER = textwrap.dedent(
    '''
    import json
    import os

    from dreamer_dagster.trainers import Trainer

    class WordCounts:
        """A "model" with save_pretrained, as _save_resource expects."""

        def __init__(self, counts):
            self.counts = counts

        def save_pretrained(self, path, safe_serialization=True):
            os.makedirs(path, exist_ok=True)
            with open(os.path.join(path, "counts.json"), "w") as f:
                json.dump(self.counts, f)

    class TrainWordCounter(Trainer):
        def __init__(self, name, lowercase=True, force=False, verbose=None, log_level=None):
            super().__init__(name, force=force, verbose=verbose, log_level=log_level)
            self.lowercase = lowercase

        def train(self, train_input, min_count=1):
            self._setup_folder_and_resume(train_input=train_input, min_count=min_count)
            return self

        def _train(self, train_input, min_count):
            self.logger.info("counting words")
            counts = {}
            for text in train_input:
                for word in (text.lower() if self.lowercase else text).split():
                    counts[word] = counts.get(word, 0) + 1
            counts = {w: c for w, c in counts.items() if c >= min_count}
            self._save_resource(WordCounts(counts), os.path.join(self._output_folder_path, "_model"))

        def _load(self, with_optimizations=True):
            with open(os.path.join(self.model_path, "counts.json")) as f:
                return json.load(f)

        @property
        def model_path(self):
            return os.path.join(self._output_folder_path, "_model")

        @property
        def license(self):
            return "MIT"

        @property
        def citation(self):
            return ["@misc{counter, title={Word counts}}"]
    '''
)

SCRIPT = textwrap.dedent(
    """
    import os
    from dreamer_dagster import Pipeline
    from dreamer_dagster.steps import DataSource
    from word_counter import TrainWordCounter

    with Pipeline(os.environ["OUTPUT"]) as pipeline:
        data = DataSource("Texts", data={"text": ["The cat", "the dog", "A cat"]})
        trainer = TrainWordCounter("Counter", lowercase=os.environ.get("LOWER", "1") == "1")
        RETURNED = trainer.train(data.output["text"], min_count=2)
        FINGERPRINT = trainer.fingerprint
        UPSTREAM = [step.name for step in trainer.upstream()]
        if pipeline.script_mode:  # DataDreamer's script: trained by train()
            PATH = trainer.model_path
            MODEL = trainer.model
    """
)


@pytest.fixture
def script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script_home: str) -> Path:
    (tmp_path / "word_counter.py").write_text(TRAINER)
    path = tmp_path / "pipeline.py"
    path.write_text(SCRIPT)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("OUTPUT", str(tmp_path / "output"))
    monkeypatch.chdir(tmp_path)
    return path


def test_a_datadreamer_style_trainer_trains_loads_and_cards(
    script: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran = runpy.run_path(str(script), run_name="__main__")
    trainer = ran["trainer"]
    assert ran["RETURNED"] is trainer
    model_dir = tmp_path / "output" / trainer.folder / "_model"
    assert ran["PATH"] == str(model_dir) and isinstance(ran["PATH"], str)
    assert ran["MODEL"] == {"the": 2, "cat": 2}  # _train's columns were the values; _load read them
    assert json.loads((model_dir / "counts.json").read_text()) == {"the": 2, "cat": 2}
    record = json.loads((tmp_path / "output" / trainer.folder / "step.json").read_text())
    assert record["args"]["min_count"] == 2 and record["args"]["trainer_attributes"] == {"lowercase": True}
    card = record["data_card"]["Counter"]
    assert card["License Information"] == ["MIT"]
    assert card["Citation Information"] == ["@misc{counter, title={Word counts}}"]
    capsys.readouterr()
    trainer.model_card()
    printed = json.loads(capsys.readouterr().out)
    assert printed["type"] == "TrainWordCounter" and printed["model_card"]["License Information"] == ["MIT"]
    assert trainer.version == 1.0 and trainer.display_name == "Counter" and trainer.resumable

    # Loaded by Dagster: an asset downstream of its column, fingerprinted by its attributes too.
    declared = vars(load_module(script))
    assert declared["UPSTREAM"] == ["Texts"] and declared["FINGERPRINT"] == ran["FINGERPRINT"]
    monkeypatch.setenv("LOWER", "0")
    assert vars(load_module(script))["FINGERPRINT"] != ran["FINGERPRINT"]
