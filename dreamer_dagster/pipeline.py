"""``Pipeline``: the block that replaces DataDreamer's ``with DataDreamer(folder):``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import dagster as dg

    from .steps.step import Step

__all__ = ["Pipeline"]


class Pipeline:
    """Collects every step declared inside ``with Pipeline(folder) as pipeline:``.

    Nothing runs in the block; ``pipeline.definitions()`` returns the
    ``dg.Definitions`` for the collected steps. Two steps with one name (one
    asset key) in one block are an error, raised when the second is declared.
    """

    _active: ClassVar[list[Pipeline]] = []

    def __init__(self, output_folder: str = "./output", group_name: str | None = None):
        self.output_folder = output_folder
        self.group_name = group_name
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
            if pipeline.group_name:
                step.group_name = pipeline.group_name
            pipeline._by_key[step.key] = step
            pipeline.steps.append(step)

    def definitions(self, **kwargs: Any) -> dg.Definitions:
        """``dreamer_definitions`` for every step declared in the block."""
        from .definitions import dreamer_definitions

        return dreamer_definitions(self.steps, output_folder=self.output_folder, **kwargs)
