"""One asset job per partitions definition of a pipeline, for backfills.

The pipeline's job (``dreamer_pipeline``) holds the unpartitioned steps: one job cannot
mix partitions definitions. Each partitions definition its steps use gets a job of its
own, ``<pipeline job>_<name>``, over the steps partitioned by it, so that
``dagster job backfill -j dreamer_pipeline_daily --from 2026-12-01 --to 2026-12-03``
(or the web UI's backfill on that job) launches one run per partition. ``<name>`` is
read from the definition: ``daily``, ``hourly``, ``weekly``, ``monthly``,
``timewindow`` (any other time window), ``static``, ``multi``, or a dynamic
definition's own name; where two different definitions of one pipeline would share a
name, each takes ``_<8 hex digits of its hash>`` after it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

import dagster as dg

__all__ = ["partition_job_suffix", "partition_jobs"]


def partition_jobs(
    base_name: str, assets: Iterable[dg.AssetsDefinition]
) -> list[dg.UnresolvedAssetJobDefinition]:
    """A job named ``<base_name>_<suffix>`` for each partitions definition of ``assets``,
    selecting the assets partitioned by it (in the order they come)."""
    groups: list[tuple[dg.PartitionsDefinition, list[dg.AssetKey]]] = []
    for asset in assets:
        partitions_def = asset.partitions_def
        if partitions_def is None:
            continue
        for known, keys in groups:
            if known == partitions_def:
                keys.append(asset.key)
                break
        else:
            groups.append((partitions_def, [asset.key]))
    readable = [_readable_name(partitions_def) for partitions_def, _ in groups]
    jobs = []
    for (partitions_def, keys), name in zip(groups, readable, strict=True):
        suffix = partition_job_suffix(partitions_def) if readable.count(name) > 1 else name
        jobs.append(
            dg.define_asset_job(
                f"{base_name}_{suffix}",
                selection=dg.AssetSelection.assets(*keys),
                partitions_def=partitions_def,
                description="Materialize the steps partitioned by "
                f"{type(partitions_def).__name__}, one partition a run (launch a backfill for a range).",
            )
        )
    return jobs


def partition_job_suffix(partitions_def: dg.PartitionsDefinition) -> str:
    """The definition's name followed by 8 hex digits of its hash (``daily_1a2b3c4d``)."""
    if isinstance(partitions_def, dg.DynamicPartitionsDefinition):
        identity = f"dynamic:{partitions_def.name}"
    else:
        identity = partitions_def.get_serializable_unique_identifier()
    digest = hashlib.sha1(identity.encode("utf-8")).hexdigest()[:8]
    return f"{_readable_name(partitions_def)}_{digest}"


def _readable_name(partitions_def: dg.PartitionsDefinition) -> str:
    if isinstance(partitions_def, dg.DynamicPartitionsDefinition) and partitions_def.name:
        name = partitions_def.name
    else:
        name = type(partitions_def).__name__.removesuffix("PartitionsDefinition") or "partitioned"
    return re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_") or "partitioned"
