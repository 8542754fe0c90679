"""The base of every model object (LLMs, embedders, retrievers, task models).

A model is declared in a pipeline file and passed to steps as an arg; nothing
is loaded then. It has:

- an identity (``identity()``): what changes its outputs — class, model name,
  revision, dtype, base_url, adapter, system prompt, chat template... never a
  secret. It is the model's part of every step fingerprint and of every cache
  key, and names its SQLite cache file;
- dependencies: the trainer steps it stands on (``HFTransformers(trainer)``),
  which add the dependency edge to any step that uses it;
- a run-time copy (``for_run``), made by the step that uses it, holding the
  cache folder, the counters and the step run's
  :class:`~dreamer_dagster.call_scope.CallScope` (log, budget, estimate-only
  mode); a model never knows which step it serves;
- a Dagster concurrency pool (``default_pool()``: its API endpoint or local
  device; ``with_pool(name)`` overrides it) and kinds (``KINDS``: the icons a
  step using it shows in the web UI). Neither is part of the identity.
"""

from __future__ import annotations

import copy
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .deferred import resolve, upstream_steps
from .fingerprint import fingerprint
from .model_info import ModelInfo
from .pools import check_pool, device_pool, endpoint_pool, pool_name

if TYPE_CHECKING:
    from .call_scope import CallScope

__all__ = ["ClientSettings", "Model", "dtype_name", "is_api_model"]


def dtype_name(dtype: Any) -> str | None:
    """``torch.float16`` / ``"torch.float16"`` / ``"float16"`` -> ``"float16"``, without
    importing torch: how a dtype enters identities, fingerprints and step.json."""
    if dtype is None:
        return None
    return str(dtype).removeprefix("torch.")


class Model(ModelInfo):
    """Base of models. Subclasses implement ``identity()`` and their own work; DataDreamer's
    model properties (``model_card``, ``license``, ``citation``...) and the data card entries
    built from them come from :class:`~dreamer_dagster.model_info.ModelInfo`."""

    #: Run-time state, set on the copy ``for_run`` returns.
    cache_folder: Path | None = None
    stats: Counter | None = None
    #: DataDreamer's ``cache_folder_path``: where this model's SQLite cache lives instead of
    #: ``<output>/.cache`` (where it runs, not what it answers: never in the identity).
    cache_folder_path: str | None = None
    #: Set by the step that runs the model: a folder for state that must survive a killed
    #: run (``<step>/_model_state``), and the step's logger. None outside a step.
    state_folder: Path | None = None
    log: Any = None
    #: Dagster kinds of the steps that use this model (``openai``, ``huggingface``...).
    KINDS: ClassVar[tuple[str, ...]] = ()
    #: The Dagster pool set by ``with_pool``; None: ``default_pool()``.
    pool: str | None = None
    #: The step run's log, budget and estimate-only mode (None outside a step).
    scope: CallScope | None = None

    def identity(self) -> dict:
        """What makes this model's outputs what they are (never a secret)."""
        raise NotImplementedError(f"{type(self).__name__}.identity")

    def fingerprint_identity(self) -> dict:
        # A resolved run-time copy keeps the identity it was declared with: a
        # trainer's ``_model`` path says nothing of which training made it, the
        # trainer's fingerprint does (and names the cache).
        declared = self.__dict__.get("_declared_identity")
        if declared is not None:
            return declared
        return {"model": type(self).__name__, **self.identity()}

    @property
    def model_fingerprint(self) -> str:
        return fingerprint(self.fingerprint_identity())

    def dependencies(self) -> list:
        """Steps (trainers, column references) this model stands on."""
        return upstream_steps(vars(self))

    def resolve_deferred(self, context: Any) -> Model:
        """A copy with every deferred attribute (a trainer, an adapter path) resolved."""
        resolved = copy.copy(self)
        resolved._declared_identity = self.fingerprint_identity()
        for name, value in vars(self).items():
            if not name.startswith("_"):
                setattr(resolved, name, resolve(value, context))
        return resolved

    def for_run(self, cache_folder: Path | None, stats: Counter | None) -> Model:
        """A copy bound to a run: where its cache lives and where to count calls (the step's
        run context then sets ``scope``)."""
        bound = copy.copy(self)
        if self.cache_folder_path is not None and cache_folder is not None:
            cache_folder = Path(self.cache_folder_path).expanduser()
        bound.cache_folder = cache_folder
        bound.stats = stats if stats is not None else Counter()
        return bound

    def cache_name(self) -> str:
        """The SQLite cache file's stem: the model class, name and identity hash."""
        import re

        declared = self.fingerprint_identity().get("model_name")
        name = str(getattr(declared, "name", declared) or "")  # a trainer step: its name
        name = re.sub(r"[^A-Za-z0-9._-]+", "-", name.split("/")[-1])[:60].strip("-")
        return (
            f"{type(self).__name__}-{name}-{self.model_fingerprint}"
            if name
            else (f"{type(self).__name__}-{self.model_fingerprint}")
        )

    # -- Dagster settings -----------------------------------------------------------

    def with_pool(self, pool: str) -> Model:
        """Run the steps that use this model in Dagster concurrency pool ``pool``
        instead of :meth:`default_pool`'s; returns the model (chainable)."""
        try:
            self.pool = check_pool(pool)
        except ValueError as error:
            raise ValueError(f"{type(self).__name__}.with_pool: {error}") from None
        return self

    def default_pool(self) -> str | None:
        """The pool of the steps that use this model: one per API endpoint for a model
        with a ``base_url`` (``anthropic_api``, ``anthropic_127_0_0_1_8000``), else one per
        local device (``local_cpu``, ``local_cuda_0``, ``local`` for the default device)."""
        if "base_url" in vars(self):
            provider = getattr(self, "PROVIDER", None) or type(self).__name__
            return endpoint_pool(provider, vars(self)["base_url"], "api")
        return device_pool(getattr(self, "device", None))

    def dagster_kinds(self) -> tuple[str, ...]:
        """The kinds (UI icons) of the steps that use this model: ``KINDS``, else its provider's
        name (``openai``, ``anthropic``)."""
        if self.KINDS:
            return self.KINDS
        provider = getattr(self, "PROVIDER", None)
        return (pool_name(provider),) if provider else ()

    def dagster_pool(self) -> str | None:
        """The pool this model's steps run in: ``with_pool``'s, else :meth:`default_pool`'s."""
        return self.pool or self.default_pool()

    def unload_model(self) -> None:
        """Free loaded weights; harmless when nothing is loaded (or while declaring)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.identity()})"


def is_api_model(model: Any) -> bool:
    """Whether ``model`` calls an API with a key (OpenAI, Anthropic, the providers...)."""
    return callable(getattr(model, "_resolve_api_key", None))


class ClientSettings:
    """Mixin of models that call an API with a key: they take the key, organization and
    timeout from a Dagster resource (``OpenAIResource``) at run time. None of these is
    part of the identity."""

    _api_key: str | None = None
    organization: str | None = None
    timeout: float | None = None

    def use_client_settings(
        self, api_key: str | None = None, organization: str | None = None, timeout: float | None = None
    ) -> None:
        """Set on the run-time copy of the model; values left None keep the model's own."""
        if api_key:
            self._api_key = api_key
        if organization:
            self.organization = organization
        if timeout is not None:
            self.timeout = timeout
