"""Declaring trainers: two-call declaration, fingerprints, errors, helpers (no training here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dreamer_dagster import Deferred, dreamer_definitions
from dreamer_dagster.steps import DataSource, StepDeclarationError
from dreamer_dagster.trainers import TrainHFClassifier, TrainHFFineTune, latest_checkpoint
from dreamer_dagster.trainers.train_hf_classifier import label_maps
from dreamer_dagster.trainers.train_hf_fine_tune import chat_template_from_prompt_template
from tests.support.waiting import HANG_S

REPO = Path(__file__).resolve().parents[1]


def pairs(name: str = "Pairs", answers: tuple[str, ...] = ("1", "2", "3", "4")) -> DataSource:
    return DataSource(name, {"question": ["a", "b", "c", "d"], "answer": list(answers)})


def fine_tune(data: DataSource, name: str = "Tune", **train_args) -> TrainHFFineTune:
    model_args = {key: train_args.pop(key) for key in ("peft_config", "dtype", "device") if key in train_args}
    return TrainHFFineTune(name, model_name="some/model", **model_args).train(
        train_input=data.output["question"], train_output=data.output["answer"], **train_args
    )


def test_a_trainer_has_no_fingerprint_before_train() -> None:
    trainer = TrainHFFineTune("Untrained", model_name="some/model")
    trainer.unload_model()  # harmless while declaring
    for use in (lambda: trainer.fingerprint, lambda: trainer.model_path, lambda: trainer.asset):
        with pytest.raises(StepDeclarationError, match=r"\.train\(") as error:
            use()
        assert "'Untrained'" in str(error.value)
    with pytest.raises(StepDeclarationError, match=r"\.train\("):
        dreamer_definitions([trainer], output_folder="unused")


def test_train_declares_the_asset_and_returns_the_trainer() -> None:
    data = pairs()
    trainer = TrainHFFineTune("Tune Tweets", model_name="some/model", peft_config={"r": 4})
    returned = trainer.train(
        train_input=data.output["question"], train_output=data.output["answer"], epochs=1, batch_size=2
    )
    assert returned is trainer
    assert trainer.asset_key.path == ["tune_tweets"]
    assert trainer.asset.code_versions_by_key[trainer.asset_key] == trainer.fingerprint
    assert {key.path[0] for key in trainer.asset.dependency_keys} == {"pairs"}
    assert trainer.args["epochs"] == 1 and trainer.args["peft_config"] == {"r": 4}
    path = trainer.model_path
    assert isinstance(path, Deferred) and path.step is trainer and path.source == ("model_path",)
    with pytest.raises(StepDeclarationError, match="already called"):
        trainer.train(train_input=data.output["question"], train_output=data.output["answer"])


def test_a_trainer_or_its_model_path_is_a_model_downstream() -> None:
    data = pairs()
    first = fine_tune(data, "First")
    chained = TrainHFFineTune("Second", model_name=first).train(
        train_input=data.output["question"], train_output=data.output["answer"]
    )
    by_path = TrainHFFineTune("Third", model_name=first.model_path).train(
        train_input=data.output["question"], train_output=data.output["answer"]
    )
    for trainer in (chained, by_path):
        assert {key.path[0] for key in trainer.asset.dependency_keys} == {"pairs", "first"}
    keys = {
        key.path[0] for key in dreamer_definitions([chained], output_folder="unused").resolve_all_asset_keys()
    }
    assert keys == {"pairs", "first", "second"}
    before = chained.fingerprint
    changed_first = fine_tune(pairs(), "First", learning_rate=0.5)
    again = TrainHFFineTune("Second", model_name=changed_first).train(
        train_input=data.output["question"], train_output=data.output["answer"]
    )
    assert again.fingerprint != before


def test_fingerprint_follows_training_arguments_model_and_data() -> None:
    base = fine_tune(pairs(), epochs=1).fingerprint
    assert fine_tune(pairs(), epochs=1).fingerprint == base  # stable
    assert fine_tune(pairs(), epochs=2).fingerprint != base
    assert fine_tune(pairs(), epochs=1, learning_rate=0.1).fingerprint != base
    assert fine_tune(pairs(), epochs=1, peft_config={"r": 8}).fingerprint != base
    assert fine_tune(pairs(), epochs=1, dtype="bfloat16").fingerprint != base
    assert fine_tune(pairs(), epochs=1, save_steps=3).fingerprint != base  # a TrainingArguments field
    assert fine_tune(pairs(answers=("1", "2", "3", "5")), epochs=1).fingerprint != base
    # where it trains and what only observes do not change the model
    assert fine_tune(pairs(), epochs=1, device="cpu").fingerprint == base
    assert fine_tune(pairs(), epochs=1, callbacks=[object()]).fingerprint == base


def test_batch_size_enters_the_fingerprint_as_the_global_batch() -> None:
    one = fine_tune(pairs(), batch_size=8)
    two = fine_tune(pairs(), batch_size=4, device=[0, 1])
    assert one.fingerprint_content()["args"]["batch_size"] == 8
    assert two.fingerprint_content()["args"]["batch_size"] == 8
    assert "fsdp" in two.fingerprint_content()["args"]  # distributed settings count when distributed
    assert "fsdp" not in one.fingerprint_content()["args"]


def test_peft_config_takes_a_dict_or_a_peft_object() -> None:
    from peft import LoraConfig

    as_object = fine_tune(pairs(), peft_config=LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj"]))
    fields = {"r": 4, "lora_alpha": 16, "target_modules": ["q_proj"]}
    assert as_object.describe_args()["peft_config"] == fields
    # the object and the dict of its non-default fields declare the same training
    assert fine_tune(pairs(), peft_config=fields).fingerprint == as_object.fingerprint
    assert fine_tune(pairs(), peft_config={**fields, "r": 2}).fingerprint != as_object.fingerprint
    with pytest.raises(StepDeclarationError, match="peft_config"):
        TrainHFFineTune("Bad", model_name="some/model", peft_config=42)


@pytest.mark.parametrize(
    ("declare", "message"),
    [
        (lambda: TrainHFFineTune("T", model_name=3), "model_name"),
        (lambda: TrainHFFineTune("T", model_name="m", chat_prompt_template="no placeholder"), "{{prompt}}"),
        (lambda: TrainHFFineTune("T", model_name="m", system_prompt=5), "system_prompt"),
        (lambda: TrainHFFineTune("T", model_name=pairs("Not A Trainer")), "not a trainer"),
        (lambda: fine_tune(pairs(), output_dir="/tmp/elsewhere"), "output_dir"),
    ],
)
def test_bad_declarations_name_the_argument(declare, message: str) -> None:
    with pytest.raises((StepDeclarationError, TypeError)) as error:
        declare()
    assert message in str(error.value)


def test_validation_inputs_come_in_pairs() -> None:
    data = pairs()
    trainer = TrainHFClassifier("Classify", model_name="some/model")
    with pytest.raises(StepDeclarationError, match="validation_output"):
        trainer.train(
            train_input=data.output["question"],
            train_output=data.output["answer"],
            validation_input=data.output["question"],
        )
    # a failed train() leaves the trainer undeclared, so it can be fixed
    trainer.train(train_input=data.output["question"], train_output=data.output["answer"])
    assert trainer.fingerprint
    with pytest.raises(StepDeclarationError, match="no output column"):
        TrainHFClassifier("C2", model_name="m").train(train_input=data.output["nope"], train_output=None)


def test_declaring_a_trainer_imports_no_heavy_library() -> None:
    code = (
        "import sys\n"
        "from dreamer_dagster import dreamer_definitions\n"
        "from dreamer_dagster.steps import DataSource\n"
        "from dreamer_dagster.trainers import TrainHFClassifier, TrainHFFineTune\n"
        "d = DataSource('D', {'x': ['a'], 'y': ['b']})\n"
        "t = TrainHFFineTune('T', model_name='m', peft_config={'r': 4}).train("
        "train_input=d.output['x'], train_output=d.output['y'])\n"
        "c = TrainHFClassifier('C', model_name=t).train(train_input=d.output['x'], train_output=d.output['y'])\n"
        "dreamer_definitions([c], output_folder='unused')\n"
        "print([m for m in ('torch', 'transformers', 'trl', 'peft') if m in sys.modules])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=HANG_S
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_latest_checkpoint_is_the_newest_complete_one(tmp_path: Path) -> None:
    assert latest_checkpoint(tmp_path / "missing") is None
    for step, complete in ((2, True), (10, True), (12, False)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if complete:
            (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (tmp_path / "README.md").write_text("not a checkpoint")
    assert latest_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")


def test_label_maps() -> None:
    assert label_maps([["pos", "neg", "pos"], ["neu"]]) == ({"neg": 0, "neu": 1, "pos": 2}, False)
    assert label_maps([[10, 2, 2]]) == ({"2": 0, "10": 1}, False)
    assert label_maps([[["a", "b"], ["c"], []]]) == ({"a": 0, "b": 1, "c": 2}, True)


def test_a_prompt_template_becomes_a_chat_template() -> None:
    import jinja2

    template = chat_template_from_prompt_template("<s>{{system_prompt}}\nQ: {{prompt}}\nA: ", "Be brief.")
    render = jinja2.Environment().from_string(template).render
    user = {"role": "user", "content": "Why?"}
    assert render(messages=[user], eos_token="</s>") == "<s>Be brief.\nQ: Why?\nA: "
    system = {"role": "system", "content": "Be long."}
    answer = {"role": "assistant", "content": "Because."}
    assert (
        render(messages=[system, user, answer], eos_token="</s>") == "<s>Be long.\nQ: Why?\nA: Because.</s>"
    )


def test_a_distributed_worker_gets_a_picklable_trainer_and_run(tmp_path: Path) -> None:
    import pickle

    import datasets

    from dreamer_dagster.trainers import TrainingRun
    from dreamer_dagster.trainers.distributed import worker_copy

    data = pairs()
    first = fine_tune(data, "First")
    trainer = TrainHFFineTune("Distributed", model_name=first.model_path, device=[0, 1]).train(
        train_input=data.output["question"], train_output=data.output["answer"], batch_size=2
    )
    assert trainer.asset is not None and data.asset is not None  # cached Dagster objects stay behind
    run = TrainingRun(
        step_name=trainer.name,
        step_key=trainer.key,
        fingerprint=trainer.fingerprint,
        args={**trainer.args, "model_name": str(tmp_path / "first" / "_model")},
        datasets={"train": datasets.Dataset.from_dict({"input": ["a"], "output": ["b"]}), "validation": None},
        model_dir=tmp_path / "model",
        checkpoints_dir=tmp_path / "checkpoints",
        resume_from_checkpoint=None,
        work_dir=tmp_path,
        log=lambda message: None,
    )
    worker, copied = pickle.loads(pickle.dumps((worker_copy(trainer, run), run)))
    assert "asset" not in vars(worker) and worker.inputs == {}
    assert worker.fingerprint == trainer.fingerprint and worker.args["model_name"] == run.args["model_name"]
    assert worker.args["device"] == [0, 1] and worker.is_distributed
    assert copied.log is None and copied.split("train")["input"] == ["a"]
    assert trainer.inputs  # the declared trainer is untouched


def test_equal_peft_configs_fingerprint_equally_however_spelled() -> None:
    from peft import LoraConfig, PromptTuningConfig

    spellings = [
        LoraConfig(r=8),  # 8 is LoRA's default rank
        {"r": 8},
        {},
        {"r": 8, "lora_alpha": 8, "peft_type": "LORA", "peft_version": "0.0.1"},
    ]
    assert len({fine_tune(pairs(), peft_config=value).fingerprint for value in spellings}) == 1
    modules = [
        LoraConfig(target_modules=["v_proj", "q_proj"], task_type="CAUSAL_LM"),
        {"target_modules": ["q_proj", "v_proj"], "task_type": "CAUSAL_LM"},
        {"target_modules": ("v_proj", "q_proj", "q_proj"), "task_type": "CAUSAL_LM"},
    ]
    assert len({fine_tune(pairs(), peft_config=value).fingerprint for value in modules}) == 1
    assert (
        fine_tune(pairs(), peft_config={"r": 16}).fingerprint
        != fine_tune(pairs(), peft_config={}).fingerprint
    )
    # another peft config class: by its own non-default fields, never its library version
    prompt = PromptTuningConfig(num_virtual_tokens=4, task_type="CAUSAL_LM")
    assert (
        fine_tune(pairs(), peft_config=prompt).fingerprint
        == fine_tune(pairs(), peft_config=prompt).fingerprint
    )


def test_lora_defaults_table_matches_the_installed_peft() -> None:
    from peft import LoraConfig

    from dreamer_dagster.library_defaults import LORA_CONFIG_DEFAULTS, _plain

    installed = {
        k: _plain(v) for k, v in LoraConfig().to_dict().items() if k not in ("peft_type", "peft_version")
    }
    assert installed == LORA_CONFIG_DEFAULTS


def test_declaring_with_a_peft_dict_imports_no_peft() -> None:
    code = (
        "import sys; from tests.test_trainers_base import fine_tune, pairs;"
        "fine_tune(pairs(), peft_config={'r': 8, 'target_modules': ['q_proj']});"
        "print('peft' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True, timeout=HANG_S
    )
    assert result.stdout.strip().splitlines()[-1] == "False"
