"""Steps run out of the orchestrator's process through Dagster Pipes (``pipes_client=``).

``launch.py``: the orchestrator's side (:class:`PipesLaunch`, the launch spec, the run);
``worker.py``: the external side (``python -m dreamer_dagster.pipes.worker``);
``reporting.py``: metadata in Pipes form; ``platforms.py``: Kubernetes GPU pods and EMR.
"""

from .launch import PipesLaunch
from .platforms import emr_launch, k8s_gpu_launch

__all__ = ["PipesLaunch", "emr_launch", "k8s_gpu_launch"]
