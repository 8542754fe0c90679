"""``quantization_config`` of the Hugging Face trainers (QLoRA), as DataDreamer takes it.

Declared: a ``transformers.BitsAndBytesConfig`` (or another quantization config)
or a dict of its fields, kept as the plain dict of its settings
(:func:`~dreamer_dagster.library_defaults.normalize_quantization_config`), so the
object and the dict give one fingerprint and step.json shows the settings. At run
time the config object is rebuilt and passed to ``from_pretrained``; bitsandbytes
quantizes on CUDA only, so a machine without a CUDA GPU (or without the
``bitsandbytes`` package) fails there, before loading, with the fix. With ``dtype``,
a bitsandbytes config computes and stores in it, as in DataDreamer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import NonRetryableError
from ..library_defaults import normalize_quantization_config

if TYPE_CHECKING:
    from .base import TrainingRun
    from .hf_base import HFTrainer

__all__ = ["QuantizationUnavailableError", "check_quantization_config", "quantization_options"]


class QuantizationUnavailableError(NonRetryableError):
    """A quantized training was asked of a machine that cannot quantize (no CUDA GPU)."""


def check_quantization_config(trainer: HFTrainer, value: Any) -> dict[str, Any] | None:
    """``value`` (a quantization config object or a dict of its fields) as its settings
    dict; a clear declaration error for anything else."""
    if value is None:
        return None
    if not type(trainer).QUANTIZABLE:
        raise trainer.error(
            f"{type(trainer).__name__} does not quantize its model (as in DataDreamer, only "
            "TrainHFFineTune, TrainHFClassifier, TrainHFRewardModel and TrainHFDPO take it). Fix: leave "
            "quantization_config out.",
            "quantization_config",
        )
    is_config = hasattr(value, "to_dict") and hasattr(value, "quant_method")
    if not (isinstance(value, Mapping) or is_config):
        raise trainer.error(
            f"got {type(value).__name__}; give a transformers.BitsAndBytesConfig(...) (e.g. "
            "load_in_4bit=True for QLoRA) or a dict of its fields.",
            "quantization_config",
        )
    return normalize_quantization_config(value)


def quantization_options(trainer: HFTrainer, run: TrainingRun) -> dict[str, Any]:
    """``from_pretrained`` kwargs for this run's ``quantization_config`` (empty without one):
    the config object and the device map that puts the quantized weights on the run's GPU."""
    settings = run.args.get("quantization_config")
    if not settings:
        return {}
    import torch

    settings = dict(settings)
    method = settings.pop("quant_method", "bitsandbytes")
    fix = (
        "Fix: train on a machine with a CUDA GPU (and `pip install bitsandbytes`), or leave "
        "quantization_config out to train the model unquantized."
    )
    if method == "bitsandbytes":
        if not torch.cuda.is_available():
            raise QuantizationUnavailableError(
                f"Trainer {run.step_name!r} ({type(trainer).__name__}), argument 'quantization_config': "
                f"bitsandbytes quantization ({_summary(settings)}) needs a CUDA GPU, and this machine has "
                f"none. {fix}"
            )
        import importlib.util

        if importlib.util.find_spec("bitsandbytes") is None:
            raise QuantizationUnavailableError(
                f"Trainer {run.step_name!r} ({type(trainer).__name__}), argument 'quantization_config': "
                f"bitsandbytes quantization needs the bitsandbytes package, which is not installed. {fix}"
            )
        from transformers import BitsAndBytesConfig

        dtype = run.args.get("dtype")
        if dtype:
            settings["bnb_4bit_compute_dtype"] = dtype
            settings["bnb_4bit_quant_storage"] = dtype
        config: Any = BitsAndBytesConfig(**settings)
    else:
        from transformers.quantizers.auto import AutoQuantizationConfig

        config = AutoQuantizationConfig.from_dict({"quant_method": method, **settings})
    device = trainer.run_device(run)
    options: dict[str, Any] = {"quantization_config": config}
    if not isinstance(run.args.get("device"), list):
        options["device_map"] = {"": device}
    return options


def _summary(settings: Mapping[str, Any]) -> str:
    shown = {
        k: v for k, v in settings.items() if k in ("load_in_4bit", "load_in_8bit", "bnb_4bit_quant_type")
    }
    return ", ".join(f"{k}={v!r}" for k, v in shown.items()) or "default settings"
