"""What a step would cost before it runs, estimated offline, and the budget check before it sends.

:func:`estimate_step` runs the step's own prompt-building code against the
finished outputs of its upstream steps, with its LLMs in estimate-only mode
(:class:`~dreamer_dagster.call_scope.CallScope` ``estimating``): every prompt
is looked up in the model cache; those it misses are counted, not sent, with
their prompt tokens as the backend counts them and at most ``max_new_tokens``
completion tokens per answer (256 assumed where ``max_new_tokens`` is not
set). Prices come from the model's table (:mod:`~dreamer_dagster.llms.pricing`);
where a price is unknown the cost is None, never a guess, and the note says
why. Nothing is written: no cache file, no step folder.

:func:`check_budget` is what the asset body runs before a step with
``budget_usd`` sends anything.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from .call_scope import CallScope
from .errors import BudgetExceededError
from .output_folder import OutputFolder
from .step_like import StepLike

__all__ = [
    "EstimableStep",
    "EstimateUnavailable",
    "RunContextLike",
    "StepEstimate",
    "budget_stats",
    "check_budget",
    "estimate_step",
]


class EstimateUnavailable(Exception):
    """Raised while estimating (``StepRunContext.model``) by a model whose calls cannot be
    estimated: the step gets no estimate, with the reason as its note."""


class RunContextLike(Protocol):
    """What the estimate and the budget read of a step's run context
    (:class:`~dreamer_dagster.steps.run_context.StepRunContext`)."""

    output_folder: OutputFolder
    upstream: Mapping[str, Any]
    stats: Counter
    scope: CallScope

    def close(self) -> None: ...


class EstimableStep(StepLike, Protocol):
    """A step as :func:`estimate_step` runs it (``steps/step_services.py`` implements it)."""

    #: the class runs its own ``execute`` (a SuperStep), not only ``run()``
    overrides_execute: bool

    def estimating_context(self, output_folder: OutputFolder, upstream: Mapping[str, Any]) -> Any:
        """A :class:`RunContextLike` in estimate-only mode: models count, never send."""
        ...

    def run(self, context: Any) -> Any: ...

    def models(self) -> list[Any]:
        """The models among the step's args, each once."""
        ...


@dataclass
class StepEstimate:
    """A step's estimated model calls and cost (None where not known; ``note`` says why).

    ``prompts``: prompts the step would send through its LLMs; ``uncached_prompts``:
    those the model cache has no answer for, the calls a run would pay for;
    ``prompt_tokens`` / ``completion_tokens``: of the uncached calls (completion at
    most); ``estimated_usd``: their cost at the model's price.
    """

    step: str
    prompts: int | None
    uncached_prompts: int | None
    prompt_tokens: int | None
    completion_tokens: int | None
    estimated_usd: float | None
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def estimate_step(
    step: EstimableStep, output_folder: str | Path | OutputFolder, upstream: Mapping[str, Any] | None = None
) -> StepEstimate:
    """Estimate ``step``'s uncached calls and cost without calling a model.

    ``upstream`` maps upstream step keys to their loaded outputs (as the asset
    body has them); without it they are read from ``output_folder``, and a step
    whose upstream is not materialized (with its declared fingerprint) gets no
    estimate, with a note naming that step.
    """
    folder = output_folder if isinstance(output_folder, OutputFolder) else OutputFolder(output_folder)

    def unknown(note: str) -> StepEstimate:
        return StepEstimate(step.name, None, None, None, None, None, note)

    if not step.force and folder.step(step.folder).holds_finished(step.fingerprint):
        return StepEstimate(step.name, 0, 0, 0, 0, 0.0, "its finished output is reused")
    models = step.models()
    if type(step).KIND == "trainer":
        return unknown(f"{type(step).__name__} is a trainer: training cost is not estimated")
    if not models:
        return StepEstimate(step.name, 0, 0, 0, 0, 0.0)
    if step.overrides_execute:  # a SuperStep: its inner steps are its calls
        return unknown(f"{type(step).__name__} runs other steps: its cost is not estimated")
    if upstream is None:
        loaded = _load_upstream(step, folder)
        if isinstance(loaded, str):
            return unknown(loaded)
        upstream = loaded
    context = step.estimating_context(folder, upstream)
    try:
        _consume(step.run(context))
    except EstimateUnavailable as error:
        return unknown(f"not estimated: {error}")
    except Exception as error:  # noqa: BLE001 - an estimate reports, it never fails a run
        return unknown(f"could not estimate: {type(error).__name__}: {error}")
    finally:
        context.close()
    return _estimate_from(step, context)


def check_budget(step: EstimableStep, context: RunContextLike) -> StepEstimate | None:
    """Before ``step`` sends anything: raise :class:`BudgetExceededError` if its estimate is
    over ``step.budget_usd``; log (and return) the estimate. None without a budget."""
    budget = step.budget_usd
    if budget is None:
        return None
    estimate = estimate_step(step, context.output_folder, context.upstream)
    if estimate.estimated_usd is None:
        context.scope.warning(
            f"Step {step.name!r}: budget_usd={budget} cannot be checked before the run: "
            f"{estimate.note or 'the cost is unknown'}."
        )
        return estimate
    context.scope.info(
        f"Step {step.name!r}: estimated ${estimate.estimated_usd:.4f} for {estimate.uncached_prompts} uncached "
        f"prompts (budget_usd={budget})."
    )
    if estimate.estimated_usd > budget:
        raise BudgetExceededError(
            f"Step {step.name!r}: the estimated cost ${estimate.estimated_usd:.4f} of its "
            f"{estimate.uncached_prompts} uncached prompts ({estimate.prompt_tokens} prompt tokens, "
            f"at most {estimate.completion_tokens} completion tokens) is over its budget_usd={budget}; "
            "nothing was sent. Fix: raise budget_usd, lower max_new_tokens or the number of prompts."
        )
    return estimate


def budget_stats(step: StepLike, context: RunContextLike) -> None:
    """After a run with a budget: ``budget_usd`` and, where a model had no price,
    ``budget_note`` in the step's stats (so in its ``dreamer/...`` metadata)."""
    if step.budget_usd is None:
        return
    context.stats["budget_usd"] = step.budget_usd
    if context.scope.unpriced:
        context.stats["budget_note"] = f"not checked for {', '.join(context.scope.unpriced)}: no known price"


def _estimate_from(step: StepLike, context: RunContextLike) -> StepEstimate:
    stats, scope = context.stats, context.scope
    notes = list(scope.notes)
    usd: float | None = round(float(stats.get("estimated_cost_usd", 0.0)), 6)
    if scope.unpriced:
        usd = None
        notes.insert(0, f"no price is known for {', '.join(scope.unpriced)}")
    return StepEstimate(
        step.name,
        prompts=int(stats.get("cache_hits", 0) + stats.get("model_calls", 0)),
        uncached_prompts=int(stats.get("model_calls", 0)),
        prompt_tokens=int(stats.get("prompt_tokens", 0)),
        completion_tokens=int(stats.get("completion_tokens", 0)),
        estimated_usd=usd,
        note="; ".join(notes) or None,
    )


def _load_upstream(step: StepLike, folder: OutputFolder) -> dict[str, Any] | str:
    """The finished outputs of ``step``'s upstream steps, or a note naming one that is not."""
    loaded: dict[str, Any] = {}
    for parent in step.upstream():
        parent_folder = folder.step(parent.folder)
        record = parent_folder.step_json()
        if record is None or record.get("fingerprint") != parent.fingerprint:
            return f"upstream step {parent.name!r} is not materialized yet, so its prompts are not known"
        loaded[parent.key] = (  # each checked against its step.json (see integrity.py)
            str(parent_folder.local_model_path(record))
            if record.get("model")
            else parent_folder.load_dataset(record)
        )
    return loaded


def _consume(result: Any) -> None:
    if isinstance(result, Iterator) or (
        hasattr(result, "__iter__") and not isinstance(result, Mapping) and type(result).__name__ != "Dataset"
    ):
        for _ in result:
            pass
