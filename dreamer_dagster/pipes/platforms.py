"""Launch descriptions for running steps on other machines through Dagster Pipes.

- :func:`k8s_gpu_launch`: a pod on a GPU node through ``dagster_k8s.PipesK8sClient`` (the
  image holds the pipeline's code and ``dreamer-dagster``; the pod asks for ``gpus`` of
  ``nvidia.com/gpu``; messages come back in the pod's logs).
- :func:`emr_launch`: an EMR cluster with GPU core nodes through
  ``dagster_aws.pipes.PipesEMRClient``: one step runs the worker with ``command-runner.jar``,
  the Pipes variables reach it through the cluster's ``hadoop-env`` (the client adds them),
  its messages go to S3 (``PipesS3MessageReader`` on the orchestrator's side).

Each returns a :class:`~dreamer_dagster.pipes.launch.PipesLaunch` for ``pipes_client=``.
The output folder must be one both sides reach (``s3://...``, a shared volume): the
worker writes the step folder there, the orchestrator reads step.json back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .launch import PipesLaunch

__all__ = ["emr_launch", "k8s_gpu_launch"]


def k8s_gpu_launch(
    client: Any,
    image: str,
    *,
    gpus: int = 1,
    namespace: str | None = None,
    node_selector: Mapping[str, str] | None = None,
    tolerations: Sequence[Mapping[str, Any]] | None = None,
    env: Mapping[str, str] | None = None,
    python: str = "python",
    base_pod_spec: Mapping[str, Any] | None = None,
) -> PipesLaunch:
    """Run the step in a pod of ``image`` on a node with ``gpus`` NVIDIA GPUs (tolerating
    the usual ``nvidia.com/gpu`` taint unless ``tolerations`` are given)."""
    if not isinstance(gpus, int) or isinstance(gpus, bool) or gpus < 0:
        raise ValueError(f"k8s_gpu_launch, argument 'gpus': must be an int >= 0, got {gpus!r}.")
    spec: dict[str, Any] = dict(base_pod_spec or {})
    if gpus:
        limits = {"nvidia.com/gpu": str(gpus)}
        spec["containers"] = [{"resources": {"limits": limits, "requests": limits}}]
        spec["tolerations"] = list(
            tolerations
            if tolerations is not None
            else [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
        )
    if node_selector:
        spec["node_selector"] = dict(node_selector)
    run_kwargs: dict[str, Any] = {"image": image, "base_pod_spec": spec}
    if namespace is not None:
        run_kwargs["namespace"] = namespace
    return PipesLaunch(client, run_kwargs=run_kwargs, python=python, build=_with_env(env))


def _with_env(extra: Mapping[str, str] | None) -> Any:
    def build(command: list[str], env: dict[str, str]) -> dict[str, Any]:
        return {"command": command, "env": {**env, **(extra or {})}}

    return build


def emr_launch(
    client: Any,
    *,
    release_label: str = "emr-7.5.0",
    instance_type: str = "g5.xlarge",
    instance_count: int = 1,
    name: str = "dreamer-dagster step",
    log_uri: str | None = None,
    bootstrap_script: str | None = None,
    python: str = "python3",
    job_flow_role: str = "EMR_EC2_DefaultRole",
    service_role: str = "EMR_DefaultRole",
    run_job_flow_params: Mapping[str, Any] | None = None,
) -> PipesLaunch:
    """Run the step as the one step of an EMR cluster of ``instance_count`` ``instance_type``
    GPU core nodes; ``bootstrap_script`` (an ``s3://`` script) installs the pipeline's code
    and ``dreamer-dagster``. ``run_job_flow_params`` are merged over the ones built here."""

    def build(command: list[str], env: dict[str, str]) -> dict[str, Any]:
        worker = [python, *command[1:], "--s3-messages"]
        params: dict[str, Any] = {
            "Name": name,
            "ReleaseLabel": release_label,
            "Applications": [{"Name": "Hadoop"}],
            "Instances": {
                "InstanceGroups": [
                    {"InstanceRole": "MASTER", "InstanceType": "m5.xlarge", "InstanceCount": 1},
                    {"InstanceRole": "CORE", "InstanceType": instance_type, "InstanceCount": instance_count},
                ],
                "KeepJobFlowAliveWhenNoSteps": False,
            },
            "Steps": [
                {
                    "Name": name,
                    "ActionOnFailure": "TERMINATE_CLUSTER",
                    "HadoopJarStep": {
                        "Jar": "command-runner.jar",
                        "Args": ["env", *(f"{key}={value}" for key, value in env.items()), *worker],
                    },
                }
            ],
            "JobFlowRole": job_flow_role,
            "ServiceRole": service_role,
            "VisibleToAllUsers": True,
        }
        if log_uri is not None:
            params["LogUri"] = log_uri
        if bootstrap_script is not None:
            params["BootstrapActions"] = [
                {"Name": "install dreamer-dagster", "ScriptBootstrapAction": {"Path": bootstrap_script}}
            ]
        params.update(run_job_flow_params or {})
        return {"run_job_flow_params": params}

    return PipesLaunch(client, python=python, build=build)
