"""The names of the output folder's files and folders (its documented layout).

:mod:`~dreamer_dagster.output_folder` re-exports them and stays the one room that
knows the layout; the rooms it is split into (``step_reuse``, ``worker_folder``)
take the names from here, so none of them imports ``output_folder`` to load.

::

    output/
      <step>/step.json            written last: the commit mark of a finished step
      <step>/_dataset/            datasets.Dataset.save_to_disk
      <trainer>/_checkpoints/     resumable training checkpoints
      <trainer>/_model/           the trained model
      <step>/_in_progress.json    a started, unfinished run: its fingerprint
      <step>/_shards/<k>/         shard k of a sharded step (a step folder of its own)
      <step>/_partitions/<key>/   partition <key> of a partitioned step (a step folder of its own)
      .cache/<model>.db           SQLite model cache (see cache.py)
      .staging/                   work folders, renamed into place when finished
      .locks/<step>.lock          held (flock) by the one run working on <step>
      .dagster/                   the Dagster instance of a script run without DAGSTER_HOME
      _backups/<step>/<fingerprint>/   a step folder whose configuration was replaced
"""

from __future__ import annotations

__all__ = [
    "BACKUPS",
    "CACHE",
    "CHECKPOINTS",
    "DAGSTER_HOME",
    "DATASET",
    "DOWNLOADS",
    "IN_PROGRESS",
    "LOCAL_FOLDER_ENV",
    "LOCKS",
    "MODEL",
    "MODEL_STATE",
    "PARTITIONS",
    "SHARDS",
    "STAGING",
    "STEP_JSON",
]

STEP_JSON = "step.json"
IN_PROGRESS = "_in_progress.json"
DATASET = "_dataset"
MODEL = "_model"
CHECKPOINTS = "_checkpoints"
#: State a model keeps across a killed run (OpenAI Batch API file and job ids).
MODEL_STATE = "_model_state"
BACKUPS = "_backups"
CACHE = ".cache"
STAGING = ".staging"
LOCKS = ".locks"
SHARDS = "_shards"
#: ``<step>/_partitions/<key>/``: a user partition (see partition_folders.py).
PARTITIONS = "_partitions"
DOWNLOADS = ".downloads"
#: Where a worker keeps its local work folders for remote output folders.
LOCAL_FOLDER_ENV = "DREAMER_LOCAL_FOLDER"
#: The Dagster instance of a pipeline run as a script when DAGSTER_HOME is not set.
DAGSTER_HOME = ".dagster"
