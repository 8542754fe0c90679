"""Linear layers multiplied in their weight's own layout while a CPU model generates.

A decoding step multiplies every weight by a few rows (one per prompt of the batch).
``nn.Linear`` computes ``x @ W.T``: the BLAS reads the large operand transposed and
repacks it on every call, which costs more than the product itself at these sizes.
``(W @ x.T).T`` reads the weight as it lies in memory; on the CPUs measured (MKL,
AVX-512) it is 1.0-1.5x faster from 16 to 512 rows (most at 16-128) and gives the same sums, bit for
bit (fewer rows take MKL's small-matrix kernels, which round differently, so they stay
on ``nn.Linear``). A vocabulary-sized weight (the language-model head, ``SLICED_FROM``
rows or more) is multiplied in slices of ``CHUNK_ROWS`` rows, each written into its part
of the result: the same sums, about 4 % less time a batch of SmolLM2. While :func:`few_row_linears` is active, a model's plain bias-free
float32 ``nn.Linear`` layers on the CPU take that path; on leaving, they are plain
``nn.Linear`` layers again. Nothing else about the model changes (its parameters, its
state dict, ``isinstance(layer, nn.Linear)``).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["CHUNK_ROWS", "MAX_ROWS", "MIN_ROWS", "SLICED_FROM", "few_row_linear_class", "few_row_linears"]

#: The rows (prompts x new tokens of a forward pass) a layer multiplies in its weight's layout.
MIN_ROWS = 16
MAX_ROWS = 512
#: A weight with at least ``SLICED_FROM`` output rows (a vocabulary) is multiplied in slices of ``CHUNK_ROWS``.
SLICED_FROM = 8192
CHUNK_ROWS = 1024

_lock = threading.Lock()
#: id(model) -> how many generations are inside ``few_row_linears`` for it now.
_active: dict[int, int] = {}


@functools.cache
def few_row_linear_class() -> type:
    """``nn.Linear`` whose forward multiplies ``MIN_ROWS``..``MAX_ROWS`` rows as ``(W @ x.T).T``."""
    import torch

    class FewRowLinear(torch.nn.Linear):
        """A bias-free ``nn.Linear`` that multiplies a few rows in its weight's layout."""

        def forward(self, input: Any) -> Any:
            width = input.shape[-1] if input.dim() else 0
            rows = input.numel() // width if width else 0
            if MIN_ROWS <= rows <= MAX_ROWS:
                flat = input.reshape(rows, width).t()
                if self.out_features < SLICED_FROM:
                    out = torch.mm(self.weight, flat)
                else:  # a vocabulary-sized head: in slices the cache holds while they are multiplied
                    out = flat.new_empty(self.out_features, rows)
                    for part, into in zip(self.weight.split(CHUNK_ROWS), out.split(CHUNK_ROWS)):
                        torch.mm(part, flat, out=into)
                return out.t().contiguous().view(*input.shape[:-1], self.out_features)
            return super().forward(input)

    return FewRowLinear


def _eligible(model: Any) -> list[Any]:
    import torch

    fast = few_row_linear_class()
    return [
        module
        for module in model.modules()
        if type(module) in (torch.nn.Linear, fast)
        and module.bias is None
        and module.weight.device.type == "cpu"
        and module.weight.dtype == torch.float32
    ]


@contextmanager
def few_row_linears(model: Any) -> Iterator[None]:
    """Within the block, ``model``'s plain bias-free float32 CPU ``nn.Linear`` layers multiply
    few rows in their weight's layout; the last generation to leave turns them back. Safe
    with several threads generating on one model at once."""
    import torch

    layers = _eligible(model)
    if not layers:
        yield
        return
    key = id(model)
    with _lock:
        if not _active.get(key):
            for layer in layers:
                layer.__class__ = few_row_linear_class()
        _active[key] = _active.get(key, 0) + 1
    try:
        yield
    finally:
        with _lock:
            _active[key] -= 1
            if not _active[key]:
                del _active[key]
                for layer in layers:
                    layer.__class__ = torch.nn.Linear
