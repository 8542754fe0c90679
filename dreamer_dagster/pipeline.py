"""``Pipeline``: the block that replaces DataDreamer's ``with DataDreamer(folder):``."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .direct_calls import pop_session, push_session
from .filesystem import is_remote
from .io_manager import IO_MANAGER_KEY
from .names import derived_names, safe_name, scoped_name
from .script_mode import ScriptSession, caller_module_name, resolve_run_mode
from .steps.settings import SettingError, check_settings

if TYPE_CHECKING:
    import dagster as dg

    from .steps.step import Step
    from .translator import DreamerTranslator

__all__ = ["Pipeline"]

IN_MEMORY = ":memory:"


class Pipeline:
    """Collects every step declared inside ``with Pipeline(folder) as pipeline:``;
    ``pipeline.definitions()`` returns the ``dg.Definitions`` for them.

    One file, two modes (see :mod:`~dreamer_dagster.script_mode`): loaded by Dagster,
    the block only declares; run as a script (``python script.py``, the block's module
    is ``__main__``), the steps materialize through Dagster as DataDreamer runs them,
    a step's data is real when code reads it, and exports run. ``run=True`` /
    ``run=False`` (or ``DREAMER_RUN=1`` / ``0``) forces a mode.

    DataDreamer's session arguments: ``output_folder`` (a local path, any fsspec URL such
    as ``s3://bucket/prefix`` or ``file:///shared/disk``, or a ``upath.UPath``, with
    ``storage_options`` for its filesystem; ``":memory:"``: a temporary folder, removed
    when the process ends), ``verbose``, ``log_level``, ``log_date`` (the terminal log of
    a script, and the steps' run logs) and ``hf_log`` (False: the Hugging Face libraries
    log errors only, without progress bars, while a step runs).

    An explicit step name used twice in one block is an error; names an operation
    derives are numbered as DataDreamer numbers them (``"Src (take)"``,
    ``"Src (take #2)"``).

    Keyword arguments set defaults for the Dagster settings of the steps declared in
    the block (``automation_condition``, ``pool``, ``retry_policy``, ``checks``,
    ``budget_usd``, ``owners``, ``tags``, ``op_tags``; a step's own value wins; ``pipes_client``
    is the default of the trainers and local-model steps only, see :mod:`~dreamer_dagster.pipes`),
    ``translator`` / ``asset_spec`` customize each step's asset spec and op (see
    :mod:`~dreamer_dagster.translator`), ``resources`` are Dagster resources for the
    script's runs and :meth:`definitions`, and ``io_manager_key`` / ``job_name`` let
    two pipelines with two output folders live in one code location.
    """

    _active: ClassVar[list[Pipeline]] = []

    def __init__(
        self,
        output_folder: Any = "./output",
        verbose: bool | None = None,
        log_level: int | None = None,
        log_date: bool = False,
        hf_log: bool = False,
        *,
        run: bool | None = None,
        group_name: str | None = None,
        storage_options: dict[str, Any] | None = None,
        translator: DreamerTranslator | None = None,
        asset_spec: Callable[[Step, dg.AssetSpec], dg.AssetSpec] | None = None,
        io_manager_key: str = IO_MANAGER_KEY,
        job_name: str | None = None,
        resources: dict[str, Any] | None = None,
        **settings: Any,
    ):
        from .definitions import make_translator, output_folder_config

        self.script_mode = resolve_run_mode(run, caller_module_name())
        self.in_memory = isinstance(output_folder, str) and output_folder.strip().lower() == IN_MEMORY
        if self.in_memory:
            output_folder = tempfile.mkdtemp(prefix="dreamer-memory-")
            atexit.register(shutil.rmtree, output_folder, ignore_errors=True)
        elif (
            isinstance(output_folder, (str, os.PathLike))
            and not is_remote(output_folder)
            and os.path.isfile(output_folder)
        ):
            raise ValueError(
                f"Pipeline, argument 'output_folder': {os.fspath(output_folder)!r} is a file, not a "
                "folder. Fix: pass a folder path (it is made when a step first runs), or move the file away."
            )
        self.output_folder, self.storage_options = output_folder_config(output_folder, storage_options)
        self.verbose = verbose
        self.log_level = log_level
        self.log_date = log_date
        self.hf_log = hf_log
        self.group_name = group_name
        try:
            self.translator = make_translator(translator, asset_spec)
            self.settings = check_settings({**settings, "group_name": group_name})
            # The default of the heavy steps only (trainers, local models): see pipes/launch.py.
            self.pipes_client = self.settings.pop("pipes_client", None)
        except SettingError as error:
            raise ValueError(f"Pipeline, argument {error.argument!r}: {error}") from None
        except TypeError as error:
            raise TypeError(f"Pipeline: {error}") from None
        if not isinstance(io_manager_key, str) or not io_manager_key.isidentifier():
            raise ValueError(
                f"Pipeline, argument 'io_manager_key': must be a Python identifier, got {io_manager_key!r}."
            )
        self.io_manager_key = io_manager_key
        self.job_name = job_name
        self.resources = dict(resources or {})
        self.steps: list[Step] = []
        self._by_key: dict[str, Step] = {}
        self.session: ScriptSession | None = None

    # -- the block ------------------------------------------------------------------

    def __enter__(self) -> Pipeline:
        if any(active.script_mode for active in Pipeline._active):
            # As DataDreamer refuses a session inside another (src/datadreamer.py).
            raise RuntimeError(
                "Only one DataDreamer context may be active at a time: a Pipeline block was opened "
                "inside a running one. Fix: end the running block first (or declare the steps in it)."
            )
        Pipeline._active.append(self)
        # Models called directly in the block use its model cache (see direct_calls.py).
        self._direct_calls = push_session(self.model_cache_folder)
        if self.script_mode:
            self.session = ScriptSession(self)
            try:
                self.session.open()
            except BaseException:  # a block that never opened is not left active
                self.session = None
                pop_session(self._direct_calls)
                Pipeline._active.remove(self)
                raise
        return self

    def __exit__(self, exc_type: Any, *exc_info: Any) -> None:
        try:
            if self.session is not None:
                self.session.close(failed=exc_type is not None)
        finally:
            self.session = None
            pop_session(self._direct_calls)
            Pipeline._active.remove(self)

    def model_cache_folder(self) -> Path | None:
        """Where the block's model caches live (``OutputFolder.cache_path``: ``<output>/.cache``,
        or this worker's own for a shared output folder); None in memory, where DataDreamer
        keeps no cache for a model called directly."""
        if self.in_memory:
            return None
        from .output_folder import OutputFolder

        return OutputFolder(self.output_folder, self.storage_options or None).cache_path

    def start(self) -> None:
        """Open the block without ``with`` (DataDreamer's ``start()``); end it with :meth:`stop`."""
        self.__enter__()

    def stop(self) -> None:
        """End a block opened with :meth:`start` (a running script materializes what is left)."""
        self.__exit__(None, None, None)

    @property
    def is_active(self) -> bool:
        """Whether the block is open (steps declared now belong to it)."""
        return self in Pipeline._active

    @staticmethod
    def initialized() -> bool:
        """Whether a ``Pipeline`` block is open (DataDreamer's ``DataDreamer.initialized()``)."""
        return bool(Pipeline._active)

    @staticmethod
    def get_output_folder_path() -> str:
        """The output folder of the open block (DataDreamer's ``get_output_folder_path()``)."""
        if not Pipeline._active:
            raise RuntimeError("No Pipeline block is open. Fix: call this inside `with Pipeline(...):`.")
        pipeline = Pipeline._active[-1]
        if pipeline.in_memory:
            raise RuntimeError("The pipeline is running in-memory (Pipeline(':memory:')).")
        return pipeline.output_folder

    # -- steps ----------------------------------------------------------------------

    @classmethod
    def register(cls, step: Step) -> None:
        """Called by every step when it is declared (a step declared in a running SuperStep's
        ``run()`` runs at once instead; see :mod:`~dreamer_dagster.steps.super_step`)."""
        from .script_mode import in_script_run
        from .steps.super_step import inner_run

        running = inner_run()
        if running is not None:
            running.add(step)
            return
        if in_script_run():
            # As DataDreamer: only a SuperStep's run() may run steps.
            raise RuntimeError(
                f"Step {step.name!r} ({type(step).__name__}) was declared inside another step's run(), "
                "which only a SuperStep may do. Fix: make the outer step a SuperStep "
                "(from dreamer_dagster.steps import SuperStep), or declare the step outside it."
            )
        if not cls._active:
            return
        pipeline = cls._active[-1]
        existing = pipeline._by_key.get(step.key)
        if existing is not None and existing is not step:
            raise step.error(
                f"another step, {existing.name!r}, already has the asset key {step.key!r} in this "
                "pipeline. Fix: give one of them a different name.",
                "name",
            )
        if existing is None:
            # Where the step's output lives, for exports made after the block.
            step.pipeline_output_folder = pipeline.output_folder
            step.pipeline = pipeline
            step.apply_defaults(pipeline.settings)
            pipeline._by_key[step.key] = step
            pipeline.steps.append(step)

    @classmethod
    def derived_name(cls, base: str, transform: str | None = None, parts: tuple[str, ...] = ()) -> str:
        """The name of a step an operation derives from ``base`` (``"Src (take)"``), numbered
        as DataDreamer numbers it when the open block already has it (``"Src (take #2)"``).
        With ``parts``, each ``"<name> (<part>)"`` must be free (the steps of ``splits``)."""
        from .steps.super_step import inner_run

        running = inner_run()
        taken = running.steps if running is not None else cls._active[-1]._by_key if cls._active else {}
        for name in derived_names(base, transform):
            names = [f"{name} ({part})" for part in parts] or [name]
            try:
                if not any(safe_name(scoped_name(candidate)) in taken for candidate in names):
                    return name
            except (TypeError, ValueError):
                return name  # not a valid name: declaring the step says why, naming it
        raise AssertionError("unreachable")  # derived_names never ends

    # -- Dagster --------------------------------------------------------------------

    def definitions(self, **kwargs: Any) -> dg.Definitions:
        """``dreamer_definitions`` for every step declared in the block (with this pipeline's
        translator, IO manager key, job name and resources); kwargs pass through
        (``schedule=``, ``resources=``, ``executor=``...)."""
        return self._definitions(list(self.steps), **kwargs)

    def _definitions(self, steps: list[Step], **kwargs: Any) -> dg.Definitions:
        from .definitions import dreamer_definitions

        kwargs.setdefault("translator", self.translator)
        kwargs.setdefault("io_manager_key", self.io_manager_key)
        if self.job_name is not None:
            kwargs.setdefault("job_name", self.job_name)
        if self.storage_options:
            kwargs.setdefault("storage_options", self.storage_options)
        if self.resources:
            kwargs["resources"] = {**self.resources, **(kwargs.get("resources") or {})}
        if self.pipes_client is not None:
            kwargs.setdefault("pipes_client", self.pipes_client)
        return dreamer_definitions(steps, output_folder=self.output_folder, **kwargs)

    def definitions_for_run(self, extra: list[Step] = ()) -> dg.Definitions:
        """The definitions a running script materializes from: the block's steps so far and
        ``extra`` (steps declared outside the block that they read)."""
        # Never swaps self.steps: steps declared meanwhile in other threads (background=True,
        # concurrent()) append to it.
        steps = list(self.steps)
        return self._definitions(steps + [step for step in extra if step not in steps])
