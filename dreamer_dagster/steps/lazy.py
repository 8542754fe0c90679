"""Lazy operations: a step whose rows are computed on demand, never written as its own dataset.

DataDreamer's operations take ``lazy=`` (``map``, ``filter``, ``take``... default True):
their output is an iterable dataset computed when read. Here a lazy operation stays
a step (its own asset: lineage, code version), but its materialization writes only
a *recipe* in its step.json (``"lazy"``: the operation, its upstream folders and
fingerprints) and no ``_dataset``. Whoever loads it (the IO manager for a
downstream step, a script reading ``step.output``) gets a :class:`LazyDataset`: the
upstream rows streamed through the operation (``datasets.IterableDataset``), a batch
at a time. A consumer that needs random access (``select``, ``sort``...) writes
the rows it reads into its own staging folder first (:func:`as_dataset`).

The step object that holds the recipe's functions is found by its fingerprint
(:func:`register`): the declaring module is loaded in every process that reads it.
"""

from __future__ import annotations

import hashlib
import json
import sys
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .run_context import StepRunContext
    from .step import Step

__all__ = [
    "LAZY_RECORD",
    "LazyDataset",
    "as_dataset",
    "without_torch",
    "execute_recipe",
    "is_lazy_dataset",
    "iterable_of",
    "load_lazy",
    "register",
    "counting_reads",
    "read_progress",
    "rows_of",
    "rows_unknown",
    "source_is_iterable",
]

#: The step.json key of a lazy step's recipe (its presence marks a recipe-only folder).
LAZY_RECORD = "lazy"
#: The step.json key of a step whose output is an iterable dataset (``total_num_rows``).
ITERABLE_RECORD = "iterable"

_DECLARED: weakref.WeakValueDictionary[str, Step] = weakref.WeakValueDictionary()


@contextmanager
def without_torch() -> Iterator[None]:
    """While building ``datasets.IterableDataset`` objects, keep ``datasets`` from importing
    torch (it makes each one a torch ``IterableDataset`` when torch is installed: ~180 MB
    and seconds, for a stream no DataLoader reads). Nothing changes once torch is loaded."""
    from datasets import config

    if "torch" in sys.modules or not config.TORCH_AVAILABLE:
        yield
        return
    config.TORCH_AVAILABLE = False
    try:
        yield
    finally:
        config.TORCH_AVAILABLE = True


def register(step: Step) -> None:
    """Remember a lazy step by its fingerprint, so a load of its recipe finds its code."""
    _DECLARED[step.fingerprint] = step


class LazyDataset:
    """Rows computed on demand: a ``datasets.IterableDataset`` and its row count if known.

    It reads like the ``datasets.Dataset`` a step reads (``column_names``, ``features``,
    iteration, ``select_columns``, ``with_format("arrow").iter(batch_size)``, ``len``);
    anything else (random access) is answered by the rows written to a dataset first.
    """

    def __init__(
        self,
        iterable: Any,
        total_num_rows: int | None = None,
        step: Step | None = None,
        pickled: list[str] | tuple[str, ...] = (),
    ):
        self.iterable = iterable
        self.total_num_rows = total_num_rows
        self.step = step
        #: Columns holding pickled values (DataDreamer's ``step.pickle``): raw bytes in the
        #: stream, restored when rows are read (:meth:`__iter__`) or given to a function.
        self.pickled = list(pickled)
        self._features: Any = None
        self._count: int | None = total_num_rows
        self._dataset: Any = None

    # -- what streaming readers use ---------------------------------------------------

    @property
    def features(self) -> Any:
        if self.iterable.features is not None:
            return self.iterable.features
        if self._features is None:  # after a map: the first batch says
            import datasets

            with without_torch():
                tables = self.iterable.with_format("arrow")
            for table in tables.iter(batch_size=1):
                self._features = datasets.Features.from_arrow_schema(table.schema)
                break
            else:
                self._features = datasets.Features()
        return self._features

    @property
    def column_names(self) -> list[str]:
        return list(self.features)

    @property
    def cache_files(self) -> list:
        return []  # nothing on disk: readers stream it

    @property
    def format(self) -> dict:
        return {"type": None}

    def __iter__(self) -> Iterator[dict]:
        if not self.pickled:
            return iter(self.iterable)
        return (unpickle_row(row, self.pickled) for row in self.iterable)

    def __len__(self) -> int:
        if self._count is None:  # one counting pass (rows as Python values: no Arrow conversion)
            self._count = sum(1 for _ in self.iterable)
        return self._count

    @property
    def num_rows(self) -> int:
        return len(self)

    def batches(self, batch_size: int = 1000) -> Iterator[Any]:
        """The rows as ``pyarrow`` tables of up to ``batch_size`` rows (built a batch at a time
        from the stream's rows: ``datasets`` would convert a mapped stream row by row)."""
        import pyarrow as pa

        known = self.iterable.features
        schema = known.arrow_schema if known is not None else None
        batch: list[dict] = []
        for row in self.iterable:
            batch.append(row)
            if len(batch) >= batch_size:
                yield pa.Table.from_pylist(batch, schema=schema)
                batch = []
        if batch:
            yield pa.Table.from_pylist(batch, schema=schema)

    def select_columns(self, column_names: list[str]) -> LazyDataset:
        with without_torch():
            iterable = self.iterable.select_columns(list(column_names))
        return LazyDataset(iterable, self.total_num_rows, self.step, self.pickled)

    def with_format(self, type: str | None = None, **kwargs: Any) -> Any:  # noqa: A002
        if type == "arrow":
            return _ArrowView(self)
        with without_torch():
            iterable = self.iterable.with_format(type, **kwargs)
        return LazyDataset(iterable, self.total_num_rows, self.step, self.pickled)

    def iter(self, batch_size: int, drop_last_batch: bool = False) -> Iterator[Any]:
        return self.iterable.iter(batch_size=batch_size, drop_last_batch=drop_last_batch)

    def take(self, n: int) -> LazyDataset:
        with without_torch():
            iterable = self.iterable.take(n)
        return LazyDataset(iterable, None, self.step, self.pickled)

    # -- everything else: the rows as a Dataset -----------------------------------------

    def to_dataset(self, work_dir: Path | None = None) -> Any:
        """The rows as a ``datasets.Dataset`` (written under ``work_dir``, else in memory)."""
        if self._dataset is None:
            self._dataset = as_dataset(self, work_dir)
        return self._dataset

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("iterable", "total_num_rows", "step", "_dataset", "pickled"):
            raise AttributeError(name)
        return getattr(self.to_dataset(), name)

    def __getitem__(self, key: Any) -> Any:
        return self.to_dataset()[key]

    def __repr__(self) -> str:
        rows = "Unknown" if self.total_num_rows is None else self.total_num_rows
        return f"LazyDataset(num_rows={rows})"


class _ArrowView:
    """``lazy.with_format("arrow")``: ``iter(batch_size)`` gives ``pyarrow`` tables."""

    def __init__(self, lazy: LazyDataset):
        self.lazy = lazy

    def iter(self, batch_size: int, drop_last_batch: bool = False) -> Iterator[Any]:
        for table in self.lazy.batches(batch_size):
            if drop_last_batch and table.num_rows < batch_size:
                return
            yield table


def is_lazy_dataset(value: Any) -> bool:
    return isinstance(value, LazyDataset)


def pickled_columns(loaded: Any) -> list[str]:
    """The columns of a loaded output that hold pickled values (raw in its stream)."""
    if isinstance(loaded, LazyDataset):
        return list(loaded.pickled)
    from ..pickling import reads_pickled

    if not reads_pickled(loaded):
        return []
    from datasets import Value

    return [name for name, feature in loaded.features.items() if feature == Value("binary")]


def unpickle_row(row: Any, columns: list[str], batched: bool = False) -> Any:
    """A row (or a batch of columns) with the pickled values of ``columns`` restored."""
    from ..pickling import unpickle_batch

    if batched:
        return unpickle_batch(row, columns)
    return {
        name: values[0] for name, values in unpickle_batch({k: [v] for k, v in row.items()}, columns).items()
    }


def iterable_of(loaded: Any) -> Any:
    """A loaded upstream output as a ``datasets.IterableDataset`` (pickled values raw)."""
    if isinstance(loaded, LazyDataset):
        return loaded.iterable
    if pickled_columns(loaded):
        loaded = loaded.with_format(None)  # the raw bytes; restored where rows are used
    with without_torch():
        if len(loaded) == 0:  # datasets cannot shard no rows into an iterable
            import datasets

            return datasets.IterableDataset.from_generator(_no_rows, features=loaded.features)
        return loaded.to_iterable_dataset()


def _no_rows() -> Iterator[dict]:
    yield from ()


def rows_of(loaded: Any) -> int | None:
    """A loaded upstream output's row count, None when only reading it all would tell."""
    if isinstance(loaded, LazyDataset):
        return loaded.total_num_rows
    return len(loaded)


def as_dataset(loaded: Any, work_dir: Path | None = None) -> Any:
    """A loaded output as a ``datasets.Dataset``: a lazy one's rows streamed into Arrow files
    under ``work_dir`` (memory-mapped when read), or into memory without one."""
    import datasets

    if not isinstance(loaded, LazyDataset):
        return loaded
    if work_dir is None:
        tables = list(loaded.batches())
        if not tables:
            return datasets.Dataset.from_dict({c: [] for c in loaded.column_names}, features=loaded.features)
        import pyarrow as pa

        return datasets.Dataset(pa.concat_tables(tables))
    from ..dataset_io import stream_dataset

    target = Path(work_dir) / f"lazy-{id(loaded):x}"
    features = loaded.iterable.features
    stream_dataset(target, loaded.batches(), features=features, columns=loaded.column_names)
    return datasets.load_from_disk(str(target))


# -- a lazy step's run and load ------------------------------------------------------------


def execute_recipe(step: Any, context: StepRunContext) -> dict:
    """A lazy operation's run: check it can stream its upstream, write no rows, and return
    step.json's fields: the recipe, the columns, the row count when known, a data version
    derived from its fingerprint and its upstream's data versions."""
    loaded = [context.dataset(source) for source in step.source_steps()]
    lazy = step.apply_lazy(loaded)
    if lazy.pickled:
        context.pickled = True  # step.json's ``pickled``: its rows hold pickled values
    upstream = []
    for source in step.source_steps():
        record = context.output_folder.step(folder_of(source)).step_json() or {}
        upstream.append(
            {
                "folder": folder_of(source),
                "fingerprint": source.fingerprint,
                "data_version": record.get("data_version"),
            }
        )
    recipe = {"operation": step.OPERATION, "fingerprint": step.fingerprint, "upstream": upstream}
    text = json.dumps([step.fingerprint, [u["data_version"] for u in upstream]], sort_keys=True)
    columns = step.output_columns if step.output_columns is not None else lazy.column_names
    return {
        "outputs": list(columns),
        "num_rows": lazy.total_num_rows,
        LAZY_RECORD: recipe,
        ITERABLE_RECORD: {"total_num_rows": lazy.total_num_rows},
        "schema": {},
        "data_version": hashlib.sha256(text.encode()).hexdigest()[:16],
    }


def load_lazy(step_folder: Any, record: dict, load: Any) -> LazyDataset:
    """A lazy step's rows from its recipe: its upstream outputs (``load(step_folder,
    fingerprint)``, lazy ones recursively) streamed through its operation."""
    recipe = record[LAZY_RECORD]
    step = _DECLARED.get(recipe.get("fingerprint"))
    if step is None:
        raise FileNotFoundError(
            f"Step folder {step_folder.path} holds a lazy step's recipe ({recipe.get('operation')}, "
            f"fingerprint {recipe.get('fingerprint')}), and no step declared in this process has that "
            "fingerprint, so its rows cannot be computed. Fix: load the definitions that declare it "
            "(its operation's function lives there), or make it write its rows with lazy=False."
        )
    output = step_folder.output
    loaded = []
    for source in step.source_steps():
        loaded.append(load(output.step(folder_of(source)), source.fingerprint))
    return step.apply_lazy(loaded)


def folder_of(step: Step) -> str:
    """The step's folder name in the output folder."""
    return getattr(step, "folder", None) or step.key


def source_is_iterable(step: Step) -> bool:
    """Whether ``step``'s output is an iterable dataset: a lazy operation's always; another
    step's when its ``run()`` returned rows on demand (``LazyRows``, a generator), which only
    its run tells: in a running script it has run (DataDreamer waits for it here), in a file
    loaded as definitions it counts as a dataset."""
    from .operations.base import OperationStep

    if isinstance(step, OperationStep):
        return bool(step.lazy_output)
    pipeline = step.pipeline
    if pipeline is None or not pipeline.is_active or not pipeline.script_mode:
        return False
    from ..script_mode import require_output

    require_output(step, "an operation on its output")
    record = finished_record(step)
    return bool(record and record.get(ITERABLE_RECORD))


def rows_unknown(step: Step) -> bool:
    """Whether ``step``'s output is known to be iterable with no row count (DataDreamer's
    ``num_rows`` None): only a step that ran in a running script tells (see
    :func:`source_is_iterable`); in a file loaded as definitions nothing is known yet."""
    if not source_is_iterable(step):
        return False
    record = finished_record(step)
    return bool(
        record
        and record.get(ITERABLE_RECORD) is not None
        and record[ITERABLE_RECORD].get("total_num_rows") is None
    )


def read_progress(step: Step, record: dict) -> float:
    """A finished step's ``progress`` (DataDreamer's): 1.0, but an iterable output's rows are
    computed as they are read, so its progress is the share of them read through
    ``step.output`` in this process (0.0 before; see :func:`counting_reads`)."""
    if record.get(ITERABLE_RECORD) is None:
        return 1.0
    return step.__dict__.get("_read_progress", 0.0)


def counting_reads(step: Step, rows: Iterable[Any], total: int | None) -> Iterator[Any]:
    """``rows`` (an iterable output read through ``step.output``), moving the step's
    :func:`read_progress` up as they pass when ``total`` is known; then the type error its
    run recorded, if any, raised as DataDreamer raises it while reading (iterable_types.py)."""
    for done, row in enumerate(rows, start=1):
        if total:
            step.__dict__["_read_progress"] = max(
                step.__dict__.get("_read_progress", 0.0), min(1.0, done / total)
            )
        yield row
    from .iterable_types import raise_recorded

    raise_recorded(step.name, step.finished_record()[1])


def finished_record(step: Step) -> dict | None:
    """The step's step.json when the output folder holds its finished output (no run)."""
    from ..script_mode import can_read_output

    if not can_read_output(step):
        return None
    try:
        folder = step.export_folder().step(folder_of(step))
        record = folder.step_json()
    except Exception:  # noqa: BLE001 - no output folder known: nothing finished to tell
        return None
    if not record or record.get("fingerprint") != step.fingerprint:
        return None
    return record
