"""A batch's shared prompt prefix prefilled once.

Chat prompts start with the same tokens (the template's system turn, often the same
instruction): a decoder-only batch computes that prefix's key/value cache once, on one
row, repeats it over the batch (with room for the new tokens, written in place where a
dynamic cache copies itself on every token) and prefills only each row's own tail. The rows become
``[prefix][padding][tail]`` with the padding masked; position ids come from the
attention mask, so every real token sits where it would in a left-padded batch and
``generate`` continues exactly as it would (greedy answers: the same tokens, modulo
the float rounding of a differently shaped matrix product).
"""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["MAX_ROOM", "MIN_SHARED_PREFIX", "SAFE_GENERATE_KWARGS", "with_shared_prefix"]

#: Fewer shared tokens than this are prefilled with the batch (not worth a second call).
MIN_SHARED_PREFIX = 4
#: New tokens a row's key/value cache keeps room for (written in place); past it, it grows by copying.
MAX_ROOM = 256
#: ``generate`` options the shared prefix keeps exact; any other one takes the plain path
#: (beams and returned sequences expand rows, n-gram bans would see the moved padding,
#: a cache the caller passes or chooses is the caller's).
SAFE_GENERATE_KWARGS = frozenset(
    {
        "max_new_tokens",
        "min_new_tokens",
        "do_sample",
        "pad_token_id",
        "eos_token_id",
        "repetition_penalty",
        "sequence_bias",
        "stop_strings",
        "tokenizer",
        "logits_processor",
        "temperature",
        "top_p",
        "top_k",
        "min_p",
        "typical_p",
        "suppress_tokens",
    }
)


def _layer_with_room(keys: Any, values: Any, rows: int, room: int) -> Any:
    """The prefix's one-row cache layer repeated over ``rows``, with room for ``room`` tokens."""
    return _in_place_layer_class()(keys, values, rows, room)


@functools.cache
def _in_place_layer_class() -> type:
    from transformers.cache_utils import DynamicLayer

    class InPlaceLayer(DynamicLayer):
        """A ``DynamicLayer`` whose new tokens are written into room set aside for them (a
        dynamic layer copies its whole cache on every token); outside plain decoding it
        turns back into a dynamic layer."""

        def __init__(self, keys: Any, values: Any, rows: int, room: int) -> None:
            super().__init__()
            heads, length, width = keys.shape[1:]
            self.rows, self.capacity = rows, room
            self.room = (keys.new_empty(rows, heads, room, width), values.new_empty(rows, heads, room, width))
            self.room[0][:, :, :length] = keys
            self.room[1][:, :, :length] = values
            self.dtype, self.device, self.is_initialized = keys.dtype, keys.device, True
            self.keys, self.values = self.room[0][:, :, :length], self.room[1][:, :, :length]

        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> Any:
            length = self.keys.shape[-2]
            end = length + key_states.shape[-2]
            if self.room is None or end > self.capacity or key_states.shape[0] != self.rows:
                self.room = None
                return super().update(key_states, value_states, *args, **kwargs)
            self.room[0][:, :, length:end] = key_states
            self.room[1][:, :, length:end] = value_states
            self.keys, self.values = self.room[0][:, :, :end], self.room[1][:, :, :end]
            return self.keys, self.values

        def crop(self, tokens_to_remove: int) -> None:
            self.room = None
            super().crop(tokens_to_remove)

        def batch_repeat_interleave(self, repeats: int) -> None:
            self.room = None
            super().batch_repeat_interleave(repeats)

        def batch_select_indices(self, indices: Any) -> None:
            self.room = None
            super().batch_select_indices(indices)

        def reorder_cache(self, beam_idx: Any) -> None:
            self.room = None
            super().reorder_cache(beam_idx)

        def reset(self) -> None:
            self.room = None
            super().reset()

    return InPlaceLayer


def shared_prefix_length(input_ids: Any, attention_mask: Any) -> int:
    """Tokens every row of a left-padded batch starts with, leaving each row at least one
    token of its own (the last prompt token's logits start its generation)."""
    import torch

    real = attention_mask.sum(dim=1)
    shortest = int(real.min())
    if shortest < 2 or not bool((attention_mask.flip(1).cumprod(1).sum(1) == real).all()):
        return 0  # empty rows, or a mask that is not left padding
    width = input_ids.shape[1]
    starts = width - real
    positions = starts.unsqueeze(1) + torch.arange(shortest - 1, device=input_ids.device)
    aligned = input_ids.gather(1, positions)  # each row's first tokens, side by side
    same = (aligned == aligned[:1]).all(dim=0)
    differs = (~same).nonzero()
    return int(differs[0]) if len(differs) else shortest - 1


def with_shared_prefix(model: Any, encoded: dict, generate_kwargs: dict) -> dict | None:
    """``generate`` inputs whose shared prefix is already in a key/value cache, or None where
    the plain path applies (encoder-decoder, one row, a short prefix, another cache kind, an
    option outside :data:`SAFE_GENERATE_KWARGS`). The answer's new tokens start after
    ``input_ids.shape[1]`` of the returned inputs."""
    import torch
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    config = model.config
    if config.is_encoder_decoder or getattr(model, "peft_config", None) is not None:
        return None
    if set(generate_kwargs) - SAFE_GENERATE_KWARGS:
        return None
    if getattr(model.generation_config, "cache_implementation", None) is not None:
        return None
    input_ids, attention_mask = encoded["input_ids"], encoded.get("attention_mask")
    if attention_mask is None or set(encoded) - {"input_ids", "attention_mask"} or input_ids.shape[0] < 2:
        return None
    prefix = shared_prefix_length(input_ids, attention_mask)
    if prefix < MIN_SHARED_PREFIX:
        return None
    rows, width = input_ids.shape
    real = attention_mask.sum(dim=1)
    tail = int(real.max()) - prefix
    start = int(width - real[0])
    cache = DynamicCache(config=config)
    with torch.inference_mode():
        model(
            input_ids=input_ids[:1, start : start + prefix],
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
    if not all(type(layer) is DynamicLayer for layer in cache.layers):
        return None  # sliding-window, linear-attention or quantized layers: not repeated here
    room = prefix + tail + min(int(generate_kwargs.get("max_new_tokens") or 0), MAX_ROOM)
    cache.layers = [_layer_with_room(layer.keys, layer.values, rows, room) for layer in cache.layers]
    # Each row's own tokens, right-aligned after the prefix: [prefix][padding][own tokens].
    own = (real - prefix).unsqueeze(1)
    keep = torch.arange(tail, device=input_ids.device).unsqueeze(0) >= tail - own
    pad = generate_kwargs.get("pad_token_id")
    pad = int(input_ids[0, 0]) if pad is None else pad
    new_ids = input_ids[:, width - tail :].masked_fill(~keep, pad)
    new_mask = keep.to(attention_mask.dtype)
    prefix_ids = input_ids[:1, start : start + prefix].expand(rows, prefix)
    return {
        "input_ids": torch.cat([prefix_ids, new_ids], dim=1),
        "attention_mask": torch.cat([torch.ones_like(prefix_ids, dtype=new_mask.dtype), new_mask], dim=1),
        "past_key_values": cache,
    }
