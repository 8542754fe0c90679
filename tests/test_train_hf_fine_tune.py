"""TrainHFFineTune through real Dagster: LoRA on SmolLM2, a seq2seq T5, chained trainers,
resuming a killed run from its checkpoint, backups and restores."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg
import pytest

from dreamer_dagster.llms import HFTransformers
from dreamer_dagster.steps import DataSource, ProcessWithPrompt
from dreamer_dagster.trainers import TrainHFFineTune
from tests.support.foundation import materialization_metadata, materialize, rows, stale_statuses, step_json
from tests.support.waiting import HANG_S

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
LORA = {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]}


def tweets() -> DataSource:
    return DataSource(
        "Abstracts and Tweets",
        {
            "abstract": [
                "We train a parser.",
                "We translate poems.",
                "We summarize news.",
                "We tag names.",
                "We answer questions.",
                "We label emotions.",
            ],
            "tweet": ["Parsing!", "Poetry!", "News!", "Names!", "Answers!", "Feelings!"],
        },
    )


def lora_weights(model_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(model_dir / "adapter_model.safetensors"))


def test_lora_fine_tune_of_smollm2_loads_generates_and_merges(
    tmp_path: Path, instance: dg.DagsterInstance, smollm2: Path
) -> None:
    import torch
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    output = tmp_path / "output"
    # The first two rows to train, the third to validate (DataDreamer's splits cut in order).
    splits = tweets().take(3).splits(train_size=2, validation_size=1, name="Tweet Splits")
    trainer = TrainHFFineTune(
        "Abstract to Tweet", model_name=str(smollm2), system_prompt="Tweet.", peft_config=LORA
    ).train(
        train_input=splits["train"].output["abstract"],
        train_output=splits["train"].output["tweet"],
        validation_input=splits["validation"].output["abstract"],
        validation_output=splits["validation"].output["tweet"],
        epochs=2,
        batch_size=2,
        learning_rate=1e-3,
        max_length=32,
    )
    result = materialize([trainer], instance, output)

    record = step_json(output, trainer)
    assert record["model"] is True and record["fingerprint"] == trainer.fingerprint
    model_dir = output / trainer.folder / "_model"
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "training_args.json"):
        assert (model_dir / name).is_file(), name
    assert json.loads((model_dir / "seed.json").read_text()) == 42
    assert json.loads((model_dir / "training_args.json").read_text())["num_train_epochs"] == 2
    info = json.loads((model_dir / "dreamer_trainer.json").read_text())
    assert info["task"] == "causal_lm" and info["adapter"] is True and info["base_model"] == str(smollm2)
    assert any(float(w.abs().sum()) > 0 for k, w in lora_weights(model_dir).items() if "lora_B" in k)

    # evaluation each epoch, the metrics as materialization metadata
    assert [row["epoch"] for row in record["metrics_table"]] == [1, 2]
    assert all("eval_loss" in row and "train_loss" in row for row in record["metrics_table"])
    metadata = materialization_metadata(result, trainer)
    assert "| epoch |" in metadata["dreamer/metrics"]
    assert metadata["dreamer/eval_loss"] == pytest.approx(record["metrics"]["eval_loss"])
    assert metadata["dreamer/global_step"] == 2

    # the model card carries the training data's data card, the base model and a usage snippet
    card = (model_dir / "README.md").read_text()
    assert f"base_model: {json.dumps(str(smollm2))}" in card
    assert "## Data Card" in card and "## Abstracts and Tweets" in card and "## Usage" in card
    assert str(model_dir) in card
    data_card = json.loads((model_dir / "data_card.json").read_text())
    assert {"Abstracts and Tweets", "Abstract to Tweet"} <= set(data_card)
    upstream = {name: entry for name, entry in record["data_card"].items() if name != trainer.name}
    assert upstream == {name: entry for name, entry in data_card.items() if name != trainer.name}

    # it loads back with peft (and with transformers alone) and generates
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    messages = [{"role": "system", "content": "Tweet."}, {"role": "user", "content": "We train a parser."}]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    inputs = tokenizer(prompt, return_tensors="pt")
    adapted = AutoPeftModelForCausalLM.from_pretrained(str(model_dir)).eval()
    generated = adapted.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert generated.shape[1] > inputs["input_ids"].shape[1]
    assert (
        AutoModelForCausalLM.from_pretrained(str(model_dir)).generate(**inputs, max_new_tokens=2).shape[1] > 1
    )

    # a merged export is one call and predicts what base + adapter predicts
    merged_dir = trainer.export_merged(tmp_path / "merged", output_folder=output)
    assert not (merged_dir / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(str(merged_dir)).eval()
    with torch.no_grad():
        expected = adapted(**inputs).logits
        actual = merged(**inputs).logits
    assert torch.allclose(expected, actual, atol=1e-3)


def test_seq2seq_fine_tune_of_a_tiny_t5(tmp_path: Path, instance: dg.DagsterInstance, tiny_t5: Path) -> None:
    from safetensors.torch import load_file
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    output = tmp_path / "output"
    data = tweets()
    trainer = TrainHFFineTune("Tiny T5", model_name=str(tiny_t5)).train(
        train_input=data.output["abstract"], train_output=data.output["tweet"], epochs=1, batch_size=3
    )
    materialize([trainer], instance, output)

    model_dir = output / trainer.folder / "_model"
    info = json.loads((model_dir / "dreamer_trainer.json").read_text())
    assert info["task"] == "seq2seq_lm" and info["adapter"] is False
    record = step_json(output, trainer)
    assert record["metrics"]["global_step"] == 2 and "eval_loss" not in record["metrics"]
    before, after = (
        load_file(str(tiny_t5 / "model.safetensors")),
        load_file(str(model_dir / "model.safetensors")),
    )
    changed = [k for k in before if k in after and not (before[k] == after[k]).all()]
    assert changed, "training changed no weight"
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForSeq2SeqLM.from_pretrained(str(model_dir))
    inputs = tokenizer(["We tag names."], return_tensors="pt", return_token_type_ids=False)
    generated = model.generate(**inputs, max_new_tokens=3)
    assert generated.shape[0] == 1


def test_a_chat_prompt_template_and_a_trainer_as_the_next_base_model(
    tmp_path: Path, instance: dg.DagsterInstance, tiny_llama: Path
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    output = tmp_path / "output"
    data = tweets()
    first = TrainHFFineTune(
        "First Tune",
        model_name=str(tiny_llama),
        chat_prompt_template="### System: {{system_prompt}}\n### Abstract: {{prompt}}\n### Tweet: ",
        system_prompt="Write a tweet.",
        peft_config=LORA,
    ).train(train_input=data.output["abstract"], train_output=data.output["tweet"], epochs=1, batch_size=3)
    second = TrainHFFineTune("Second Tune", model_name=first, chat_prompt_template=None).train(
        train_input=data.output["abstract"], train_output=data.output["tweet"], epochs=1, batch_size=6
    )
    assert {key.path[0] for key in second.asset.dependency_keys} == {"abstracts_and_tweets", "first_tune"}
    # the trained models stand where an LLM is expected downstream
    llms = {
        "Trained Model": HFTransformers(second),
        "Base and Adapter": HFTransformers(str(tiny_llama), adapter_name=first),
        "Adapter Path": HFTransformers(str(tiny_llama), adapter_name=first.model_path),
    }
    prompts = [
        ProcessWithPrompt(
            f"Tweets by {name}",
            inputs={"inputs": data.output["abstract"]},
            args={"llm": llm, "instruction": "Tweet it.", "max_new_tokens": 2, "temperature": 0.0},
        )
        for name, llm in llms.items()
    ]
    materialize(prompts, instance, output)
    for step in prompts:
        assert len(rows(output, step)["generations"]) == 6

    first_dir = output / "first-tune" / "_model"
    tokenizer = AutoTokenizer.from_pretrained(str(first_dir))
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": "We tag names."}], tokenize=False, add_generation_prompt=True
    )
    assert rendered == "### System: Write a tweet.\n### Abstract: We tag names.\n### Tweet: "

    second_dir = output / "second-tune" / "_model"
    assert (second_dir / "model.safetensors").is_file() and not (second_dir / "adapter_config.json").exists()
    model = AutoModelForCausalLM.from_pretrained(str(second_dir))
    assert model.generate(**tokenizer(["hi"], return_tensors="pt"), max_new_tokens=2).shape[1] >= 2
    card = json.loads((second_dir / "data_card.json").read_text())
    assert "First Tune" in card and "Second Tune" in card


def test_early_stopping_ends_training_when_validation_stops_improving(
    tmp_path: Path, instance: dg.DagsterInstance, tiny_llama: Path
) -> None:
    output = tmp_path / "output"
    data = tweets()
    # learning_rate=0: the validation loss never improves, so patience 1 stops after epoch 2
    trainer = TrainHFFineTune("Stopped Early", model_name=str(tiny_llama), peft_config=LORA).train(
        train_input=data.output["abstract"],
        train_output=data.output["tweet"],
        validation_input=data.output["abstract"],
        validation_output=data.output["tweet"],
        epochs=6,
        batch_size=3,
        gradient_accumulation_steps=2,
        learning_rate=0.0,
        early_stopping_patience=1,
    )
    materialize([trainer], instance, output)
    record = step_json(output, trainer)
    assert [row["epoch"] for row in record["metrics_table"]] == [1, 2]
    metrics = record["metrics"]
    assert metrics["global_step"] == 2  # one optimizer step an epoch: 2 batches accumulated
    assert metrics["best_global_step"] == 1 and metrics["best_metric"] == metrics["eval_loss"]
    args = json.loads((output / "stopped-early" / "_model" / "training_args.json").read_text())
    assert args["gradient_accumulation_steps"] == 2 and args["load_best_model_at_end"] is True


RESUMABLE_DEFINITIONS = textwrap.dedent(
    """
    import os
    import time

    import dagster as dg
    from transformers import TrainerCallback

    from dreamer_dagster import Pipeline
    from dreamer_dagster.steps import DataSource
    from dreamer_dagster.trainers import TrainHFFineTune


    class SlowDown(TrainerCallback):
        \"\"\"Sleeps after each step while SLOW_TRAINING is set, so the test can kill mid-run.\"\"\"

        def on_step_end(self, args, state, control, **kwargs):
            time.sleep(float(os.environ.get("SLOW_TRAINING") or 0))


    with Pipeline({output!r}) as pipeline:
        data = DataSource("Pairs", {{"q": ["a b", "c d", "e f", "g h"], "a": ["1", "2", "3", "4"]}})
        TrainHFFineTune("Tune", model_name={model!r}, peft_config={lora!r}).train(
            train_input=data.output["q"],
            train_output=data.output["a"],
            epochs=2,
            batch_size=1,
            save_strategy="steps",
            save_steps=1,
            callbacks=[SlowDown()],
        )

    defs = pipeline.definitions(executor=dg.in_process_executor)
    """
)


def test_a_killed_training_resumes_from_its_last_checkpoint(tmp_path: Path, tiny_llama: Path) -> None:
    output = tmp_path / "output"
    home = tmp_path / "dagster_home"
    home.mkdir()
    (tmp_path / "defs.py").write_text(
        RESUMABLE_DEFINITIONS.format(output=str(output), model=str(tiny_llama), lora=LORA)
    )
    command = [str(BIN / "dagster"), "asset", "materialize", "--select", "*tune", "-f", "defs.py"]
    env = {**os.environ, "DAGSTER_HOME": str(home), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    checkpoints = output / "tune" / "_checkpoints"

    slow = subprocess.Popen(
        command,
        cwd=tmp_path,
        env={**env, "SLOW_TRAINING": "1.5"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + HANG_S
        while not list(checkpoints.glob("checkpoint-*/trainer_state.json")):
            assert slow.poll() is None, "the first run ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.1)
    finally:
        os.killpg(slow.pid, signal.SIGKILL)
        slow.wait()
    assert not (output / "tune" / "step.json").exists()
    killed_at = max(int(p.name.split("-")[1]) for p in checkpoints.glob("checkpoint-*"))
    assert 1 <= killed_at < 8

    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=HANG_S)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    record = json.loads((output / "tune" / "step.json").read_text())
    metrics = record["metrics"]
    assert metrics["resumed_from_step"] >= killed_at >= 1
    assert metrics["global_step"] == 8
    assert metrics["steps_this_run"] == 8 - metrics["resumed_from_step"] < 8
    assert record["stats"]["resumed"] is True
    assert "Resuming 'Tune' from checkpoint-" in result.stdout + result.stderr
    # the training history spans both runs
    state = json.loads((checkpoints / "checkpoint-8" / "trainer_state.json").read_text())
    assert sorted(entry["step"] for entry in state["log_history"] if "loss" in entry) == list(range(1, 9))


def declare_small(model: Path, learning_rate: float) -> TrainHFFineTune:
    data = DataSource("Pairs", {"q": ["a b", "c d", "e f", "g h"], "a": ["1", "2", "3", "4"]})
    return TrainHFFineTune("Tune", model_name=str(model), peft_config=LORA).train(
        train_input=data.output["q"],
        train_output=data.output["a"],
        validation_input=data.output["q"],
        validation_output=data.output["a"],
        epochs=1,
        batch_size=2,
        learning_rate=learning_rate,
    )


def test_a_changed_argument_backs_the_model_up_and_reverting_restores_it(
    tmp_path: Path, instance: dg.DagsterInstance, tiny_llama: Path
) -> None:
    output = tmp_path / "output"
    original = declare_small(tiny_llama, 1e-3)
    materialize([original], instance, output)
    weights = (output / "tune" / "_model" / "adapter_model.safetensors").read_bytes()
    assert stale_statuses(instance, [original])["tune"] == "FRESH"

    changed = declare_small(tiny_llama, 5e-3)
    assert changed.fingerprint != original.fingerprint
    assert stale_statuses(instance, [changed])["tune"] == "STALE"
    materialize([changed], instance, output)
    backup = output / "_backups" / "tune" / original.fingerprint
    assert json.loads((backup / "step.json").read_text())["fingerprint"] == original.fingerprint
    assert (backup / "_model" / "adapter_model.safetensors").read_bytes() == weights
    assert step_json(output, changed)["fingerprint"] == changed.fingerprint

    reverted = declare_small(tiny_llama, 1e-3)
    result = materialize([reverted], instance, output, only=[reverted])
    assert materialization_metadata(result, reverted)["dreamer/reused"] is True
    assert not backup.exists()
    assert step_json(output, reverted)["fingerprint"] == original.fingerprint
    assert (output / "tune" / "_model" / "adapter_model.safetensors").read_bytes() == weights
    assert (output / "_backups" / "tune" / changed.fingerprint / "step.json").is_file()
    assert stale_statuses(instance, [reverted])["tune"] == "FRESH"


@pytest.mark.skipif("__import__('torch').cuda.device_count() >= 2", reason="GPUs would train distributed")
def test_several_devices_without_gpus_train_in_one_process(
    tmp_path: Path, instance: dg.DagsterInstance, tiny_llama: Path
) -> None:
    output = tmp_path / "output"
    data = tweets()
    trainer = TrainHFFineTune("Wide Tune", model_name=str(tiny_llama), device=[0, 1], peft_config=LORA).train(
        train_input=data.output["abstract"], train_output=data.output["tweet"], epochs=1, batch_size=3
    )
    materialize([trainer], instance, output)
    assert step_json(output, trainer)["metrics"]["global_step"] == 2
    assert (output / "wide-tune" / "_model" / "adapter_model.safetensors").is_file()


@pytest.mark.gpu
@pytest.mark.skipif("not __import__('torch').cuda.is_available()", reason="needs a CUDA GPU")
def test_fine_tune_on_a_gpu(tmp_path: Path, instance: dg.DagsterInstance, tiny_llama: Path) -> None:
    output = tmp_path / "output"
    data = tweets()
    trainer = TrainHFFineTune("GPU Tune", model_name=str(tiny_llama), device=0, peft_config=LORA).train(
        train_input=data.output["abstract"], train_output=data.output["tweet"], epochs=1, batch_size=3
    )
    materialize([trainer], instance, output)
    args = json.loads((output / "gpu-tune" / "_model" / "training_args.json").read_text())
    assert args["use_cpu"] is False
    assert step_json(output, trainer)["metrics"]["global_step"] == 2


@pytest.mark.gpu
@pytest.mark.skipif("__import__('torch').cuda.device_count() < 2", reason="needs two CUDA GPUs")
@pytest.mark.parametrize("fsdp", [True, False])
def test_distributed_fine_tune_on_two_gpus(
    tmp_path: Path, instance: dg.DagsterInstance, tiny_llama: Path, fsdp: bool
) -> None:
    from transformers import AutoModelForCausalLM

    output = tmp_path / "output"
    data = tweets()
    trainer = TrainHFFineTune("Distributed Tune", model_name=str(tiny_llama), device=[0, 1], fsdp=fsdp).train(
        train_input=data.output["abstract"], train_output=data.output["tweet"], epochs=1, batch_size=1
    )
    materialize([trainer], instance, output)
    record = step_json(output, trainer)
    assert record["metrics"]["global_step"] == 3  # 6 rows, 1 a device, 2 devices
    AutoModelForCausalLM.from_pretrained(str(output / "distributed-tune" / "_model"))
