"""Exports and publishing called inside a ``Pipeline`` block: export steps.

``tweets.export_to_json("tweets.json")`` or ``tweets.publish_to_hf_hub("me/tweets")``
(and a trainer's ``publish_to_hf_hub`` / ``export_to_disk``) inside the block declares
an :class:`ExportStep`: an asset of kind ``export`` downstream of the step, named
``"<step> (<method>)"``, whose fingerprint chains the step's (so it is unsynced when
the step changes) and the call's arguments. Materializing it runs the export on the
step's finished output and records what it wrote (``<output>/<export step>/``).

In a file Dagster loads, the call returns the export step; in a running script the
export step materializes at once and the call returns what DataDreamer returns: the
path (or a dict of per-split paths), the saved ``Dataset`` / ``DatasetDict``, the
Hub URL, the exported model folder.

The Hub token: ``token=`` stays on the object (never in the args, the fingerprint,
``step.json`` or the metadata); without it an ``HFTokenResource``'s token, else
``HF_TOKEN``, is read when the export runs.
A file export whose files were removed runs again; a publish runs once per
fingerprint (``export.force = True``, or removing its folder, runs it again).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from ..errors import OutputNotAvailableError
from .step import REQUIRED, Step

__all__ = ["ExportStep", "declare_export"]

#: Exports that write files, and that run again when their files are gone.
FILE_EXPORTS = frozenset({"export_to_json", "export_to_csv", "export_to_hf_dataset", "export_to_disk"})
#: Exports that return rows to the script: no asset can hold those.
ROW_EXPORTS = frozenset({"export_to_dict", "export_to_list"})


def declare_export(source: Step, method: Callable, args: tuple, kwargs: dict) -> Any:
    """The export call ``method(source, *args, **kwargs)`` made inside ``source``'s block."""
    from ..script_mode import not_available_message

    pipeline = source.pipeline
    name = method.__name__
    call = _call_arguments(source, method, args, kwargs)
    if name in ROW_EXPORTS:
        if not pipeline.script_mode:
            raise OutputNotAvailableError(
                not_available_message(source, f"{name}() returns rows to the script, so it")
            )
        pipeline.session.ensure([source])
        return method(source, **call)
    if call.get("output_folder") is not None:
        raise source.error(
            f"output_folder= is for exports made after the block; inside it, {name}() exports from "
            "the pipeline's output folder. Fix: drop output_folder=.",
            "output_folder",
        )
    call.pop("output_folder", None)
    token = call.pop("token", None)
    export = ExportStep(source, name, call, token=token)
    if pipeline.script_mode:
        pipeline.session.ensure([export])
        return export.result()
    return export


def _call_arguments(source: Step, method: Callable, args: tuple, kwargs: dict) -> dict:
    """The call's arguments by name, with ``**kwargs`` kept under ``"kwargs"``."""
    signature = inspect.signature(method)
    try:
        bound = signature.bind(source, *args, **kwargs)
    except TypeError as error:
        raise TypeError(f"Step {source.name!r}: {method.__name__}(): {error}") from None
    call = dict(bound.arguments)
    call.pop("self", None)
    for parameter in signature.parameters.values():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD and parameter.name in call:
            call["kwargs"] = call.pop(parameter.name)
    return call


class ExportStep(Step):
    """An export or publish of a finished step, as an asset of kind ``export``: runs the
    export on the source step's output and writes one row (the method and what it
    returned, as JSON) to its own ``_dataset``."""

    ARGS: ClassVar = {"method": REQUIRED, "call": {}}
    OUTPUTS: ClassVar = ("export", "result")
    KIND: ClassVar[str] = "export"

    def __init__(
        self, source: Step, method: str, call: dict, token: str | None = None, name: str | None = None
    ):
        from ..pipeline import Pipeline

        self._source = source
        self._token = token
        name = name or Pipeline.derived_name(source.name.split(" / ")[-1], method)
        super().__init__(name, args={"method": method, "call": call})

    @property
    def source(self) -> Step:
        return self._source

    def source_steps(self) -> list[Step]:
        return [self._source]

    def models(self) -> list[Any]:
        return []

    def dagster_kinds(self) -> set[str]:
        kinds = {self.KIND}
        if self.args["method"] == "publish_to_hf_hub":
            kinds.add("huggingface")
        return kinds

    @property
    def force(self) -> bool:
        """Run again though finished: when asked to, or when a file export's files are gone."""
        if self.__dict__.get("_force") or not getattr(self, "_declared", False):
            return bool(self.__dict__.get("_force"))
        if self.args["method"] not in FILE_EXPORTS:
            return False
        try:
            written = self._recorded_result()
        except Exception:
            return False  # nothing finished to reuse: it runs anyway
        paths = written.values() if isinstance(written, dict) else [written]
        return not all(Path(path).exists() for path in paths)

    @force.setter
    def force(self, value: bool) -> None:
        self.__dict__["_force"] = bool(value)

    def run(self, context: Any) -> list[dict]:
        method = self.args["method"]
        export = getattr(type(self._source), method)
        export = getattr(export, "__wrapped__", export)  # the export itself, not the block's dispatch
        call = dict(self.args["call"])
        extra = call.pop("kwargs", None) or {}
        token = self._token
        if token is None and method == "publish_to_hf_hub":
            from ..resources import hf_token_of

            token = hf_token_of(context.resources)  # an HFTokenResource's, read at run time
        if token is not None:
            call["token"] = token
        result = export(self._source, **call, **extra, output_folder=context.output_folder.root)
        if method == "export_to_hf_dataset":
            result = str(call["path"])  # the Dataset it saved is loaded back from there
        recorded = _jsonable(result)
        context.info(f"{self._source.name!r}: {method} done: {recorded}")
        return [{"export": method, "result": json.dumps(recorded)}]

    def _recorded_result(self) -> Any:
        dataset, _ = self.finished_output()
        return json.loads(dataset[0]["result"])

    def result(self) -> Any:
        """What the export call returns (DataDreamer's value), from the finished export."""
        value = self._recorded_result()
        method = self.args["method"]
        if method == "export_to_hf_dataset":
            import datasets

            return datasets.load_from_disk(value)
        if method == "export_to_disk":
            return Path(value)
        return value


def _jsonable(result: Any) -> Any:
    if isinstance(result, Path):
        return str(result)
    if isinstance(result, dict):
        return {key: str(value) for key, value in result.items()}
    return result if isinstance(result, (str, int, float, type(None))) else str(result)
