"""Per-step Dagster settings: how a step becomes an asset spec and an op.

``DreamerTranslator`` maps one step to its ``dg.AssetSpec`` (key, description,
group, owners, tags, kinds, automation condition, metadata) with
``get_asset_spec(step)``, and to its op's settings (pool, retry policy, op
tags) with ``get_op_settings(step)``: a Dagster asset spec has no pool, retry
policy or op tags, which belong to the op that materializes it. Customize it
as dagster-dbt's and dagster-sling's translators are::

    class MyTranslator(DreamerTranslator):
        def get_asset_spec(self, step):
            spec = super().get_asset_spec(step)
            return spec.replace_attributes(group_name="generation").merge_attributes(tags={"team": "ml"})

        def get_op_settings(self, step):
            settings = super().get_op_settings(step)
            if type(step).KIND == "trainer":
                return settings.replace(op_tags={"dagster-k8s/config": {...}})
            return settings

    with Pipeline("./output", translator=MyTranslator(key_prefix="tweets")) as pipeline: ...

or pass ``Pipeline(..., asset_spec=fn)`` with ``fn(step, spec) -> spec``.
Whatever the translator returns, :func:`build_step_spec` then sets the
``code_version`` (the fingerprint), ``dreamer/fingerprint``, ``dreamer/folder``
and the dependencies on the upstream steps' assets, so no override can break
reuse, staleness or the loading of inputs.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import dagster as dg

from . import metadata as keys
from .column_schema import spec_column_metadata

if TYPE_CHECKING:
    from .steps.step import Step

__all__ = [
    "DEFAULT_RETRY_POLICY",
    "GROUP_NAME",
    "DreamerTranslator",
    "StepOpSettings",
    "build_step_spec",
    "build_step_specs",
    "retries_on_fail",
]

GROUP_NAME = "dreamer"

#: Steps that call a model retry a failure (a burst of 5xx, a dropped connection) after
#: 10 s, 20 s, 40 s (give or take a random half): the retry pays only for the calls the
#: model cache does not hold. Errors a retry cannot fix are never retried, and a step whose
#: model has ``retry_on_fail=False`` gets no default policy (see :func:`retries_on_fail`).
DEFAULT_RETRY_POLICY = dg.RetryPolicy(
    max_retries=3, delay=10, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


@dataclass(frozen=True)
class StepOpSettings:
    """How a step's op runs: its Dagster concurrency pool, retry policy, op tags, and the
    Dagster Pipes client that runs it out of the orchestrator's process (None: in process;
    see :mod:`~dreamer_dagster.pipes`)."""

    pool: str | None = None
    retry_policy: dg.RetryPolicy | None = None
    op_tags: Mapping[str, Any] = field(default_factory=dict)
    pipes_client: Any = None

    def replace(self, **changes: Any) -> StepOpSettings:
        """A copy with ``changes`` (``pool=``, ``retry_policy=``, ``op_tags=``, ``pipes_client=``)."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class DreamerTranslator:
    """Translates a step into its Dagster asset spec and op settings.

    ``key_prefix`` (a string or a list) goes before every step's key; the step's
    folder keeps its plain name. Subclass it and override :meth:`get_asset_spec`
    or :meth:`get_op_settings`, starting from ``super()``'s result.
    """

    key_prefix: str | Sequence[str] = ()

    def get_asset_spec(self, step: Step) -> dg.AssetSpec:
        """The step's asset spec: key, description, group, owners, tags, kinds,
        automation condition and definition metadata (type, name, args, code reference)."""
        prefix = [self.key_prefix] if isinstance(self.key_prefix, str) else list(self.key_prefix)
        return dg.AssetSpec(
            key=dg.AssetKey([*prefix, step.key]),
            description=step_description(step),
            group_name=step.group_name or GROUP_NAME,
            owners=step.owners,
            tags=step.tags,
            kinds=step.dagster_kinds(),
            automation_condition=step.automation_condition,
            metadata=definition_metadata(step),
        )

    def get_op_settings(self, step: Step) -> StepOpSettings:
        """The step's pool (its own ``pool=``, else its model's), retry policy (its own,
        else :data:`DEFAULT_RETRY_POLICY` for steps that call a model) and op tags."""
        retry_policy = step.retry_policy
        if retry_policy is None:
            models = step.models()
            # retry_on_fail=False (DataDreamer's "no retry"): the step is not run again either.
            retry_policy = DEFAULT_RETRY_POLICY if models and all(map(retries_on_fail, models)) else None
        return StepOpSettings(
            pool=step.pool or step.default_pool(),
            retry_policy=retry_policy or None,
            op_tags=dict(step.op_tags or {}),
            pipes_client=step.pipes_client,
        )


def retries_on_fail(model: Any, _seen: set[int] | None = None) -> bool:
    """False when ``model`` or a model it holds (a ``Parallel*`` member, a retriever's
    embedder) was given ``retry_on_fail=False``: its step then gets no default retry policy."""
    from .model import Model

    seen = _seen if _seen is not None else set()
    if id(model) in seen:
        return True
    seen.add(id(model))
    if getattr(model, "retry_on_fail", True) is False:
        return False
    for value in vars(model).values():
        members = value if isinstance(value, (list, tuple)) else [value]
        for member in members:
            if isinstance(member, Model) and not retries_on_fail(member, seen):
                return False
    return True


@dataclass(frozen=True)
class SpecFunctionTranslator(DreamerTranslator):
    """``Pipeline(..., asset_spec=fn)``: ``fn(step, spec)`` changes the base translator's spec."""

    base: DreamerTranslator = field(default_factory=DreamerTranslator)
    function: Callable[[Step, dg.AssetSpec], dg.AssetSpec] | None = None

    def get_asset_spec(self, step: Step) -> dg.AssetSpec:
        spec = self.base.get_asset_spec(step)
        if self.function is None:
            return spec
        changed = self.function(step, spec)
        if not isinstance(changed, dg.AssetSpec):
            raise TypeError(
                f"asset_spec function returned {changed!r} for step {step.name!r}; it must return a "
                "dg.AssetSpec (e.g. spec.replace_attributes(...))."
            )
        return changed

    def get_op_settings(self, step: Step) -> StepOpSettings:
        return self.base.get_op_settings(step)


def build_step_spec(
    step: Step,
    translator: DreamerTranslator | None = None,
    upstream_keys: Mapping[str, dg.AssetKey] | None = None,
) -> dg.AssetSpec:
    """The step's final asset spec: the translator's, then what reuse and loading rely on
    (``code_version``, ``dreamer/fingerprint``, ``dreamer/folder``, the upstream deps),
    and the column schema and lineage known at declaration (see column_schema.py).

    ``upstream_keys`` maps an upstream step's key to its asset key (the
    translator is asked for any it lacks).
    """
    translator = translator or DreamerTranslator()
    parents = step.upstream()  # first: an undeclared trainer says to call .train()
    spec = translator.get_asset_spec(step)
    if not isinstance(spec, dg.AssetSpec):
        raise TypeError(f"{type(translator).__name__}.get_asset_spec returned {spec!r}, not a dg.AssetSpec.")
    known = upstream_keys or {}
    deps = [known.get(parent.key) or translator.get_asset_spec(parent).key for parent in parents]
    # Column types and lineage known at declaration, unless the translator set its own.
    columns = spec_column_metadata(step, {id(p): key for p, key in zip(parents, deps, strict=True)})
    columns = {key: value for key, value in columns.items() if key not in spec.metadata}
    return spec.replace_attributes(code_version=step.fingerprint, deps=deps).merge_attributes(
        metadata={keys.FINGERPRINT: step.fingerprint, keys.FOLDER: step.folder, **columns}
    )


def build_step_specs(
    steps: Sequence[Step], translator: DreamerTranslator | None = None
) -> list[dg.AssetSpec]:
    """:func:`build_step_spec` for ``steps`` (upstream first), each step's key asked once."""
    upstream_keys: dict[str, dg.AssetKey] = {}
    specs = []
    for step in steps:
        spec = build_step_spec(step, translator, upstream_keys)
        upstream_keys[step.key] = spec.key
        specs.append(spec)
    return specs


# -- the defaults ---------------------------------------------------------------------


def step_description(step: Step) -> str:
    doc = (type(step).__doc__ or "").strip().splitlines()
    return f"{step.name} — {type(step).__name__}" + (f": {doc[0]}" if doc else "")


def definition_metadata(step: Step) -> dict[str, Any]:
    """Step type and name, its args as step.json shows them, where it was declared."""
    metadata: dict[str, Any] = {
        keys.STEP_TYPE: type(step).__name__,
        keys.STEP_NAME: step.name,
        keys.ARGS: dg.MetadataValue.json(json.loads(json.dumps(step.describe_args(), default=repr))),
    }
    if step.declared_at is not None:
        path, line = step.declared_at
        with warnings.catch_warnings():  # Dagster marks code references beta
            warnings.simplefilter("ignore", dg.BetaWarning)
            metadata[keys.CODE_REFERENCES] = dg.CodeReferencesMetadataValue(
                code_references=[dg.LocalFileCodeReference(file_path=path, line_number=line)]
            )
    return metadata
