"""``LocalPodK8sClient``: dagster-k8s's ``PipesK8sClient`` with the cluster replaced by this
machine. ``run`` builds the pod body exactly as the real client does (``build_pod_body``,
with the Pipes bootstrap variables of an env context injector), records it in ``PODS``,
then runs the pod's container command with the pod's environment here (the image's
``python`` is this interpreter), reading its messages from a temporary file."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from dagster._core.pipes.client import PipesClientCompletedInvocation
from dagster._core.pipes.utils import PipesEnvContextInjector, PipesTempFileMessageReader, open_pipes_session
from dagster_k8s import PipesK8sClient
from dagster_k8s.pipes import build_pod_body

PODS: list[Any] = []


class LocalPodK8sClient(PipesK8sClient):
    """A ``PipesK8sClient`` whose pods run as local processes (see the module's doc)."""

    def run(  # noqa: PLR0913 - the real client's signature
        self,
        *,
        context: Any,
        extras: Any = None,
        image: str | None = None,
        command: Any = None,
        namespace: str | None = None,
        env: Any = None,
        base_pod_meta: Any = None,
        base_pod_spec: Any = None,
        **kwargs: Any,
    ) -> PipesClientCompletedInvocation:
        with open_pipes_session(
            context=context,
            extras=extras,
            context_injector=PipesEnvContextInjector(),
            message_reader=PipesTempFileMessageReader(),
        ) as session:
            pod = build_pod_body(
                pod_name="dagster-pipes-local",
                image=image,
                command=command,
                env_vars={**(env or {}), **session.get_bootstrap_env_vars()},
                base_pod_meta=base_pod_meta,
                base_pod_spec=base_pod_spec,
            )
            PODS.append({"pod": pod, "namespace": namespace})
            container = pod.spec.containers[0]
            argv = [sys.executable if container.command[0] == "python" else container.command[0]]
            argv += list(container.command[1:])
            pod_env = {variable.name: variable.value for variable in container.env}
            subprocess.run(argv, env={**os.environ, **pod_env}, check=True)
        return PipesClientCompletedInvocation(session)
