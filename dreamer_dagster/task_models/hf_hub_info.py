"""Data card facts about a Hugging Face model: its card URL, license and citations.

The rules are DataDreamer's (``get_model_card_url``, ``get_license_info``,
``get_citation_info``): the licence is the URL of a ``LICENSE.txt`` /
``LICENSE.md`` / ``LICENSE`` file of the repository, else the ``license:`` line
of its ``README.md`` (the model card), and the citations are every BibTeX
entry of the README. Nothing is downloaded where it need not be: the files are
read from a local model folder, else from the Hugging Face cache, else from the
card an installed package embeds (:data:`EMBEDDED_MODEL_CARDS`), else from the
Hub itself unless ``HF_HUB_OFFLINE`` is set. A model with no reachable card has
no licence or citation (None / ``[]``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

__all__ = [
    "EMBEDDED_MODEL_CARDS",
    "LICENSE_FILES",
    "bibtex_entries",
    "hf_card_found",
    "hf_citations",
    "hf_license",
    "hf_model_card_url",
    "is_hub_name",
    "license_line",
]

#: The licence files DataDreamer looks for, in its order.
LICENSE_FILES = ("LICENSE.txt", "LICENSE.md", "LICENSE")

#: Hub name -> the model card (README text) of a model an installed package ships without its
#: README (filled by the rooms of the embedded models, e.g. ``llms/smollm2.py``).
EMBEDDED_MODEL_CARDS: dict[str, Callable[[], str]] = {}


def is_hub_name(model_name: str) -> bool:
    """Whether ``model_name`` names a Hub repository rather than a local folder."""
    return not Path(model_name).expanduser().exists() and bool(
        re.fullmatch(r"[\w.-]+(/[\w.-]+)?", model_name)
    )


def hf_model_card_url(model_name: str) -> str | None:
    """The model card's address on the Hub (None for a local folder)."""
    return f"https://huggingface.co/{model_name}" if is_hub_name(model_name) else None


def hf_card_found(model_name: str, revision: str | None = None, local_folder: str | None = None) -> bool:
    """Whether the model's card (README.md) could be read (locally, cached, embedded, or online)."""
    return _readme(model_name, revision, local_folder) is not None


def hf_license(model_name: str, revision: str | None = None, local_folder: str | None = None) -> str | None:
    """The model's licence: the Hub URL of its licence file, else its card's ``license:``."""
    if is_hub_name(model_name):
        for filename in LICENSE_FILES:
            if _find_file(model_name, filename, revision, local_folder) is not None:
                return f"https://huggingface.co/{model_name}/blob/{revision or 'main'}/{filename}"
    return license_line(_readme(model_name, revision, local_folder) or "")


def hf_citations(model_name: str, revision: str | None = None, local_folder: str | None = None) -> list[str]:
    """Every BibTeX entry in the model card."""
    return bibtex_entries(_readme(model_name, revision, local_folder) or "")


def license_line(readme: str) -> str | None:
    """DataDreamer's reading of a card's licence: ``license: X``, or the first item of a
    ``license:`` list."""
    single = re.search(r"^license: (.*)$", readme, flags=re.MULTILINE)
    if single:
        return single.group(1)
    listed = re.search(r"^license:.*$\n\s*-\s*(.*)$", readme, flags=re.MULTILINE)
    return listed.group(1) if listed else None


def bibtex_entries(text: str) -> list[str]:
    """Each ``@kind{...}`` entry of ``text``, braces balanced (DataDreamer's scan)."""
    citations: list[str] = []
    while match := re.search(r"@(\w+)\s*{\s*", text):
        text = text[match.start() :]
        depth, opened, escaping, end = 0, False, False, len(text) - 1
        for index, char in enumerate(text):
            if char == "{" and not escaping:
                depth += 1
                opened = True
            if char == "}" and not escaping:
                depth -= 1
            if opened and depth == 0:
                citations.append(text[: index + 1].strip())
                end = index
                break
            escaping = char == "\\" and not escaping
        text = text[end + 1 :]
    return citations


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes", "on"}


@lru_cache(maxsize=256)
def _find_file(model_name: str, filename: str, revision: str | None, local_folder: str | None) -> str | None:
    """The local path of one file of the model: its folder, the HF cache, else (online) the Hub."""
    for folder in (local_folder, model_name):
        if folder and (Path(folder).expanduser() / filename).is_file():
            return str(Path(folder).expanduser() / filename)
    if not is_hub_name(model_name):
        return None
    try:
        from huggingface_hub import hf_hub_download, try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
        return None
    cached = try_to_load_from_cache(model_name, filename, revision=revision)
    if isinstance(cached, str) and os.path.isfile(cached):
        return cached
    if _offline() or model_name in EMBEDDED_MODEL_CARDS:
        return None
    try:
        return hf_hub_download(model_name, filename, revision=revision, etag_timeout=5)
    except Exception:  # noqa: BLE001 - an unreachable file only drops card entries
        return None


@lru_cache(maxsize=64)
def _readme(model_name: str, revision: str | None, local_folder: str | None) -> str | None:
    local = _find_file(model_name, "README.md", revision, local_folder)
    if local is not None:
        return Path(local).read_text(encoding="utf-8", errors="replace")
    embedded = EMBEDDED_MODEL_CARDS.get(model_name)
    return embedded() if embedded is not None else None
