"""The ``translation:`` block of a ``DreamerPipelineComponent`` and the translator it makes.

::

    translation:
      group_name: tweets
      key_prefix: tweets                 # a string or a list, before every step's key
      owners: [team:ml]
      tags: {team: ml}                   # merged into the step's tags
      kinds: [synthetic]                 # added to the step's kinds (its model's icon stays)
      automation_condition: "{{ dg.AutomationCondition.eager() }}"
      pool: smollm2                      # the op's Dagster concurrency pool
      op_tags: {dagster/priority: "1"}
      steps:                             # per-step overrides, by step name (or asset key)
        Tweets from Abstracts: {pool: llm, owners: [me@example.com]}

Values are checked as a step's own Dagster settings are (``steps/settings.py``) when the
YAML is read; a per-step name that names no step of the pipeline fails when the
component builds its definitions. The fingerprint, ``code_version`` and folder of a step
never change with the translation.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

import dagster as dg

from ..steps.settings import SettingError, check_settings
from ..translator import DreamerTranslator, StepOpSettings

if TYPE_CHECKING:
    from ..steps.step import Step

__all__ = ["ComponentTranslator", "PipelineTranslation", "StepTranslation"]

#: The YAML keys that map onto step settings (checked by ``check_settings``).
_SETTING_FIELDS = ("group_name", "owners", "tags", "automation_condition", "pool", "op_tags")


@dataclass
class StepTranslation(dg.Resolvable):
    """Dagster attributes for one step (or, in ``translation:``, for every step)."""

    group_name: str | None = None
    owners: Sequence[str] | None = None
    tags: Mapping[str, str] | None = None
    kinds: Sequence[str] | None = None
    automation_condition: Annotated[
        dg.AutomationCondition | None,
        dg.Resolver.default(
            model_field_type=str | None,
            description="A template such as '{{ dg.AutomationCondition.eager() }}'.",
        ),
    ] = None
    pool: str | None = None
    op_tags: Mapping[str, Any] | None = None
    description: str | None = None

    def check(self, where: str) -> None:
        """Each value checked as a step's own setting; ``ValueError`` naming ``where``."""
        values = {name: getattr(self, name) for name in _SETTING_FIELDS}
        if values["owners"] is not None:
            values["owners"] = list(values["owners"])
        try:
            check_settings(values)
        except (SettingError, TypeError) as error:
            name = getattr(error, "argument", "")
            fix = (
                ' Fix: write it as a template, e.g. "{{ dg.AutomationCondition.eager() }}".'
                if name == "automation_condition"
                else ""
            )
            raise ValueError(f"DreamerPipelineComponent, {where}.{name}: {error}{fix}") from None
        if self.kinds is not None and (
            isinstance(self.kinds, str) or not all(isinstance(kind, str) for kind in self.kinds)
        ):
            raise ValueError(
                f"DreamerPipelineComponent, {where}.kinds: must be a list of strings, got {self.kinds!r}."
            )

    def apply(self, spec: dg.AssetSpec) -> dg.AssetSpec:
        """``spec`` with these attributes: tags and kinds merge, the others replace."""
        replaced = {
            name: value
            for name, value in {
                "group_name": self.group_name,
                "owners": list(self.owners) if self.owners is not None else None,
                "automation_condition": self.automation_condition,
                "description": self.description,
            }.items()
            if value is not None
        }
        if replaced:
            spec = spec.replace_attributes(**replaced)
        merged: dict[str, Any] = {}
        if self.tags:
            merged["tags"] = dict(self.tags)
        if self.kinds:
            merged["kinds"] = set(self.kinds)
        return spec.merge_attributes(**merged) if merged else spec

    def apply_op(self, settings: StepOpSettings) -> StepOpSettings:
        """``settings`` with this pool and op tags (merged)."""
        changes: dict[str, Any] = {}
        if self.pool is not None:
            changes["pool"] = self.pool
        if self.op_tags:
            changes["op_tags"] = {**settings.op_tags, **self.op_tags}
        return settings.replace(**changes) if changes else settings


@dataclass
class PipelineTranslation(StepTranslation):
    """``translation:``: attributes for every step, a key prefix, and per-step overrides."""

    key_prefix: str | Sequence[str] | None = None
    steps: dict[str, StepTranslation] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.check("translation")
        for name, override in self.steps.items():
            override.check(f"translation.steps[{name!r}]")

    def prefix(self) -> list[str]:
        """The key prefix as a list of parts."""
        if self.key_prefix is None:
            return []
        return [self.key_prefix] if isinstance(self.key_prefix, str) else list(self.key_prefix)

    def override_for(self, step: "Step") -> StepTranslation | None:
        """The per-step override naming ``step`` by its name or its asset key."""
        return self.steps.get(step.name) or self.steps.get(step.key)

    def check_step_names(self, steps: Sequence["Step"], where: str) -> None:
        """Every per-step override names a step; ``ValueError`` listing the names otherwise."""
        known = {name for step in steps for name in (step.name, step.key)}
        unknown = [name for name in self.steps if name not in known]
        if unknown:
            names = ", ".join(repr(step.name) for step in steps)
            raise ValueError(
                f"DreamerPipelineComponent {where}, translation.steps: {unknown[0]!r} names no step of "
                f"the pipeline. Fix: use a step's name (or asset key); the steps are {names}."
            )


@dataclass(frozen=True)
class ComponentTranslator(DreamerTranslator):
    """The pipeline's own translator, then the component's ``translation:`` block (every
    step, then the step's own entry)."""

    base: DreamerTranslator = field(default_factory=DreamerTranslator)
    translation: PipelineTranslation | None = None

    def get_asset_spec(self, step: "Step") -> dg.AssetSpec:
        spec = self.base.get_asset_spec(step)
        translation = self.translation
        if translation is None:
            return spec
        for layer in (translation, translation.override_for(step)):
            if layer is not None:
                spec = layer.apply(spec)
        prefix = translation.prefix()
        return spec.replace_attributes(key=spec.key.with_prefix(prefix)) if prefix else spec

    def get_op_settings(self, step: "Step") -> StepOpSettings:
        settings = self.base.get_op_settings(step)
        translation = self.translation
        if translation is None:
            return settings
        for layer in (translation, translation.override_for(step)):
            if layer is not None:
                settings = layer.apply_op(settings)
        return settings
