"""What a running step sees: its inputs, the output folder, logging and counters."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..call_scope import CallScope
from ..cost import EstimateUnavailable
from ..dataset_io import rows_between
from ..deferred import ColumnRef, Deferred, DeferredValueError, resolve
from ..logs import report

if TYPE_CHECKING:
    from ..output_folder import OutputFolder, StepFolder
    from .step import Step

__all__ = ["EstimateUnavailable", "StepRunContext"]  # EstimateUnavailable: cost.py's, re-exported


class StepRunContext:
    """The run-time view of one step's materialization.

    ``upstream`` maps each upstream step's key to what the IO manager loaded
    for it: a ``datasets.Dataset`` for a step, the ``_model`` folder path for a
    trainer. Models read ``cache_path`` to find the SQLite model cache and add
    to ``stats`` (model calls, cache hits, tokens), which become the
    materialization's metadata. ``resources`` are the API client resources of
    the definitions (``OpenAIResource``): each model bound by :meth:`model`
    takes its run-time client settings (key, organization, timeout) from them.
    ``scope`` (a :class:`CallScope`) gives the bound models the step's log and
    ``budget_usd``; with ``estimating`` it makes them count prompts instead of
    sending them (``cost.estimate_step``).
    """

    def __init__(
        self,
        step: Step,
        output_folder: OutputFolder,
        upstream: dict[str, Any],
        staged: Path | None,
        log: Any = None,
        resources: Iterable[Any] = (),
        estimating: bool = False,
        shard: Any = None,
        partition: Any = None,
    ):
        self.step = step
        self.output_folder = output_folder
        #: The partition this run makes or reads through (see steps/partitions.py), if any.
        self.partition = partition
        #: The step's partition key in this run (None: not partitioned): ``{partition_key}``.
        self.partition_key: str | None = partition.key if partition is not None else None
        #: The shard of the step this run makes (a :class:`~dreamer_dagster.steps.shards.Shard`), if any.
        self.shard = shard
        self.step_folder: StepFolder = (
            output_folder.step(step.folder)
            if shard is None
            else output_folder.step(step.folder).shard(shard.key)
        )
        if partition is not None:
            self.step_folder = partition.folder(self.step_folder)
        self.upstream = upstream
        self._rows: tuple[int, int] | None = None if shard is None else (shard.start, shard.stop)
        self.staged = staged
        self.log = log
        from ..resources import client_resource

        self.resources = [client_resource(resource) for resource in resources]
        self.stats: Counter = Counter()
        self.scope = CallScope(
            step.name,
            self.stats,
            log=log,
            budget_usd=getattr(step, "budget_usd", None),
            estimating=estimating,
        )
        self.card: dict[str, list[str]] = {}
        #: Whether ``step.pickle`` was called: step.json's ``pickled`` (see pickling.py).
        self.pickled = False
        #: The data cards of the steps a SuperStep ran inside this step.
        self.inner_cards: list[dict] = []
        self._started = time.monotonic()
        self._last_progress = self._started

    @property
    def cache_path(self) -> Path:
        """Where model caches live (``<output>/.cache``)."""
        return self.output_folder.cache_path

    # -- inputs ---------------------------------------------------------------------

    def dataset(self, step: Step) -> Any:
        """The loaded output Dataset of an upstream step (for a shard: its rows of the inputs
        the step shards)."""
        try:
            dataset = self.upstream[step.key]
        except KeyError:
            raise RuntimeError(
                f"Step {self.step.name!r} reads {step.name!r}, which is not among its loaded inputs."
            ) from None
        if self._rows is not None and step.key in self.shard.sliced_steps:
            start, stop = self._rows
            dataset = rows_between(dataset, start, stop)
        return dataset

    def upstream_pickled(self, step: Step) -> bool:
        """Whether an upstream step's step.json says its rows hold pickled values."""
        from ..pickling import reads_pickled

        return reads_pickled(self.upstream.get(step.key))

    @contextmanager
    def rows_before_shard(self) -> Iterator[None]:
        """Within the block, the sharded inputs hold the rows before this shard's (the prompts
        of earlier shards count the repeats of a prompt, as one unsharded run would)."""
        saved = self._rows
        self._rows = (0, self.shard.start if self.shard is not None else 0)
        try:
            yield
        finally:
            self._rows = saved

    def column(self, ref: ColumnRef) -> list:
        """The referenced column as a list (for random access; :meth:`iter_column` streams)."""
        dataset = self._checked(ref)
        # dataset[name] is a lazy Column that decodes row by row when iterated;
        # slicing the one-column dataset converts the whole column at once.
        return dataset.select_columns([ref.column])[:][ref.column]

    def column_length(self, ref: ColumnRef) -> int:
        """The number of rows of the referenced column."""
        return len(self._checked(ref))

    def column_chunks(self, ref: ColumnRef, chunk: int = 1000) -> Iterator[Any]:
        """The referenced column as ``pyarrow`` arrays of about ``chunk`` rows, in order.

        A committed step's column is read from its Arrow files a record batch at a
        time with plain reads, so a step reading a column of any length holds one
        batch of it at a time (a memory-mapped read would keep every page it
        touched resident).
        """
        dataset = self._checked(ref)
        batches = None
        files = dataset.cache_files
        step_folder = self.output_folder.step(ref.step.folder)
        if files and all(Path(f["filename"]).parent == step_folder.dataset_path for f in files):
            batches = step_folder.record_batches()
        if batches is None:  # not a committed folder (a dataset built in memory)
            tables = dataset.select_columns([ref.column]).with_format("arrow").iter(batch_size=chunk)
            yield from (table.column(0).combine_chunks() for table in tables)
            return
        # A shard reads its rows of the folder, as :meth:`dataset` selects them.
        start, stop = (
            self._rows if self._rows is not None and ref.step.key in self.shard.sliced_steps else (0, None)
        )
        offset = 0
        for batch in batches:
            begin, offset = offset, offset + batch.num_rows
            if stop is not None and begin >= stop:
                break
            if offset <= start:
                continue
            end = offset if stop is None else min(stop, offset)
            yield batch.column(ref.column).slice(max(start - begin, 0), end - max(start, begin))

    def iter_column(self, ref: ColumnRef, chunk: int = 1000) -> Iterator[Any]:
        """The values of the referenced column, in order, read a chunk at a time."""
        import datasets
        import pyarrow as pa
        from datasets.formatting import PythonFormatter

        feature = self._checked(ref).features[ref.column]
        formatter = PythonFormatter(features=datasets.Features({ref.column: feature}))
        for array in self.column_chunks(ref, chunk):
            yield from formatter.format_column(pa.table({ref.column: array}))

    def _checked(self, ref: ColumnRef) -> Any:
        dataset = self.dataset(ref.step)
        if ref.column not in dataset.column_names:
            raise KeyError(
                f"Step {self.step.name!r}: step {ref.step.name!r} has no column {ref.column!r} "
                f"(it has {dataset.column_names})."
            )
        return dataset

    def input_columns(self) -> dict[str, list]:
        """Every declared input as a list, by input name."""
        return {name: self.column(ref) for name, ref in self.step.inputs.items()}

    def model_path(self, step: Step) -> str:
        """The ``_model`` folder of an upstream trainer."""
        value = self.upstream.get(step.key)
        if not isinstance(value, str):
            raise RuntimeError(f"Step {self.step.name!r}: {step.name!r} is not a trained model.")
        return value

    def deferred_base(self, deferred: Deferred) -> Any:
        if deferred.source[0] == "column":
            return self.column(ColumnRef(deferred.step, deferred.source[1]))
        return self.model_path(deferred.step)

    def resolve(self, value: Any) -> Any:
        """``value`` with every deferred part computed from the loaded inputs."""
        try:
            return resolve(value, self)
        except DeferredValueError as error:
            raise DeferredValueError(f"Step {self.step.name!r} ({type(self.step).__name__}): {error}") from (
                error.__cause__
            )

    @property
    def estimating(self) -> bool:
        """True while ``cost.estimate_step`` runs the step: no model may be called."""
        return self.scope.estimating

    def model(self, model: Any) -> Any:
        """A declared model made ready for this run: deferred parts resolved, bound
        to the output folder's model cache, to this step's counters, log and scope
        (budget, estimate-only mode), to the step folder's ``_model_state`` (what a
        model keeps across a killed run), and to the client settings of the resource
        that serves it, if any."""
        if self.estimating:
            from ..llms.llm import LLM

            if not isinstance(model, LLM):
                raise EstimateUnavailable(f"it uses {model!r}, whose calls are not estimated")
        bound = self.resolve(model).for_run(cache_folder=self.cache_path, stats=self.stats)
        bound.state_folder = self.step_folder.model_state_path
        bound.log = self.log
        bound.scope = self.scope
        for resource in self.resources:
            resource.configure_model(bound)
        return bound

    def close(self) -> None:
        """End every model generation the step left open (each saves what it received)."""
        self.scope.close()

    # -- reporting ------------------------------------------------------------------

    def add_card_entry(self, key: str, value: str) -> None:
        """A data card entry learned while running (a loaded dataset's license...)."""
        values = self.card.setdefault(key, [])
        if value not in values:
            values.append(value)

    def info(self, message: str) -> None:
        """Log to the run log (and a running script's terminal), at the step's threshold."""
        report(self.step, message, run_log=self.log)

    def with_progress(self, rows: Iterable[Any], total: int | None) -> Iterator[Any]:
        """``rows`` (row dicts or ``pyarrow`` tables) passed through, with :meth:`progress`
        reported as they go."""
        done = 0
        for row in rows:
            yield row
            done += 1 if isinstance(row, dict) else row.num_rows
            self.progress(done, total)

    def fraction(self, value: float) -> None:
        """A step's own progress (0 to 1: DataDreamer's ``self.progress = ...`` in ``run()``),
        logged at most once per progress interval."""
        interval = self.step.progress_interval
        now = time.monotonic()
        if interval is None or now - self._last_progress < interval:
            return
        self._last_progress = now
        self.info(f"Step {self.step.name!r} progress: {value:.0%}")

    def progress(self, done: int, total: int | None, force: bool = False) -> None:
        """Log ``rows done of total, rows/s, ETA`` at most once per progress interval."""
        interval = self.step.progress_interval
        now = time.monotonic()
        if interval is None or (not force and now - self._last_progress < interval):
            return
        self._last_progress = now
        elapsed = max(now - self._started, 1e-9)
        rate = done / elapsed
        message = f"{self.step.name}: {done}"
        if total:
            percent = 100.0 * done / total
            eta = (total - done) / rate if rate > 0 else float("inf")
            message += f" of {total} rows ({percent:.0f}%), {rate:.1f} rows/s, ETA {eta:.0f}s"
        else:
            message += f" rows, {rate:.1f} rows/s"
        if force:
            # the last count, for the run log; a script's terminal says "finished (N rows)"
            report(self.step, message, run_log=self.log, terminal=False)
        else:
            self.info(message)
