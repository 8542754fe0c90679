"""HFTransformers on the embedded SmolLM2-135M-Instruct (real model, CPU, tiny sizes)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import ClassVar

import pytest

from dreamer_dagster import Pipeline
from dreamer_dagster.cache import ModelCache
from dreamer_dagster.llms import (
    SMOLLM2_MODEL_NAME,
    HFTransformers,
    ParallelLLM,
    default_llm,
    loaded_models,
    smollm2_path,
)
from dreamer_dagster.llms.response_format import instruction
from dreamer_dagster.steps import DataSource, Step
from tests.support.foundation import materialization_metadata, materialize, rows

pytestmark = pytest.mark.slow

PROMPTS = [
    "What is the capital of France?",
    "Name a color.",
    "Write one sentence about the ocean and the creatures that live in it.",
    "What is 2 + 2?",
    "Say hello.",
    "List three fruits, separated by commas.",
    "Who wrote Romeo and Juliet?",
    "Describe a cat in a few words.",
]


@pytest.fixture(scope="module")
def llm() -> HFTransformers:
    model = default_llm()
    yield model
    model.unload_model()


def bound(model, cache: Path | None = None):
    return model.for_run(cache_folder=cache, stats=Counter())


def test_smollm2_path_is_a_plain_transformers_folder():
    folder = smollm2_path()
    assert (folder / "config.json").is_file() and (folder / "tokenizer.json").is_file()
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())
    assert smollm2_path() == folder  # converted once


def test_coherent_answers_and_counters(llm, tmp_path):
    model = bound(llm, tmp_path)
    capital, arithmetic = model.run([PROMPTS[0], PROMPTS[3]], max_new_tokens=10)
    assert "Paris" in capital
    assert "4" in arithmetic
    assert model.stats["model_calls"] == 2
    assert model.stats["prompt_tokens"] > 20 and 2 <= model.stats["completion_tokens"] <= 20
    assert list(tmp_path.glob("HFTransformers-SmolLM2-135M-Instruct-*.db"))


def test_greedy_output_does_not_depend_on_batch_size(llm):
    one = bound(llm).run(PROMPTS, max_new_tokens=5, batch_size=1)
    eight = bound(llm).run(PROMPTS, max_new_tokens=5, batch_size=8)
    assert one == eight
    assert all(isinstance(text, str) and text for text in one)


def test_sampling_n_gives_distinct_answers_cached_for_a_rerun(llm, tmp_path):
    prompts = ["Tell me a story about a dragon.", "Invent a name for a cafe."]
    kwargs = {"max_new_tokens": 5, "temperature": 1.0, "top_p": 1.0, "n": 3}
    first = bound(llm, tmp_path)
    samples = first.run(prompts, batch_size=1, **kwargs)
    assert [len(set(answers)) for answers in samples] == [3, 3]
    rerun = bound(llm, tmp_path)
    assert rerun.run(prompts, batch_size=2, **kwargs) == samples
    assert rerun.stats == Counter({"cache_hits": 2})
    # Seeds are per prompt, not per batch: an uncached run at another batch size agrees.
    assert bound(llm).run(prompts, batch_size=2, **kwargs) == samples


def test_identical_prompts_get_distinct_samples(llm):
    answers = bound(llm).run(["Invent a word."] * 3, max_new_tokens=4, temperature=1.0, top_p=1.0)
    assert len(set(answers)) == 3


def test_stop_sequences_cut_the_generation(llm):
    [text] = bound(llm).run(["Count from 1 to 10, separated by commas."], max_new_tokens=30, stop=[","])
    assert text and "," not in text


def test_identity_changes_with_what_changes_outputs_only(llm, tmp_path):
    base = llm.model_fingerprint
    assert HFTransformers("HuggingFaceTB/SmolLM2-135M-Instruct").model_fingerprint == base
    assert default_llm().model_fingerprint == base
    assert (
        HFTransformers("HuggingFaceTB/SmolLM2-135M-Instruct", system_prompt="Be brief.").model_fingerprint
        != base
    )
    template = "{{system_prompt}}\nQ: {{prompt}}\nA:"
    templated = HFTransformers("HuggingFaceTB/SmolLM2-135M-Instruct", chat_prompt_template=template)
    assert templated.model_fingerprint != base
    assert HFTransformers("HuggingFaceTB/SmolLM2-135M-Instruct", dtype="bfloat16").model_fingerprint != base
    assert HFTransformers("HuggingFaceTB/SmolLM2-135M-Instruct", device="cpu").model_fingerprint == base
    # A changed system prompt or template misses the cache; batch_size does not.
    bound(llm, tmp_path).run(["Say hi."], max_new_tokens=4)
    rerun = bound(llm, tmp_path)
    rerun.run(["Say hi."], max_new_tokens=4, batch_size=7)
    assert rerun.stats["cache_hits"] == 1
    briefed = default_llm()
    briefed.system_prompt = "Answer in French."
    moved = bound(briefed, tmp_path)
    moved.run(["Say hi."], max_new_tokens=4)
    assert moved.stats["model_calls"] == 1


def test_chat_templates_and_system_prompts_shape_the_prompt(llm):
    model = bound(llm)
    assert "<|im_start|>user\nHi<|im_end|>" in model._format_text("Hi")
    briefed = default_llm()
    briefed.system_prompt = "Be brief."
    assert "<|im_start|>system\nBe brief.<|im_end|>" in briefed._format_text("Hi")
    custom = default_llm()
    custom.chat_prompt_template = "{{system_prompt}}Q: {{prompt}}\nA:"
    assert custom._format_text("Hi") == "Q: Hi\nA:"


def test_context_limits(llm):
    model = bound(llm)
    assert model.get_max_context_length(max_new_tokens=100) == 8192 - 100
    with pytest.raises(ValueError, match=r"prompt #1 has \d+ tokens.*context length of 8192"):
        model.run(["fine", "word " * 9000], max_new_tokens=4)
    examples = [f"Example {i}: " + "word " * 200 for i in range(100)]
    prompt = model.format_prompt(
        max_new_tokens=8192 - 1000,
        beg_instruction="Start.",
        in_context_examples=examples,
        end_instruction="End.",
    )
    assert prompt.startswith("Start.\nExample 0:") and prompt.endswith("End.")
    assert 1 <= prompt.count("Example ") < 100
    assert model.count_tokens(prompt) <= 1000


def test_response_format_is_asked_for_and_parsed_without_crashing(llm):
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    model = bound(llm)
    results = model.run(["Which city is the capital of France?"], max_new_tokens=12, response_format=schema)
    assert len(results) == 1
    for result in results:
        assert result is None or isinstance(json.loads(result)["city"], str)
    assert model.stats["response_format_failures"] == sum(result is None for result in results)


CITY = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def json_answering_model() -> HFTransformers:
    """SmolLM2 with a one-shot chat template: shown one schema-following JSON answer, the
    135M model answers in JSON (left alone it copies the schema back)."""
    shot = "Which city is the capital of Italy?" + instruction(CITY)
    template = (
        "<|im_start|>system\nYou answer with one JSON object.<|im_end|>\n"
        f"<|im_start|>user\n{shot}<|im_end|>\n<|im_start|>assistant\n"
        '{"city": "Rome"}<|im_end|>\n'
        "<|im_start|>user\n{{prompt}}<|im_end|>\n<|im_start|>assistant\n"
    )
    model = HFTransformers(SMOLLM2_MODEL_NAME, chat_prompt_template=template)
    model._weights_folder = smollm2_path
    return model


def test_a_json_answer_of_the_local_model_is_parsed_into_the_schema():
    questions = ["Which city is the capital of France?", "Which city is the capital of Japan?"]
    model = bound(json_answering_model())
    parsed = model.run(questions, max_new_tokens=16, response_format=CITY, response_format_retries=0)
    # The model writes '{"city": "Paris"}'; parsed and validated, it comes back as compact JSON.
    assert parsed == ['{"city":"Paris"}', '{"city":"Tokyo"}']
    assert model.stats["response_format_failures"] == 0
    # The same answer under a schema it does not follow: validated, so None and counted.
    numeric = {"type": "object", "properties": {"city": {"type": "integer"}}, "required": ["city"]}
    assert model.run(
        questions[:1], max_new_tokens=16, response_format=numeric, response_format_retries=0
    ) == [None]
    assert model.stats["response_format_failures"] == 1


def _out_of_memory_errors() -> list:
    import torch

    return [
        (
            torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.1 GiB total)"),
            True,
        ),
        (torch.OutOfMemoryError(), True),  # the type alone says it
        (torch.cuda.OutOfMemoryError("CUDA out of memory."), True),
        (RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB"), True),  # older torch
        (RuntimeError("CUDA error: out of memory"), True),
        (RuntimeError("MPS backend out of memory (MPS allocated: 9.1 GB). Tried to allocate 256 MB"), True),
        (RuntimeError("Expected all tensors to be on the same device, but found cuda:0 and cpu"), False),
        (RuntimeError("shape '[2, 8]' is invalid for input of size 10"), False),
        (ValueError("bad input"), False),
    ]


def test_the_out_of_memory_detector_knows_the_real_error_forms():
    from dreamer_dagster.llms.hf_transformers import _is_out_of_memory

    for error, expected in _out_of_memory_errors():
        assert _is_out_of_memory(error) is expected, repr(error)


def test_generate_out_of_memory_halves_the_batch_and_other_errors_fail(llm, monkeypatch):
    import torch

    prompts = PROMPTS[:3]
    expected = bound(llm).run(prompts, max_new_tokens=4, batch_size=1)
    weights = bound(llm).model
    real_generate = weights.generate
    rows_per_call: list[int] = []

    def generate(*args, **kwargs):
        rows_per_call.append(kwargs["input_ids"].shape[0])
        if rows_per_call[-1] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(weights, "generate", generate)
    assert bound(llm).run(prompts, max_new_tokens=4, batch_size=8) == expected
    # 8 -> 4 (all three) -> 2, then the last one (on the CPU the two run side by side)
    assert rows_per_call[:2] == [3, 3] and sorted(rows_per_call[2:]) == [1, 2]

    def broken(*args, **kwargs):
        rows_per_call.append(kwargs["input_ids"].shape[0])
        raise RuntimeError("Expected all tensors to be on the same device, but found cuda:0 and cpu")

    monkeypatch.setattr(weights, "generate", broken)
    rows_per_call.clear()
    with pytest.raises(RuntimeError, match="same device"):
        bound(llm).run(prompts, max_new_tokens=4, batch_size=8)
    assert rows_per_call == [3]  # not taken for out of memory: no smaller retry


def test_parallel_llm_matches_a_single_model(llm, tmp_path):
    parallel = ParallelLLM(default_llm(), HFTransformers("HuggingFaceTB/SmolLM2-135M-Instruct", device="cpu"))
    parallel.llms[1]._weights_folder = smollm2_path
    assert parallel.model_fingerprint == llm.model_fingerprint
    assert parallel.cache_name() == llm.cache_name()
    together = bound(parallel, tmp_path).run(PROMPTS[:4], max_new_tokens=4, batch_size=1)
    assert together == bound(llm).run(PROMPTS[:4], max_new_tokens=4, batch_size=4)
    with pytest.raises(ValueError, match="one identity"):
        ParallelLLM(default_llm(), HFTransformers("HuggingFaceTB/SmolLM2-135M-Instruct", system_prompt="x"))


def test_unload_model_frees_the_shared_weights(tmp_path):
    model = default_llm()
    bound(model).run(["Hi"], max_new_tokens=2)
    key = model._load_key("model")
    assert loaded_models.is_loaded(key)
    bound(model).unload_model()
    assert not loaded_models.is_loaded(key)


class Generate(Step):
    """Generates for each input prompt; writes ``prompts`` and ``generations``."""

    INPUTS: ClassVar = {"prompts": True}
    ARGS: ClassVar = {"llm": None, "max_new_tokens": 8, "batch_size": 10}
    OUTPUTS: ClassVar = ("prompts", "generations")
    UNFINGERPRINTED_ARGS: ClassVar = frozenset({"batch_size"})

    def run(self, context):
        llm = context.model(self.args["llm"])
        prompts = context.column(self.inputs["prompts"])
        results = llm.run(
            prompts,
            max_new_tokens=self.args["max_new_tokens"],
            batch_size=self.args["batch_size"],
            return_generator=True,
        )
        for prompt, text in zip(prompts, results):
            yield {"prompts": prompt, "generations": text}


def test_a_model_folder_from_an_upstream_step_is_a_dependency_and_a_cache(tmp_path, instance):
    output = tmp_path / "output"
    with Pipeline(str(output)):
        folders = DataSource("Model Folders", {"path": [str(smollm2_path())]})
        prompts = DataSource("Prompts", {"text": PROMPTS[:3]})
        model = HFTransformers(folders.output["path"][0])
        generate = Generate(
            "Generate Answers", inputs={"prompts": prompts.output["text"]}, args={"llm": model}
        )
    assert folders in model.dependencies()
    result = materialize([generate], instance, output)
    generated = rows(output, generate)
    assert generated["prompts"] == PROMPTS[:3]
    assert "Paris" in generated["generations"][0]
    metadata = materialization_metadata(result, generate)
    assert metadata["dreamer/model_calls"] == 3
    [cache_file] = (output / ".cache").glob("HFTransformers-*.db")
    with ModelCache(cache_file.parent, cache_file.stem) as cache:
        assert len(cache) == 3
