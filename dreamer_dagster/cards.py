"""Data cards: which models, datasets, licenses and citations are behind an output.

A card maps each step's name to its entries under DataDreamer's keys. A step's
card is the union of its upstream steps' cards plus its own entry, so the last
step of a pipeline lists everything that went into it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = [
    "CITATION",
    "DATASET_CARD",
    "DATASET_NAME",
    "DATETIME",
    "LICENSE",
    "DataCardType",
    "MODEL_CARD",
    "MODEL_NAME",
    "URL",
    "card_markdown",
    "merge_cards",
]

DATETIME = "Date & Time"
MODEL_NAME = "Model Name"
DATASET_NAME = "Dataset Name"
LICENSE = "License Information"
CITATION = "Citation Information"
DATASET_CARD = "Dataset Card"
MODEL_CARD = "Model Card"
URL = "URL"


class DataCardType:
    """The kinds of data card entries, as DataDreamer names them
    (``self.register_data_card(DataCardType.LICENSE, "MIT")``)."""

    DATETIME = DATETIME
    MODEL_NAME = MODEL_NAME
    DATASET_NAME = DATASET_NAME
    LICENSE = LICENSE
    CITATION = CITATION
    DATASET_CARD = DATASET_CARD
    MODEL_CARD = MODEL_CARD
    URL = URL


CARD_KEYS = (DATETIME, MODEL_NAME, DATASET_NAME, LICENSE, CITATION, DATASET_CARD, MODEL_CARD, URL)


def merge_cards(upstream: Iterable[Mapping[str, dict]], own_name: str, own: Mapping[str, list]) -> dict:
    """Upstream cards in order, then this step's own entry (its keys in DataDreamer's order)."""
    card: dict[str, dict] = {}
    for upstream_card in upstream:
        for step_name, entry in upstream_card.items():
            card.setdefault(step_name, entry)
    ordered = {key: list(own[key]) for key in CARD_KEYS if own.get(key)}
    ordered.update({key: list(value) for key, value in own.items() if key not in CARD_KEYS and value})
    card[own_name] = ordered
    return card


def card_values(card: Mapping[str, dict], key: str) -> list[str]:
    """Every distinct value of ``key`` across the card, in order."""
    values: list[str] = []
    for entry in card.values():
        for value in entry.get(key, []):
            if value not in values:
                values.append(value)
    return values


def card_markdown(card: Mapping[str, dict]) -> str:
    """The card as Markdown, one section a step (Dagster shows it as metadata)."""
    lines = ["# Data Card", ""]
    for step_name, entry in card.items():
        lines.append(f"## {step_name}")
        for key, values in entry.items():
            if len(values) == 1 and "\n" not in str(values[0]):
                lines.append(f"- **{key}:** {values[0]}")
            else:
                lines.append(f"- **{key}:**")
                for value in values:
                    text = str(value).replace("\n", "\n    ")
                    lines.append(f"    - {text}")
        lines.append("")
    return "\n".join(lines)
