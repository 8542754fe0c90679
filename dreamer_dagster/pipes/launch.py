"""Running a step out of the orchestrator's process through a Dagster Pipes client.

``pipes_client=`` on a step, a ``Pipeline`` / ``dreamer_definitions`` (the default of its
steps) or from the translator's ``get_op_settings`` takes a Pipes client
(``dg.PipesSubprocessClient()``, ``PipesK8sClient()``...) or a :class:`PipesLaunch`
(a client with the arguments its ``run`` needs: an image, a GPU pod spec). The asset body
keeps what is cheap in the orchestrator (the step folder's lock, reuse / back up /
restore); when the step must run, :class:`ExternalRun` writes the launch spec (what the
external side needs to rebuild the step and find its data: module, step key and
fingerprint, output folder, inputs' folders, cache, selected checks) into the Pipes
``extras`` and runs ``python -m dreamer_dagster.pipes.worker`` through the client. The
worker (:mod:`~dreamer_dagster.pipes.worker`) runs the step with the in-process code,
commits its folder and reports metadata, data version, check results and logs back; the
orchestrator then records the materialization from what was committed.
"""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

from ..translator import DreamerTranslator, StepOpSettings

if TYPE_CHECKING:
    from ..steps.step import Step

__all__ = [
    "PIPES_EXTRA",
    "RETRYABLE_EXIT_CODE",
    "WORKER_MODULE",
    "ExternalRun",
    "PipesLaunch",
    "check_pipes_client",
    "external_run",
    "is_heavy",
    "launch_spec",
    "pipes_launch_for",
    "refuse_unsupported",
    "remember_step",
    "remembered_step",
    "with_default_pipes_client",
]

#: The key of the launch spec in the Pipes ``extras``.
PIPES_EXTRA = "dreamer_step"
#: The module the external process runs (``python -m dreamer_dagster.pipes.worker``).
WORKER_MODULE = "dreamer_dagster.pipes.worker"
#: The worker's exit code for a failure a retry can fix (EX_TEMPFAIL).
RETRYABLE_EXIT_CODE = 75
#: The environment the external process gets besides the client's: only declare the pipeline.
WORKER_ENV = {"DREAMER_RUN": "0"}

_BUILT: dict[tuple[str, str], Any] = {}


@dataclass(frozen=True)
class PipesLaunch:
    """A Pipes client and how to call its ``run``.

    ``run_kwargs`` go to every ``client.run(...)`` (``image=``, ``namespace=``,
    ``base_pod_spec=`` for ``PipesK8sClient``); ``python`` is the interpreter on the
    external side (default: this one for a subprocess, ``python`` elsewhere); ``build``
    (``build(command, env) -> run kwargs``) is for clients whose ``run`` takes no
    ``command`` (EMR's job-flow parameters, a Databricks task). See
    :mod:`~dreamer_dagster.pipes.platforms` for Kubernetes GPU pods and EMR.
    """

    client: Any
    run_kwargs: Mapping[str, Any] = field(default_factory=dict)
    python: str | None = None
    build: Callable[[list[str], dict[str, str]], Mapping[str, Any]] | None = None

    def command(self) -> list[str]:
        """The external process's command line."""
        python = self.python or (sys.executable if _is_subprocess(self.client) else "python")
        return [python, "-m", WORKER_MODULE]

    def run_arguments(self, env: Mapping[str, str] | None = None) -> dict[str, Any]:
        """What ``client.run`` gets besides ``context`` and ``extras``."""
        env = {**WORKER_ENV, **(env or {})}
        if self.build is not None:
            return {**self.build(self.command(), env), **self.run_kwargs}
        params = inspect.signature(self.client.run).parameters
        arguments: dict[str, Any] = {"command": self.command()}
        if "env" in params:
            arguments["env"] = env
        return {**arguments, **self.run_kwargs}

    def run(self, context: Any, extras: Mapping[str, Any]) -> Any:
        """Run the worker through the client; returns its completed invocation."""
        return self.client.run(context=context, extras=dict(extras), **self.run_arguments())


def check_pipes_client(value: Any) -> PipesLaunch:
    """``pipes_client=``'s value as a :class:`PipesLaunch`; TypeError naming the fix."""
    if isinstance(value, PipesLaunch):
        client = value.client
    else:
        client = value
    if not isinstance(client, dg.PipesClient):
        raise TypeError(
            "must be a Dagster Pipes client (such as dg.PipesSubprocessClient() or "
            "dagster_k8s.PipesK8sClient()) or a dreamer_dagster.pipes.PipesLaunch, got "
            f"{value!r}. Fix: pass pipes_client=dg.PipesSubprocessClient(), or leave it out to "
            "run in the orchestrator's process."
        )
    launch = value if isinstance(value, PipesLaunch) else PipesLaunch(client)
    if launch.build is None and "command" not in inspect.signature(client.run).parameters:
        raise TypeError(
            f"{type(client).__name__}.run takes no command. Fix: wrap it in "
            "dreamer_dagster.pipes.PipesLaunch(client, build=...) (see dreamer_dagster.pipes.platforms)."
        )
    return launch


def pipes_launch_for(step: Step, client: Any, partitioned: bool = False) -> PipesLaunch | None:
    """At ``definitions()``: the step's Pipes launch from its op settings' ``pipes_client``
    (None: it runs in process), refused with the fix where it cannot be used."""
    if client is None:
        return None
    try:
        launch = check_pipes_client(client)
    except TypeError as error:
        raise step.error(str(error), "pipes_client") from None
    refuse_unsupported(step, launch, partitioned)
    remember_step(step)  # the worker finds it when its module builds its definitions
    return launch


def refuse_unsupported(step: Step, launch: PipesLaunch | None, partitioned: bool = False) -> None:
    """At ``definitions()``: what a Pipes step cannot be yet (sharded, partitioned or reading
    partitions), refused with the fix."""
    if launch is None:
        return
    what = "shards=" if step.shards else "partitions" if partitioned else None
    if what is not None:
        raise step.error(
            f"{what} cannot be combined with pipes_client= yet. Fix: leave out one of them "
            "(without pipes_client= the step runs in the orchestrator's process).",
            "pipes_client",
        )


@dataclass(frozen=True)
class _DefaultPipesTranslator(DreamerTranslator):
    """``dreamer_definitions(..., pipes_client=...)`` / ``Pipeline(..., pipes_client=...)``: the
    base translator, with ``launch`` for the heavy steps (:func:`is_heavy`) that set no Pipes
    client of their own; data sources, operations and API steps stay in process."""

    base: DreamerTranslator = field(default_factory=DreamerTranslator)
    launch: PipesLaunch | None = None

    def get_asset_spec(self, step: Step) -> dg.AssetSpec:
        return self.base.get_asset_spec(step)

    def get_op_settings(self, step: Step) -> StepOpSettings:
        settings = self.base.get_op_settings(step)
        if settings.pipes_client is None and is_heavy(step):
            return settings.replace(pipes_client=self.launch)
        return settings


def is_heavy(step: Step) -> bool:
    """A trainer, or a step with a local model (one on a device: ``HFTransformers``,
    ``SentenceTransformersEmbedder``...): what a pipeline's ``pipes_client`` runs out of process."""
    if type(step).KIND == "trainer":
        return True
    return any("device" in vars(model) for model in step.models())


def with_default_pipes_client(translator: DreamerTranslator, client: Any) -> DreamerTranslator:
    """``translator`` giving ``client`` to every step without a Pipes client of its own."""
    try:
        launch = check_pipes_client(client)
    except TypeError as error:
        raise TypeError(f"argument 'pipes_client': {error}") from None
    return _DefaultPipesTranslator(base=translator, launch=launch)


def remember_step(step: Step) -> None:
    """Keep a step that runs through Pipes findable by key and fingerprint (the worker finds
    steps built into definitions while its module was imported)."""
    _BUILT[(step.key, step.fingerprint)] = step


def remembered_step(key: str, fingerprint: str) -> Any:
    return _BUILT.get((key, fingerprint))


def launch_spec(
    step: Step, context: Any, io_manager: Any, asset_key: dg.AssetKey, output_folder: Any
) -> dict[str, Any]:
    """What the external side needs: where to import the step from, its key and fingerprint,
    the output folder's config (storage options as declared: an ``EnvVar`` stays a name),
    its inputs' folders and fingerprints, the cache folder and the selected checks."""
    module, file, roots = _declaring_module(step)
    return {
        "step": step.name,
        "key": step.key,
        "type": type(step).__name__,
        "fingerprint": step.fingerprint,
        "module": module,
        "file": file,
        "sys_path": roots,
        "output_folder": {
            "path": str(io_manager.output_folder),
            "storage_options": _plain(io_manager.storage_options or {}),
            "local_folder": io_manager.local_folder,
            "lease_seconds": io_manager.lease_seconds,
        },
        "inputs": {
            parent.key: {"folder": parent.folder, "fingerprint": parent.fingerprint}
            for parent in step.upstream()
        },
        "cache": str(output_folder.cache_path),
        "run_id": context.run_id,
        "asset_key": asset_key.to_user_string(),
        "checks": sorted(key.name for key in context.selected_asset_check_keys if key.asset_key == asset_key),
    }


def _declaring_module(step: Step) -> tuple[str | None, str | None, list[str]]:
    """The module that declared ``step`` (its name as imported here), its file, and the
    ``sys.path`` entries that import it."""
    if step.declared_at is None:
        return None, None, []
    file = str(Path(step.declared_at[0]).resolve())
    name = None
    for module_name, module in list(sys.modules.items()):
        module_file = getattr(module, "__file__", None)
        if module_file and module_name != "__main__" and str(Path(module_file).resolve()) == file:
            name = module_name
            break
    roots = [str(Path(file).parent)]
    if name is not None and "." in name:
        package_root = Path(file).parent
        for _ in range(name.count(".")):
            package_root = package_root.parent
        roots.insert(0, str(package_root))
    return name, file, roots


def _plain(options: Mapping[str, Any]) -> dict[str, Any]:
    """Storage options as JSON: a ``dg.EnvVar`` as its config form ``{"env": NAME}``."""
    from ..storage_options import env_var_name

    def plain(value: Any) -> Any:
        name = env_var_name(value)
        if name is not None:
            return {"env": name}
        if isinstance(value, Mapping):
            return {key: plain(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(item) for item in value]
        return value

    return plain(options)


class ExternalRun:
    """One materialization of a step through its Pipes client: the runner ``reuse_or_run``
    calls when the step must run, then what the external process reported."""

    def __init__(
        self, step: Step, launch: PipesLaunch, context: Any, io_manager: Any, asset_key: dg.AssetKey
    ):
        self.step, self.launch, self.context = step, launch, context
        self.io_manager, self.asset_key = io_manager, asset_key
        self.metadata: dict[str, Any] = {}
        self.checks: list[dg.AssetCheckResult] = []

    def __call__(
        self,
        step: Step,
        context: Any,
        loaded: Mapping[str, Any],
        output_folder: Any,
        step_folder: Any,
        resources: Sequence[Any],
        retries: bool,
        *scope: Any,
    ) -> tuple[dict, None]:
        """Run the worker; returns the committed record (``None``: nothing left to commit)."""
        extras = {PIPES_EXTRA: launch_spec(step, context, self.io_manager, self.asset_key, output_folder)}
        context.log.info(
            f"Step {step.name!r} runs out of this process through {type(self.launch.client).__name__}."
        )
        try:
            invocation = self.launch.run(context, extras)
        except Exception as error:  # the client's own error (Dagster exports no common type)
            code = _exit_code(error)
            if retries and code is not None and code != RETRYABLE_EXIT_CODE:
                raise dg.Failure(
                    description=f"Step {step.name!r} failed in its external process, and running it "
                    f"again cannot fix it: {error}",
                    allow_retries=False,
                ) from error
            raise
        reported = [result for result in invocation.get_results() if isinstance(result, dg.MaterializeResult)]
        self.checks = [
            result for result in invocation.get_results() if isinstance(result, dg.AssetCheckResult)
        ]
        record = step_folder.step_json()
        if not reported or record is None or record.get("fingerprint") != step.fingerprint:
            raise dg.Failure(
                description=f"Step {step.name!r}: its external process ended without committing "
                f"{step_folder.path} (fingerprint {step.fingerprint}). Fix: read the external "
                "process's log above.",
                allow_retries=False,
            )
        materialization = reported[-1]
        version = materialization.data_version.value if materialization.data_version else None
        if version != record.get("data_version"):
            raise dg.Failure(
                description=f"Step {step.name!r}: its external process reported data version "
                f"{version}, but step.json holds {record.get('data_version')}.",
                allow_retries=False,
            )
        self.metadata = dict(materialization.metadata or {})
        return record, None


def external_run(
    step: Step, launch: PipesLaunch | None, context: Any, io_manager: Any, asset_key: dg.AssetKey
) -> ExternalRun | None:
    """The step's :class:`ExternalRun`, or None when it runs in this process."""
    if launch is None:
        return None
    return ExternalRun(step, launch, context, io_manager, asset_key)


def _exit_code(error: Exception) -> int | None:
    found = re.search(r"failed with code (-?\d+)", str(error))
    return int(found.group(1)) if found else None


def _is_subprocess(client: Any) -> bool:
    return isinstance(client, dg.PipesSubprocessClient)
