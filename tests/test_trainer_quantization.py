"""``quantization_config`` on the HF trainers (QLoRA), as DataDreamer takes it: in its
positional slot, fingerprinted by its settings, a clear run-time error without CUDA,
and a quantized LoRA training where a GPU is lent."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import dagster as dg
import pytest

from dreamer_dagster import dreamer_definitions
from dreamer_dagster.steps import DataSource
from dreamer_dagster.trainers import (
    TrainHFClassifier,
    TrainHFDPO,
    TrainHFFineTune,
    TrainHFRewardModel,
    TrainSentenceTransformer,
)

QUANTIZABLE = (TrainHFFineTune, TrainHFClassifier, TrainHFRewardModel, TrainHFDPO)


def pairs() -> DataSource:
    return DataSource("Quantized Pairs", data={"question": ["Say hi.", "Wave."], "answer": ["Hi!", "Bye!"]})


def declare(model: str, quantization_config, name: str = "Quantized Tune", **kwargs) -> TrainHFFineTune:
    data = pairs()
    return TrainHFFineTune(name, model_name=model, quantization_config=quantization_config, **kwargs).train(
        train_input=data.output["question"], train_output=data.output["answer"], epochs=1, batch_size=2
    )


@pytest.mark.parametrize("trainer_cls", QUANTIZABLE, ids=lambda c: c.__name__)
def test_quantization_config_sits_in_datadreamers_slot(trainer_cls: type) -> None:
    names = list(inspect.signature(trainer_cls.__init__).parameters)
    at = names.index("quantization_config")
    assert names[at - 1 : at + 2] == ["dtype", "quantization_config", "peft_config"]
    assert inspect.signature(trainer_cls.__init__).parameters["quantization_config"].default is None


def test_quantization_config_is_fingerprinted_by_its_settings(tiny_llama: Path) -> None:
    import torch
    from transformers import BitsAndBytesConfig

    qlora = BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16
    )
    # positionally, in DataDreamer's slot: name, model_name, chat_prompt_template, system_prompt,
    # revision, trust_remote_code, device, dtype, quantization_config, peft_config
    data = pairs()
    positional = TrainHFFineTune(
        "Quantized Tune", str(tiny_llama), None, None, None, False, None, None, qlora, {"r": 4}
    ).train(train_input=data.output["question"], train_output=data.output["answer"], epochs=1, batch_size=2)
    settings = {
        "quant_method": "bitsandbytes",
        "bnb_4bit_compute_dtype": "bfloat16",
        "bnb_4bit_quant_type": "nf4",
        "load_in_4bit": True,
    }
    assert positional.args["quantization_config"] == settings
    assert positional.args["peft_config"] == {"r": 4}
    assert json.loads(json.dumps(positional.describe_args()))["quantization_config"] == settings

    as_dict = declare(
        str(tiny_llama),
        {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_compute_dtype": torch.bfloat16},
        peft_config={"r": 4},
        chat_prompt_template=None,
        system_prompt=None,
    )
    assert as_dict.fingerprint == positional.fingerprint  # the object and its dict: one training
    unquantized = declare(str(tiny_llama), None, peft_config={"r": 4})
    eight_bit = declare(str(tiny_llama), BitsAndBytesConfig(load_in_8bit=True), peft_config={"r": 4})
    assert len({positional.fingerprint, unquantized.fingerprint, eight_bit.fingerprint}) == 3
    # a config's own defaults change nothing: BitsAndBytesConfig() is the bare dict
    assert (
        declare(str(tiny_llama), BitsAndBytesConfig()).fingerprint == declare(str(tiny_llama), {}).fingerprint
    )


def test_bitsandbytes_defaults_table_matches_the_installed_transformers() -> None:
    from transformers import BitsAndBytesConfig

    from dreamer_dagster.library_defaults import BNB_CONFIG_DEFAULTS, _plain

    installed = {k: _plain(v) for k, v in BitsAndBytesConfig().to_dict().items() if not k.startswith("_")}
    assert installed == BNB_CONFIG_DEFAULTS


def test_quantization_config_is_refused_where_it_would_be_ignored(tiny_llama: Path, minilm: Path) -> None:
    with pytest.raises(ValueError, match=r"(?s)'Bad Quantization'.*quantization_config.*BitsAndBytesConfig"):
        declare(str(tiny_llama), "4bit", name="Bad Quantization")
    with pytest.raises(ValueError, match=r"(?s)'Embedder'.*quantization_config.*leave"):
        TrainSentenceTransformer(
            "Embedder", model_name=str(minilm), quantization_config={"load_in_4bit": True}
        )


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(_has_cuda(), reason="checks the error of a machine without a CUDA GPU")
def test_quantized_training_without_cuda_fails_at_run_time_saying_so(
    tiny_llama: Path, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    trainer = declare(str(tiny_llama), {"load_in_4bit": True}, name="QLoRA On CPU", peft_config={"r": 4})
    defs = dreamer_definitions([trainer], output_folder=str(tmp_path / "output"))
    result = dg.materialize(
        list(defs.assets), instance=instance, resources=dict(defs.resources), raise_on_error=False
    )
    assert not result.success
    [failure] = result.get_step_failure_events()
    error = failure.step_failure_data.error
    message = error.cause.message if error.cause else error.message
    for part in ("'QLoRA On CPU'", "TrainHFFineTune", "'quantization_config'", "needs a CUDA GPU", "Fix:"):
        assert part in message, message
    assert not (tmp_path / "output" / trainer.folder / "step.json").exists()


def _has_cuda_and_bitsandbytes() -> bool:
    import importlib.util

    return _has_cuda() and importlib.util.find_spec("bitsandbytes") is not None


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.skipif(not _has_cuda_and_bitsandbytes(), reason="QLoRA needs a CUDA GPU and bitsandbytes")
def test_qlora_trains_an_adapter_on_a_4bit_model(
    smollm2: Path, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    trainer = declare(
        str(smollm2),
        BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4"),
        name="QLoRA On GPU",
        dtype="bfloat16",
        peft_config={"r": 4, "lora_alpha": 8},
    )
    output = tmp_path / "output"
    defs = dreamer_definitions([trainer], output_folder=str(output))
    assert dg.materialize(list(defs.assets), instance=instance, resources=dict(defs.resources)).success
    model_dir = output / trainer.folder / "_model"
    assert (model_dir / "adapter_config.json").is_file()
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(smollm2)), str(model_dir))
    assert any(float(p.abs().sum()) > 0 for n, p in adapted.named_parameters() if "lora_B" in n)
