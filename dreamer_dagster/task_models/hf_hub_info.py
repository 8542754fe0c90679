"""Data card facts about a Hugging Face model: its card URL, license and citations.

They come from the model's ``README.md`` (the model card): the front matter's
``license:`` and the BibTeX blocks in its text. The README is read from a local
model folder when there is one, else from the Hugging Face cache, else from the
Hub itself unless ``HF_HUB_OFFLINE`` is set; a model with no reachable card
simply has no license or citation entry.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path

__all__ = ["hf_citations", "hf_license", "hf_model_card_url", "is_hub_name"]


def is_hub_name(model_name: str) -> bool:
    """Whether ``model_name`` names a Hub repository rather than a local folder."""
    return not Path(model_name).expanduser().exists() and bool(
        re.fullmatch(r"[\w.-]+(/[\w.-]+)?", model_name)
    )


def hf_model_card_url(model_name: str) -> str | None:
    """The model card's address on the Hub (None for a local folder)."""
    return f"https://huggingface.co/{model_name}" if is_hub_name(model_name) else None


def hf_license(model_name: str, revision: str | None = None, local_folder: str | None = None) -> str | None:
    """The license named in the model card's front matter."""
    text = _readme(model_name, revision, local_folder)
    if text is None:
        return None
    front = re.match(r"\A---\s*\n(.*?)\n---", text, re.S)
    if front is None:
        return None
    found = re.search(r"^license:\s*(.+?)\s*$", front.group(1), re.M)
    return found.group(1).strip("'\"") if found else None


def hf_citations(model_name: str, revision: str | None = None, local_folder: str | None = None) -> list[str]:
    """The BibTeX entries in the model card's code blocks."""
    text = _readme(model_name, revision, local_folder)
    if text is None:
        return []
    citations = []
    for block in re.findall(r"```[a-zA-Z]*\n(.*?)```", text, re.S):
        block = block.strip()
        if re.match(r"@\w+\s*\{", block):
            citations.append(block)
    return citations


@lru_cache(maxsize=64)
def _readme(model_name: str, revision: str | None, local_folder: str | None) -> str | None:
    for folder in (local_folder, model_name):
        if folder and (Path(folder).expanduser() / "README.md").is_file():
            return (Path(folder).expanduser() / "README.md").read_text(encoding="utf-8", errors="replace")
    if not is_hub_name(model_name):
        return None
    try:
        from huggingface_hub import hf_hub_download, try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
        return None
    cached = try_to_load_from_cache(model_name, "README.md", revision=revision)
    if isinstance(cached, str) and os.path.isfile(cached):
        return Path(cached).read_text(encoding="utf-8", errors="replace")
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes", "on"}:
        return None
    try:
        path = hf_hub_download(model_name, "README.md", revision=revision, etag_timeout=5)
    except Exception:  # noqa: BLE001 - an unreachable card only drops card entries
        return None
    return Path(path).read_text(encoding="utf-8", errors="replace")
