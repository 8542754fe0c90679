"""Config objects of the pinned libraries, spelled as dicts: their defaults, without importing them.

``peft_config=LoraConfig(r=8)`` and ``peft_config={"r": 8}`` declare one training,
so they must give one fingerprint, and declaring must not import peft. A config
(object or dict) is normalized to the fields that differ from the library's
defaults, with sets as sorted lists and enums as their values; the defaults come
from the table below, written from the pinned ``peft`` (a test checks it against
the installed one, so a version bump that changes a default fails loudly).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "BNB_CONFIG_DEFAULTS",
    "LORA_CONFIG_DEFAULTS",
    "normalize_peft_config",
    "normalize_quantization_config",
]

#: ``peft.LoraConfig().to_dict()`` of peft 0.21.2, less ``peft_type`` and ``peft_version``.
LORA_CONFIG_DEFAULTS: dict[str, Any] = {
    "task_type": None,
    "auto_mapping": None,
    "base_model_name_or_path": None,
    "revision": None,
    "inference_mode": False,
    "r": 8,
    "target_modules": None,
    "exclude_modules": None,
    "lora_alpha": 8,
    "lora_dropout": 0.0,
    "fan_in_fan_out": False,
    "bias": "none",
    "use_rslora": False,
    "modules_to_save": None,
    "init_lora_weights": True,
    "layers_to_transform": None,
    "layers_pattern": None,
    "rank_pattern": {},
    "alpha_pattern": {},
    "megatron_config": None,
    "megatron_core": "megatron.core",
    "trainable_token_indices": None,
    "loftq_config": {},
    "eva_config": None,
    "corda_config": None,
    "lora_ga_config": None,
    "use_dora": False,
    "velora_config": None,
    "alora_invocation_tokens": None,
    "use_qalora": False,
    "qalora_group_size": 16,
    "monteclora_config": None,
    "layer_replication": None,
    "lora_bias": False,
    "target_parameters": None,
    "use_bdlora": None,
    "arrow_config": None,
    "kasa_config": None,
    "ensure_weight_tying": False,
}

#: ``transformers.BitsAndBytesConfig().to_dict()`` of transformers 5.23.0, less its private
#: ``_load_in_4bit`` / ``_load_in_8bit`` copies (``quant_method`` names the config's kind).
BNB_CONFIG_DEFAULTS: dict[str, Any] = {
    "quant_method": "bitsandbytes",
    "llm_int8_threshold": 6.0,
    "llm_int8_skip_modules": None,
    "llm_int8_enable_fp32_cpu_offload": False,
    "llm_int8_has_fp16_weight": False,
    "bnb_4bit_quant_type": "fp4",
    "bnb_4bit_use_double_quant": False,
    "bnb_4bit_compute_dtype": "float32",
    "bnb_4bit_quant_storage": "uint8",
    "load_in_4bit": False,
    "load_in_8bit": False,
}

#: Fields peft keeps as sets (a list in any order means the same modules).
_SET_FIELDS = frozenset({"target_modules", "exclude_modules"})
#: Fields that say which library made the config, not what it does.
_NOT_CONFIG = frozenset({"peft_type", "peft_version"})


def normalize_peft_config(config: Any) -> dict[str, Any]:
    """A peft config (a ``LoraConfig`` or other peft config object, or a dict of
    ``LoraConfig`` fields) as the dict of its fields that differ from the defaults.

    A dict with a ``peft_type`` other than ``LORA`` keeps every field but that
    one, plus ``peft_type``; an object of another config class is compared with
    that class's own defaults (peft is imported already when one is passed).
    """
    if isinstance(config, Mapping):
        fields = {str(name): _plain(value) for name, value in config.items()}
        peft_type = str(fields.pop("peft_type", "LORA") or "LORA").upper()
        if peft_type != "LORA":
            return {"peft_type": peft_type, **{k: v for k, v in fields.items() if k not in _NOT_CONFIG}}
        defaults = LORA_CONFIG_DEFAULTS
    else:
        fields = {name: _plain(value) for name, value in config.to_dict().items()}
        peft_type = str(fields.get("peft_type") or "")
        if type(config).__name__ == "LoraConfig":
            defaults = LORA_CONFIG_DEFAULTS
        else:
            defaults = {name: _plain(value) for name, value in type(config)().to_dict().items()}
    normalized = {}
    for name, value in fields.items():
        if name in _NOT_CONFIG:
            continue
        if name in _SET_FIELDS and isinstance(value, list):
            value = sorted(set(value), key=str)
        if name in defaults and value == defaults[name]:
            continue
        normalized[name] = value
    if defaults is not LORA_CONFIG_DEFAULTS and peft_type:
        normalized["peft_type"] = peft_type
    return dict(sorted(normalized.items()))


def _plain(value: Any) -> Any:
    """Sets as sorted lists, tuples as lists, enums as their values, recursively."""
    if isinstance(value, (set, frozenset)):
        return sorted((_plain(item) for item in value), key=str)
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if hasattr(value, "value") and type(value).__mro__[-2].__name__ == "Enum":
        return value.value
    return value


def normalize_quantization_config(config: Any) -> dict[str, Any]:
    """A ``transformers`` quantization config (a ``BitsAndBytesConfig`` or another
    ``QuantizationConfigMixin``, or a dict of its fields) as a plain dict: ``quant_method``
    plus, for bitsandbytes, the fields that differ from :data:`BNB_CONFIG_DEFAULTS`
    (dtypes by name), or every field for another method. A dict without
    ``quant_method`` is a ``BitsAndBytesConfig``'s fields, as in ``from_pretrained``.
    """
    if isinstance(config, Mapping):
        fields = {str(name): _plain(value) for name, value in config.items()}
    else:
        fields = {name: _plain(value) for name, value in config.to_dict().items()}
    fields = {name: _dtype_name(name, value) for name, value in fields.items() if not name.startswith("_")}
    method = str(fields.pop("quant_method", None) or "bitsandbytes")
    if method != "bitsandbytes":
        return {"quant_method": method, **dict(sorted(fields.items()))}
    changed = {name: value for name, value in fields.items() if BNB_CONFIG_DEFAULTS.get(name, ...) != value}
    return {"quant_method": method, **dict(sorted(changed.items()))}


def _dtype_name(field: str, value: Any) -> Any:
    """``torch.bfloat16`` -> ``"bfloat16"`` in the dtype fields (without importing torch)."""
    if field.endswith(("_dtype", "_storage")) and value is not None and not isinstance(value, str):
        return str(value).removeprefix("torch.")
    return value
