"""What a trainer's ``_model`` holds besides the weights.

``dreamer_trainer.json`` (:data:`MODEL_DIR_INFO`: what trained the model, for
the models that load it), ``data_card.json`` and ``README.md`` (the model
card: base model, data, licenses, usage, metrics, arguments, citations, the
data card), written by :class:`TrainerModelCard`, a mixin of ``Trainer``.
"""

from __future__ import annotations

import json
from typing import Any

from ..cards import CITATION, DATASET_NAME, LICENSE, MODEL_NAME, card_markdown, card_values
from .training_run import TrainingRun

__all__ = ["MODEL_DIR_INFO", "TrainerModelCard"]

#: A JSON file in every ``_model`` folder saying what trained it (read by the
#: models that load a trained model: task, base model, adapter or not, labels).
MODEL_DIR_INFO = "dreamer_trainer.json"


class TrainerModelCard:
    """``model_info``, ``usage_snippet``, ``write_model_files`` and ``model_card_text`` of a
    ``Trainer`` (which supplies ``name``, ``fingerprint``, ``base_model_name`` and ``describe_args``)."""

    name: str
    fingerprint: str
    UNFINGERPRINTED_ARGS: frozenset[str]
    base_model_name: Any
    describe_args: Any

    def model_info(self, run: TrainingRun, results: dict) -> dict:
        """``dreamer_trainer.json``: what trained this model, for the models that load it."""
        return {
            "trainer": type(self).__name__,
            "name": self.name,
            "fingerprint": self.fingerprint,
            "base_model": run.args.get("model_name"),
            "base_model_name": self.base_model_name(),
            **(results.get("model_info") or {}),
        }

    def usage_snippet(self, run: TrainingRun, info: dict) -> str:
        """Python that loads the trained model (the model card's usage section)."""
        return ""

    def write_model_files(self, run: TrainingRun, data_card: dict, results: dict) -> None:
        """Write ``README.md``, ``data_card.json`` and ``dreamer_trainer.json`` into ``_model``."""
        info = self.model_info(run, results)
        (run.model_dir / MODEL_DIR_INFO).write_text(json.dumps(info, indent=2, default=str))
        (run.model_dir / "data_card.json").write_text(json.dumps(data_card, indent=2, default=str))
        (run.model_dir / "README.md").write_text(self.model_card_text(run, info, data_card, results))

    def model_card_text(self, run: TrainingRun, info: dict, data_card: dict, results: dict) -> str:
        """The model card written as ``_model/README.md``: base model, data, licenses, usage,
        data card (``trainer.model_card()`` prints DataDreamer's JSON card)."""
        datasets = card_values(data_card, DATASET_NAME)
        licenses = card_values(data_card, LICENSE)
        citations = card_values(data_card, CITATION)
        front = ["---", f"base_model: {_yaml_string(self.base_model_name())}"]
        if datasets:
            front.append("datasets:")
            front.extend(f"- {_yaml_string(name)}" for name in datasets)
        front += ["tags:", "- dreamer_dagster", f"- {type(self).__name__}", "---", ""]
        lines = [
            f"# {self.name}",
            "",
            f"Trained by the `{type(self).__name__}` step {self.name!r} of a dreamer_dagster "
            f"pipeline (fingerprint `{self.fingerprint}`).",
            "",
            f"- **Base model:** {self.base_model_name()}",
        ]
        if info.get("adapter"):
            lines.append("- **Weights:** a PEFT adapter (load it on the base model)")
        lines.append(f"- **Training datasets:** {', '.join(datasets) if datasets else 'synthetic data'}")
        upstream = {step: entry for step, entry in data_card.items() if step != self.name}
        upstream_models = card_values(upstream, MODEL_NAME)
        if upstream_models:
            lines.append(f"- **Data made with:** {', '.join(upstream_models)}")
        if licenses:
            lines.append(f"- **Licenses:** {'; '.join(licenses)}")
        metrics = results.get("metrics") or {}
        if metrics:
            shown = ", ".join(f"{k} = {_number(v)}" for k, v in metrics.items())
            lines.append(f"- **Results:** {shown}")
        usage = self.usage_snippet(run, info)
        if usage:
            lines += ["", "## Usage", "", "```python", usage.rstrip(), "```"]
        table = results.get("metrics_table") or []
        if table:
            columns = sorted({key for row in table for key in row}, key=lambda c: (c != "epoch", c))
            lines += ["", "## Training metrics", "", "| " + " | ".join(columns) + " |"]
            lines.append("|" + "---|" * len(columns))
            lines += ["| " + " | ".join(_number(row.get(c, "")) for c in columns) + " |" for row in table]
        args = {k: v for k, v in self.describe_args().items() if k not in self.UNFINGERPRINTED_ARGS}
        lines += ["", "## Training arguments", "", "```json", json.dumps(args, indent=2, default=str), "```"]
        if citations:
            lines += ["", "## Citations", ""]
            lines += [f"```bibtex\n{c}\n```" if "@" in c else f"- {c}" for c in citations]
        lines += ["", card_markdown(data_card).replace("# Data Card", "## Data Card", 1)]
        return "\n".join(front + lines).rstrip() + "\n"


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _yaml_string(text: str) -> str:
    return json.dumps(str(text))
