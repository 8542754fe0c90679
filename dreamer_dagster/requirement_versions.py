"""The versions of the libraries a step's output may depend on, as DataDreamer records them
in step.json (``req_versions``): the installed ones of its list, by distribution name."""

from __future__ import annotations

import functools

__all__ = ["REQUIREMENTS", "requirement_versions"]

#: DataDreamer 0.46's list, with this project's own additions after it.
REQUIREMENTS = (
    "dill",
    "sqlitedict",
    "torch",
    "numpy",
    "transformers",
    "datasets",
    "huggingface_hub",
    "accelerate",
    "peft",
    "tiktoken",
    "tokenizers",
    "petals",
    "openai",
    "auto_gptq",
    "ctransformers",
    "optimum",
    "bitsandbytes",
    "faiss",
    "litellm",
    "trl",
    "setfit",
    "vllm",
    "ai21",
    "together",
    "anthropic",
    "cohere",
    "boto3",
    "google.generativeai",
    "google-cloud-aiplatform",
    "sentence-transformers",
    "dagster",
    "dreamer-dagster",
)


@functools.cache
def requirement_versions() -> dict[str, str]:
    """``{name: version}`` of each installed requirement (read once a process, without
    importing any of them)."""
    from importlib import metadata

    versions = {}
    for name in REQUIREMENTS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions
