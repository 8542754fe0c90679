"""TrainHFDPO: DPO through Dagster on a tiny causal LM; the adapter or model loads back and
generates; an interrupted training resumes from its checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from dreamer_dagster import dreamer_definitions
from dreamer_dagster.steps import DataSource
from dreamer_dagster.trainers import TrainHFDPO
from tests.support.trainers import merged_adapter, moved_weights

pytestmark = pytest.mark.slow  # trains real models (still part of the suite)

PROMPTS = ["Say hi.", "Greet me.", "Hello?", "Wave.", "Say hey.", "Hi there."]
CHOSEN = ["Hi!", "Hello!", "Hey!", "Hi there!", "Hey you!", "Hello friend!"]
REJECTED = ["No.", "Go away.", "Nope.", "Never.", "No thanks.", "Leave."]


def preference_splits() -> dict:
    pairs = DataSource("Preference Pairs", data={"question": PROMPTS, "chosen": CHOSEN, "rejected": REJECTED})
    return pairs.splits(train_size=4, validation_size=2)


def declare(model: Path, name: str = "Align Tiny Llama", peft: bool = True, **train_args) -> TrainHFDPO:
    splits = preference_splits()
    trainer = TrainHFDPO(name, model_name=str(model), peft_config={"r": 4, "lora_alpha": 8} if peft else None)
    return trainer.train(
        train_prompts=splits["train"].output["question"],
        train_chosen=splits["train"].output["chosen"],
        train_rejected=splits["train"].output["rejected"],
        validation_prompts=splits["validation"].output["question"],
        validation_chosen=splits["validation"].output["chosen"],
        validation_rejected=splits["validation"].output["rejected"],
        **{"epochs": 1, "batch_size": 2, "max_length": 48, **train_args},
    )


def materialize(
    trainer: TrainHFDPO, instance: dg.DagsterInstance, output: Path, **kwargs
) -> dg.ExecuteInProcessResult:
    defs = dreamer_definitions([trainer], output_folder=str(output))
    return dg.materialize(list(defs.assets), instance=instance, resources=dict(defs.resources), **kwargs)


def generate(model, tokenizer, prompt: str) -> str:
    import torch

    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )
    inputs = tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        output = model.generate(
            **inputs, max_new_tokens=4, do_sample=False, pad_token_id=tokenizer.pad_token_id
        )
    assert output.shape[1] == inputs["input_ids"].shape[1] + 4 or output[0, -1] == tokenizer.eos_token_id
    return tokenizer.decode(output[0, inputs["input_ids"].shape[1] :])


def test_dpo_with_lora_trains_an_adapter(
    tiny_llama: Path, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    output = tmp_path / "output"
    trainer = declare(tiny_llama, dpo_beta=0.5, loss_type="ipo", learning_rate=1e-2)
    result = materialize(trainer, instance, output)
    assert result.success

    model_dir = output / trainer.folder / "_model"
    assert (model_dir / "adapter_config.json").is_file()
    assert not (model_dir / "model.safetensors").exists()
    adapter = json.loads((model_dir / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(tiny_llama)
    assert adapter["r"] == 4
    args = json.loads((model_dir / "training_args.json").read_text())
    assert args["beta"] == 0.5 and args["loss_type"] == ["ipo"]
    info = json.loads((model_dir / "dreamer_trainer.json").read_text())
    assert info["task"] == "causal_lm" and info["adapter"] is True

    record = json.loads((output / trainer.folder / "step.json").read_text())
    assert record["model"] is True
    assert "eval_rewards/margins" in record["metrics"]
    assert record["metrics"]["global_step"] == 2  # 4 pairs, batch 2, one epoch
    assert any(
        "Direct Preference Optimization" in c
        for c in record["data_card"][trainer.name]["Citation Information"]
    )

    base = AutoModelForCausalLM.from_pretrained(str(tiny_llama))
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    aligned = PeftModel.from_pretrained(base, str(model_dir))
    lora = [p for n, p in aligned.named_parameters() if "lora_B" in n]
    assert lora and any(float(p.abs().sum()) > 0 for p in lora)  # the adapter was trained
    # ...and merged into the base, it moves the base's weights.
    assert moved_weights(
        AutoModelForCausalLM.from_pretrained(str(tiny_llama)), merged_adapter(tiny_llama, model_dir)
    )
    assert isinstance(generate(aligned, tokenizer, "Say hi."), str)


def test_dpo_without_peft_saves_the_full_model(
    tiny_llama: Path, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    output = tmp_path / "output"
    trainer = declare(tiny_llama, name="Align Tiny Llama Fully", peft=False, learning_rate=1e-2)
    assert materialize(trainer, instance, output).success
    model_dir = output / trainer.folder / "_model"
    assert not (model_dir / "adapter_config.json").exists()
    model = AutoModelForCausalLM.from_pretrained(str(model_dir))
    before = AutoModelForCausalLM.from_pretrained(str(tiny_llama))
    assert moved_weights(before, model)
    assert isinstance(generate(model, AutoTokenizer.from_pretrained(str(model_dir)), "Wave."), str)


# Each chosen answer has as many tokens as its rejected one, so the untrained model's
# log-probability margins start near zero.
EVEN_CHOSEN = ["Hi!", "Hello!", "Hey!", "Hi there!", "Hey you!", "Hello friend!"]
EVEN_REJECTED = ["No.", "Never.", "Leave.", "Go away.", "No thanks.", "Get lost."]


def preference_margins(model, tokenizer) -> list[float]:
    """log p(chosen | prompt) - log p(rejected | prompt) under ``model``, for each pair."""
    import torch

    margins = []
    for question, chosen, rejected in zip(PROMPTS, EVEN_CHOSEN, EVEN_REJECTED):
        prompt = tokenizer.apply_chat_template(
            [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
        )
        start = len(tokenizer(prompt)["input_ids"])
        scores = []
        for answer in (chosen, rejected):
            ids = tokenizer(prompt + answer, return_tensors="pt")["input_ids"]
            with torch.no_grad():
                log_probs = model(ids).logits[0, :-1].log_softmax(-1)
            answer_ids = ids[0, start:]
            scores.append(float(log_probs[start - 1 :].gather(1, answer_ids[:, None]).sum()))
        margins.append(scores[0] - scores[1])
    return margins


def test_dpo_makes_the_chosen_answers_more_likely_than_the_rejected(
    tiny_llama: Path, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    pairs = DataSource("Even Pairs", data={"q": PROMPTS, "chosen": EVEN_CHOSEN, "rejected": EVEN_REJECTED})
    trainer = TrainHFDPO("Align Direction", model_name=str(tiny_llama)).train(
        train_prompts=pairs.output["q"],
        train_chosen=pairs.output["chosen"],
        train_rejected=pairs.output["rejected"],
        epochs=1,
        batch_size=2,
        max_length=48,
        learning_rate=1e-2,
    )
    output = tmp_path / "output"
    assert materialize(trainer, instance, output).success
    training_args = json.loads((output / trainer.folder / "_model" / "training_args.json").read_text())
    assert training_args["loss_type"] == ["kto_pair"]  # DataDreamer's default loss, implemented here
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_llama))
    before = preference_margins(AutoModelForCausalLM.from_pretrained(str(tiny_llama)), tokenizer)
    after = preference_margins(
        AutoModelForCausalLM.from_pretrained(str(output / trainer.folder / "_model")), tokenizer
    )
    assert all(margin > 0 for margin in after), after  # each chosen answer now scores higher
    assert all(a > b for a, b in zip(after, before)), (before, after)  # and every margin rose
    assert sum(after) - sum(before) > 0.5, (before, after)


def stop_after_first_checkpoint():
    """A callback that interrupts training once the first checkpoint is saved."""
    from transformers import TrainerCallback

    class Interrupt(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            raise RuntimeError("interrupted after the first checkpoint")

    return Interrupt()


def test_interrupted_dpo_resumes_from_its_checkpoint(
    tiny_llama: Path, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    output = tmp_path / "output"
    schedule = {"save_strategy": "steps", "save_steps": 1, "eval_steps": 1, "epochs": 2}
    interrupted = declare(
        tiny_llama, name="Align Resumably", callbacks=[stop_after_first_checkpoint()], **schedule
    )
    assert not materialize(interrupted, instance, output, raise_on_error=False).success
    checkpoints = output / interrupted.folder / "_checkpoints"
    assert (checkpoints / "checkpoint-1" / "trainer_state.json").is_file()
    assert not (output / interrupted.folder / "step.json").exists()

    resumed = declare(tiny_llama, name="Align Resumably", **schedule)
    assert resumed.fingerprint == interrupted.fingerprint  # callbacks only observe
    assert materialize(resumed, instance, output).success
    metrics = json.loads((output / resumed.folder / "step.json").read_text())["metrics"]
    assert metrics["resumed_from_step"] == 1
    assert metrics["global_step"] == 4 and metrics["steps_this_run"] == 3


def test_dpo_arguments_are_checked_when_declared(tiny_llama: Path) -> None:
    splits = preference_splits()
    with pytest.raises(ValueError, match="dpo_beta"):
        TrainHFDPO("Bad Beta", model_name=str(tiny_llama)).train(
            train_prompts=splits["train"].output["question"],
            train_chosen=splits["train"].output["chosen"],
            train_rejected=splits["train"].output["rejected"],
            dpo_beta=0,
        )
    with pytest.raises(ValueError, match="validation"):
        TrainHFDPO("Half Validation", model_name=str(tiny_llama)).train(
            train_prompts=splits["train"].output["question"],
            train_chosen=splits["train"].output["chosen"],
            train_rejected=splits["train"].output["rejected"],
            validation_prompts=splits["validation"].output["question"],
        )


def test_dpo_precomputes_the_reference_log_probs_by_default(
    tiny_llama: Path, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    """DataDreamer's default: the reference log probabilities are computed once before training,
    so the batches carry them and TRL keeps no reference model; False keeps the frozen copy."""
    from transformers import TrainerCallback

    class Seen(TrainerCallback):
        columns: list[str] = []

        def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
            Seen.columns = list(train_dataloader.dataset.column_names)

    trainer = declare(tiny_llama, name="Align Precomputed", peft=False, callbacks=[Seen()])
    assert trainer.args["precompute_ref_log_probs"] is True
    assert materialize(trainer, instance, tmp_path / "output").success
    assert {"ref_chosen_logps", "ref_rejected_logps"} <= set(Seen.columns)
    plain = declare(
        tiny_llama,
        name="Align With A Reference",
        peft=False,
        callbacks=[Seen()],
        precompute_ref_log_probs=False,
    )
    assert materialize(plain, instance, tmp_path / "output").success
    assert "ref_chosen_logps" not in Seen.columns
