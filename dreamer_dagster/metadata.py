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
    "COLUMN_SCHEMA",
    "DATA_CARD",
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
URI = "dagster/uri"
CODE_REFERENCES = "dagster/code_references"

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
    if record.get("schema"):
        metadata[COLUMN_SCHEMA] = dg.TableSchema(
            columns=[dg.TableColumn(name=name, type=kind) for name, kind in record["schema"].items()]
        )
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
        metadata[SAMPLE] = dg.MetadataValue.md(markdown_table(columns, sample))
    return metadata


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
