"""What Dagster shows about a step: the metadata keys, and the materialization metadata.

Every ``dreamer/...`` key lives here as a constant, used by the asset factory,
the IO manager, the checks and the command line. Definition metadata (on the
asset: step type, name, args, fingerprint, folder, where it was declared) is
built by :mod:`~dreamer_dagster.translator`; materialization metadata (on each
materialization: rows, schema, folder URI, data card, stats, sample rows) by
:func:`step_metadata` here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import dagster as dg

from .cards import card_markdown

if TYPE_CHECKING:
    from .output_folder import StepFolder

__all__ = [
    "ARGS",
    "CODE_REFERENCES",
    "COLUMN_LINEAGE",
    "COLUMN_SCHEMA",
    "DATA_CARD",
    "ESTIMATE",
    "FINGERPRINT",
    "FOLDER",
    "METRICS",
    "PATH",
    "PREFIX",
    "REUSED",
    "ROW_COUNT",
    "SAMPLE",
    "SHARDS",
    "SampleCollector",
    "STEP_NAME",
    "STEP_TYPE",
    "URI",
    "openai_usage",
    "sample_table",
    "sample_rows",
    "stat_key",
    "step_metadata",
]

PREFIX = "dreamer/"
#: Definition metadata (on the asset).
STEP_TYPE = "dreamer/step_type"
STEP_NAME = "dreamer/step_name"
ARGS = "dreamer/args"
#: The step's fingerprint: the asset's code version, also recorded on each materialization.
FINGERPRINT = "dreamer/fingerprint"
#: The step's folder name inside the output folder (its safe name, whatever the asset key).
FOLDER = "dreamer/folder"
#: The pre-run estimate (uncached prompts, tokens, USD) computed when the definitions load.
ESTIMATE = "dreamer/estimate"
#: Materialization metadata.
PATH = "dreamer/path"
DATA_CARD = "dreamer/data_card"
REUSED = "dreamer/reused"
#: A sharded step's shard count (on its shards asset and its merge asset).
SHARDS = "dreamer/shards"
METRICS = "dreamer/metrics"
SAMPLE = "dreamer/sample"
#: Dagster's own keys, which its UI shows in their places.
ROW_COUNT = "dagster/row_count"
COLUMN_SCHEMA = "dagster/column_schema"
COLUMN_LINEAGE = "dagster/column_lineage"
URI = "dagster/uri"
CODE_REFERENCES = "dagster/code_references"

#: dagster-openai's usage keys (``openai.<key>``, and ``openai.<model>.<key>`` for a step with
#: one API model), on each materialization of a step that called an API model.
OPENAI_USAGE_KEYS = ("calls", "prompt_tokens", "completion_tokens", "total_tokens")

#: How many rows the sample table shows, and how long a cell may be.
SAMPLE_ROWS = 5
SAMPLE_CELL_CHARS = 80


def stat_key(name: str) -> str:
    """The metadata key of a counter in a step's stats (``model_calls`` -> ``dreamer/model_calls``)."""
    return PREFIX + name


def step_metadata(folder: StepFolder, record: Mapping[str, Any]) -> dict[str, Any]:
    """Materialization metadata from a step's record (step.json): row count, schema,
    fingerprint, folder, data card, stats, metrics and sample rows."""
    metadata: dict[str, Any] = {
        FINGERPRINT: record.get("fingerprint"),
        PATH: dg.MetadataValue.path(str(folder.path)),
        URI: dg.MetadataValue.text(folder.uri),
    }
    if record.get("num_rows") is not None:
        metadata[ROW_COUNT] = record["num_rows"]
    if record.get("schema"):  # plain type names (string, float32[384]), not Value('string')
        from .column_schema import plain_types, table_schema

        metadata[COLUMN_SCHEMA] = table_schema(plain_types(record["schema"]))
    if record.get("data_card"):
        metadata[DATA_CARD] = dg.MetadataValue.md(card_markdown(record["data_card"]))
    for name, value in (record.get("stats") or {}).items():
        metadata[stat_key(name)] = value
    if record.get("metrics_table"):
        rows = record["metrics_table"]
        columns = sorted({key for row in rows for key in row})
        metadata[METRICS] = dg.MetadataValue.md(markdown_table(columns, rows))
    if record.get("sample"):
        sample = record["sample"]
        columns = list(record.get("outputs") or sample[0])
        metadata[SAMPLE] = sample_table(columns, sample)
    return metadata


def openai_usage(models: Any, stats: Mapping[str, Any]) -> dict[str, int]:
    """dagster-openai's usage metadata (``openai.calls``, ``openai.prompt_tokens``,
    ``openai.completion_tokens``, ``openai.total_tokens``) from a run's ``stats``, when
    ``models`` hold an API model (one with a key); empty otherwise."""
    from .model import is_api_model

    api_models = [model for model in models if is_api_model(model)]
    if not api_models:
        return {}
    prompt = int(stats.get("prompt_tokens", 0) or 0)
    completion = int(stats.get("completion_tokens", 0) or 0)
    values = dict(
        zip(
            OPENAI_USAGE_KEYS,
            (int(stats.get("model_calls", 0) or 0), prompt, completion, prompt + completion),
            strict=True,
        )
    )
    usage = {f"openai.{key}": value for key, value in values.items()}
    names = {str(getattr(model, "model_name", "")) for model in api_models}
    if len(names) == 1 and "" not in names:
        [name] = names
        usage.update({f"openai.{name}.{key}": value for key, value in values.items()})
    return usage


def sample_rows(dataset: Any, count: int = SAMPLE_ROWS, width: int = SAMPLE_CELL_CHARS) -> list[dict]:
    """The first ``count`` rows of a Dataset, each cell as text cut to ``width`` characters."""
    rows = dataset.select(range(min(count, len(dataset)))).to_list()
    return [{column: _cell(value, width) for column, value in row.items()} for row in rows]


class SampleCollector:
    """:func:`sample_rows` as rows go by: ``add`` row dicts or ``pyarrow`` tables of a
    step's output as it is written; ``rows`` holds the first ``count``, cut to text."""

    def __init__(self, count: int = SAMPLE_ROWS, width: int = SAMPLE_CELL_CHARS):
        self.count = count
        self.width = width
        self.rows: list[dict] = []

    def add(self, rows: Any) -> None:
        missing = self.count - len(self.rows)
        if missing <= 0:
            return
        taken = [rows] if isinstance(rows, dict) else rows.slice(0, missing).to_pylist()
        for row in taken:
            self.rows.append({column: _cell(value, self.width) for column, value in row.items()})


def sample_table(columns: list[str], rows: list[Mapping[str, Any]]) -> dg.TableMetadataValue:
    """The sample rows (cells as text, cut) as a table the web UI shows as one."""
    return dg.MetadataValue.table(
        records=[dg.TableRecord(data={c: _text(row.get(c)) for c in columns}) for row in rows],
        schema=dg.TableSchema(columns=[dg.TableColumn(name=c, type="string") for c in columns]),
    )


def _text(value: Any) -> str | None:
    return value if value is None or isinstance(value, str) else str(value)


def markdown_table(columns: list[str], rows: list[Mapping[str, Any]]) -> str:
    lines = ["| " + " | ".join(_escape(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_escape(str(row.get(c, ""))) for c in columns) + " |")
    return "\n".join(lines)


def _cell(value: Any, width: int) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _escape(text: str) -> str:
    return text.replace("|", "\\|")
