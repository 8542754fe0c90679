"""Training on several GPUs: one process per device through torch elastic launch.

``HFTrainer.run_training`` hands over here when ``device`` lists more than
one GPU; each worker runs the trainer's ``train_model`` on a picklable copy.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .base import TrainingRun
    from .hf_base import HFTrainer

__all__ = ["launch_distributed", "pinned_device", "worker_copy"]

_PINNED: dict[tuple[type, str], type] = {}


def pinned_device(args_cls: type, device: str) -> type:
    """``args_cls`` fixed to one device (``cuda:1``, say), not every visible GPU.

    Distributed workers and CPU keep the class as it is.
    """
    if not device.startswith("cuda:") or "LOCAL_RANK" in os.environ:
        return args_cls
    key = (args_cls, device)
    if key not in _PINNED:

        def _device(self: Any) -> Any:
            import torch

            self._setup_devices  # noqa: B018 - set up the process state first
            return torch.device(device)

        _PINNED[key] = type(
            args_cls.__name__, (args_cls,), {"device": property(_device), "n_gpu": property(lambda self: 1)}
        )
    return _PINNED[key]


def launch_distributed(trainer: HFTrainer, run: TrainingRun) -> dict:
    """Run ``trainer.train_model(run)`` in one process per device (torch elastic launch)."""
    import socket
    import uuid

    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    devices = run.args["device"]
    ids = [str(d).removeprefix("cuda:") if not isinstance(d, int) else str(d) for d in devices]
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(ids)
    # FSDP saves one full state dict on rank 0, so _model loads like any other model
    os.environ.setdefault("FSDP_STATE_DICT_TYPE", "FULL_STATE_DICT")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = dict(run.args.get("distributed_config") or {})
    launch = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=len(devices),
        run_id=config.pop("run_id", uuid.uuid4().hex),
        rdzv_backend=config.pop("rdzv_backend", "c10d"),
        rdzv_endpoint=config.pop("rdzv_endpoint", f"127.0.0.1:{port}"),
        max_restarts=config.pop("max_restarts", 0),
        start_method=config.pop("start_method", "spawn"),
        **config,
    )
    results_path = run.work_dir / "distributed_results.json"
    elastic_launch(launch, _distributed_worker)(worker_copy(trainer, run), run, str(results_path))
    return json.loads(results_path.read_text())


def worker_copy(trainer: HFTrainer, run: TrainingRun) -> HFTrainer:
    """A picklable copy of ``trainer`` for worker processes: no Dagster asset, no
    upstream steps (the columns are in ``run.datasets``, the args resolved in ``run.args``)."""
    worker = copy.copy(trainer)
    worker.__dict__.pop("asset", None)
    worker.inputs = {}
    worker.args = dict(run.args)
    worker._model_args = {key: run.args.get(key) for key in trainer._model_args}
    return worker


def _distributed_worker(trainer: HFTrainer, run: TrainingRun, results_path: str) -> None:
    import torch

    rank = int(os.environ.get("LOCAL_RANK", 0))
    torch.cuda.set_device(rank)
    results = trainer.train_model(run)
    if int(os.environ.get("RANK", 0)) == 0:
        Path(results_path).write_text(json.dumps(results, default=str))
