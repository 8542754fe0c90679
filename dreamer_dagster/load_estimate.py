"""The pre-run estimate on the asset (``dreamer/estimate`` definition metadata), computed
when the code location loads, within the load-time budget.

Only what is cheap offline is estimated at load time: a step that calls an API
model and whose prompts need no upstream data (``DataFromPrompt``,
``DataFromAttributedPrompt``: at most :data:`MAX_LOAD_PROMPTS` prompts), looked up
in the model cache as :func:`~dreamer_dagster.cost.estimate_step` does, and any
step whose finished output would be reused ($0). Every other model step gets the
metadata with a note saying why it is not estimated here: reading upstream data
would import ``datasets`` (seconds) at every load, a remote output folder would
mean network calls, a local model has no API price. ``dreamer materialize --stale
--dry-run`` estimates those with their upstream data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import dagster as dg

from .model import is_api_model

if TYPE_CHECKING:
    from .steps.step import Step

__all__ = ["MAX_LOAD_PROMPTS", "load_time_estimate", "spec_estimate_metadata"]

#: The most prompts a step may have for its estimate to be computed at load time.
MAX_LOAD_PROMPTS = 1000
DRY_RUN = "run `dreamer materialize -f FILE --stale --dry-run` for the estimate"


def load_time_estimate(step: Step, output_folder: Any) -> dict[str, Any] | None:
    """The step's estimate as a dict (``cost.StepEstimate`` fields; ``note`` says what is not
    known), or None for a step that calls no LLM."""
    from .filesystem import is_remote
    from .llms.llm import LLM
    from .steps.step import Step

    llms = [model for model in step.models() if isinstance(model, LLM)]
    if not llms or type(step).execute is not Step.execute:  # no LLM, or a trainer
        return None

    def skipped(note: str) -> dict[str, Any]:
        return {
            "step": step.name,
            "prompts": None,
            "uncached_prompts": None,
            "prompt_tokens": None,
            "completion_tokens": None,
            "estimated_usd": None,
            "note": f"not estimated at load time: {note}",
        }

    if is_remote(output_folder):
        return skipped(f"the output folder is remote; {DRY_RUN}")
    from .cost import estimate_step
    from .output_folder import OutputFolder

    folder = OutputFolder(output_folder)
    if not step.force and folder.step(step.folder).holds_finished(step.fingerprint):
        return estimate_step(step, folder).as_dict()  # reused: $0, read from step.json
    local = [model for model in llms if not is_api_model(model)]
    if local:
        return skipped(f"{local[0]!r} runs locally (no API cost)")
    if step.upstream():
        parents = ", ".join(repr(parent.name) for parent in step.upstream())
        return skipped(f"its prompts come from the data of {parents}; {DRY_RUN}")
    prompts = step.args.get("n")
    if not isinstance(prompts, int) or prompts > MAX_LOAD_PROMPTS:
        return skipped(f"more than {MAX_LOAD_PROMPTS} prompts; {DRY_RUN}")
    return estimate_step(step, folder, upstream={}).as_dict()


def spec_estimate_metadata(step: Step, output_folder: Any) -> dict[str, Any]:
    """``{dreamer/estimate: JSON}`` for the step's asset spec (empty for a step without LLM)."""
    from .metadata import ESTIMATE

    try:
        estimate = load_time_estimate(step, output_folder)
    except Exception as error:  # noqa: BLE001 - an estimate never fails loading the definitions
        estimate = {"step": step.name, "note": f"not estimated: {type(error).__name__}: {error}"}
    return {} if estimate is None else {ESTIMATE: dg.MetadataValue.json(estimate)}
