"""After a trainer ran in a script, ``trainer.model_path`` is a ``str`` (DataDreamer's), yet a
model built from it fingerprints by the trainer as in a file Dagster loads; ``export_to_disk``
returns the model and ``trainer.model_card()`` prints DataDreamer's JSON card."""

from __future__ import annotations

import json
import runpy
import textwrap
from pathlib import Path

import pytest

from dreamer_dagster.cli import load_module
from dreamer_dagster.deferred import Deferred

pytestmark = pytest.mark.slow  # trains a tiny model

SCRIPT = textwrap.dedent(
    """
    import os
    from dreamer_dagster import Pipeline
    from dreamer_dagster.llms import HFTransformers
    from dreamer_dagster.steps import DataFromPrompt, DataSource
    from dreamer_dagster.trainers import TrainHFFineTune

    with Pipeline(os.environ["OUTPUT"]) as pipeline:
        data = DataSource("Greetings", data={"q": ["Say hi.", "Wave.", "Greet."], "a": ["Hi!", "Bye!", "Hey!"]})
        trainer = TrainHFFineTune("Tiny Tune", model_name=os.environ["BASE_MODEL"]).train(
            train_input=data.output["q"], train_output=data.output["a"], epochs=1, batch_size=3
        )
        PATH = trainer.model_path
        if pipeline.script_mode:  # DataDreamer's script: the path is a str once trained
            CONFIG = os.path.join(trainer.model_path, "config.json")
            EXISTS = os.path.exists(CONFIG)
            from transformers import AutoModelForCausalLM

            LOADED = AutoModelForCausalLM.from_pretrained(trainer.model_path)
            EXPORTED_IN_BLOCK = trainer.export_to_disk(os.path.join(os.environ["EXPORTS"], "in_block"))
        llm = HFTransformers(trainer.model_path)
        generated = DataFromPrompt(
            "Greet With The Tuned Model",
            args={"llm": llm, "instruction": "Say hi.", "n": 1, "max_new_tokens": 2},
        )
        FINGERPRINTS = {"llm": llm.model_fingerprint, "step": generated.fingerprint}
        UPSTREAM = [step.key for step in generated.upstream()]
    defs = pipeline.definitions()
    """
)


@pytest.fixture
def script(tmp_path: Path, tiny_llama: Path, monkeypatch: pytest.MonkeyPatch, script_home: str) -> Path:
    path = tmp_path / "pipeline.py"
    path.write_text(SCRIPT)
    monkeypatch.setenv("OUTPUT", str(tmp_path / "output"))
    monkeypatch.setenv("EXPORTS", str(tmp_path / "exports"))
    monkeypatch.setenv("BASE_MODEL", str(tiny_llama))
    monkeypatch.chdir(tmp_path)
    return path


def test_model_path_is_a_str_after_training_in_a_script_and_fingerprints_as_deferred(
    script: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from transformers import PreTrainedModel

    ran = runpy.run_path(str(script), run_name="__main__")
    model_dir = tmp_path / "output" / "tiny-tune" / "_model"
    path = ran["PATH"]
    assert isinstance(path, str) and str(path) == str(model_dir)
    assert ran["CONFIG"] == str(model_dir / "config.json") and ran["EXISTS"] is True
    assert isinstance(ran["LOADED"], PreTrainedModel)
    assert isinstance(ran["EXPORTED_IN_BLOCK"], PreTrainedModel)  # DataDreamer returns the model
    assert (tmp_path / "exports" / "in_block" / "config.json").is_file()
    assert "tiny_tune" in ran["UPSTREAM"]  # the model built from the str still adds the edge
    assert json.loads((tmp_path / "output" / "greet-with-the-tuned-model" / "step.json").read_text())

    # The same file loaded by Dagster: model_path stays deferred, and every fingerprint is the same.
    declared = vars(load_module(script))
    assert isinstance(declared["PATH"], Deferred)
    assert declared["FINGERPRINTS"] == ran["FINGERPRINTS"]
    assert declared["UPSTREAM"] == ran["UPSTREAM"]

    # After the block: export_to_disk returns the model, model_card() prints DataDreamer's card.
    trainer = ran["trainer"]
    exported = trainer.export_to_disk(tmp_path / "exports" / "after")
    assert (
        isinstance(exported, PreTrainedModel) and (tmp_path / "exports" / "after" / "config.json").is_file()
    )
    capsys.readouterr()
    assert trainer.model_card() is None
    card = json.loads(capsys.readouterr().out)
    assert card["name"] == "Tiny Tune" and card["type"] == "TrainHFFineTune"
    assert card["fingerprint"] == trainer.fingerprint
    assert card["model_card"]["Date & Time"]
    assert any("Transformers" in c for c in card["model_card"]["Citation Information"])
    assert "Greetings" in card["data_card"] and "Tiny Tune" in card["data_card"]
    assert "metrics" in card
