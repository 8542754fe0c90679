"""``Pipeline``: the block that replaces DataDreamer's ``with DataDreamer(folder):``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from .io_manager import IO_MANAGER_KEY
from .steps.settings import SettingError, check_settings

if TYPE_CHECKING:
    import dagster as dg

    from .steps.step import Step
    from .translator import DreamerTranslator

__all__ = ["Pipeline"]


class Pipeline:
    """Collects every step declared inside ``with Pipeline(folder) as pipeline:``.

    Nothing runs in the block; ``pipeline.definitions()`` returns the
    ``dg.Definitions`` for the collected steps. Two steps with one name (one
    asset key) in one block are an error, raised when the second is declared.

    Keyword arguments set defaults for the Dagster settings of the steps
    declared in the block (``automation_condition``, ``pool``,
    ``retry_policy``, ``checks``, ``budget_usd``, ``owners``, ``tags``,
    ``op_tags``; a step's own value wins), ``output_folder`` a local path or any
    fsspec URL (``s3://bucket/prefix``, ``file:///shared/disk``) or ``upath.UPath``,
    with ``storage_options`` for its filesystem, ``translator`` / ``asset_spec``
    customize each step's asset spec and op (see
    :mod:`~dreamer_dagster.translator`), and ``io_manager_key`` / ``job_name``
    let two pipelines with two output folders live in one code location.
    """

    _active: ClassVar[list[Pipeline]] = []

    def __init__(
        self,
        output_folder: Any = "./output",
        group_name: str | None = None,
        *,
        storage_options: dict[str, Any] | None = None,
        translator: DreamerTranslator | None = None,
        asset_spec: Callable[[Step, dg.AssetSpec], dg.AssetSpec] | None = None,
        io_manager_key: str = IO_MANAGER_KEY,
        job_name: str | None = None,
        **settings: Any,
    ):
        from .definitions import make_translator, output_folder_config

        self.output_folder, self.storage_options = output_folder_config(output_folder, storage_options)
        self.group_name = group_name
        try:
            self.translator = make_translator(translator, asset_spec)
            self.settings = check_settings({**settings, "group_name": group_name})
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
        self.steps: list[Step] = []
        self._by_key: dict[str, Step] = {}

    def __enter__(self) -> Pipeline:
        Pipeline._active.append(self)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        Pipeline._active.remove(self)

    @classmethod
    def register(cls, step: Step) -> None:
        """Called by every step when it is declared."""
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

    def definitions(self, **kwargs: Any) -> dg.Definitions:
        """``dreamer_definitions`` for every step declared in the block (with this pipeline's
        translator, IO manager key and job name); kwargs pass through (``schedule=``,
        ``resources=``, ``executor=``...)."""
        from .definitions import dreamer_definitions

        kwargs.setdefault("translator", self.translator)
        kwargs.setdefault("io_manager_key", self.io_manager_key)
        if self.job_name is not None:
            kwargs.setdefault("job_name", self.job_name)
        if self.storage_options:
            kwargs.setdefault("storage_options", self.storage_options)
        return dreamer_definitions(self.steps, output_folder=self.output_folder, **kwargs)
