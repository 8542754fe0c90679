"""What a call of ``LLM.run`` asks for: its generation parameters and its run options.

:func:`generation_params` normalizes every parameter that changes the output
(the request part of the cache key); :class:`RunOptions` holds DataDreamer's
settings that change how a run goes, never what it returns (outside the cache
key), checked by :func:`run_options`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..fingerprint import canonical
from . import response_format as response_formats
from .generation_limits import generation_arg_problem

__all__ = ["RunOptions", "check_bounds", "generation_params", "is_greedy", "run_options"]


@dataclass(frozen=True)
class RunOptions:
    """How one ``run`` goes (never what it returns for a cached prompt): outside the cache key."""

    force: bool = False
    cache_only: bool = False
    #: Times an answer that does not parse under ``response_format`` is asked again.
    retries: int = 0


def run_options(
    force: bool, cache_only: bool, response_format_retries: int, response_format: Any
) -> RunOptions:
    """The checked :class:`RunOptions` of a run (a ``ValueError`` naming the argument otherwise)."""
    if int(response_format_retries) < 0:
        raise ValueError(f"response_format_retries must be >= 0 (got {response_format_retries}).")
    if response_format is not None:
        response_formats.check(response_format)
    if force and cache_only:
        raise ValueError("force=True and cache_only=True contradict each other: pick one.")
    return RunOptions(force=bool(force), cache_only=bool(cache_only), retries=int(response_format_retries))


def check_bounds(owner: str, **values: Any) -> None:
    """A ``ValueError`` naming ``owner``, the argument and the fix for a value out of bounds."""
    for name, value in values.items():
        problem = generation_arg_problem(name, value, optional=name == "max_new_tokens")
        if problem is not None:
            raise ValueError(f"{owner}.run(): {name} {problem}")


def generation_params(
    owner: str,
    max_new_tokens: int | None,
    temperature: float,
    top_p: float,
    n: int,
    stop: str | list[str] | None,
    repetition_penalty: float | None,
    logit_bias: dict[int, float] | None,
    seed: int | None,
    response_format: Any,
    **kwargs: Any,
) -> dict:
    """Every parameter that changes the output, normalized: the request part of the cache key."""
    check_bounds(owner, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, n=n)
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    return {
        "max_new_tokens": None if max_new_tokens is None else int(max_new_tokens),
        "temperature": float(temperature),
        "top_p": float(top_p),
        "n": int(n),
        "stop": stops,
        "repetition_penalty": None if repetition_penalty is None else float(repetition_penalty),
        "logit_bias": (
            None
            if not logit_bias
            else {str(int(token)): float(bias) for token, bias in sorted(logit_bias.items())}
        ),
        "seed": seed,
        "response_format": None if response_format is None else response_formats.identity(response_format),
        "kwargs": canonical(kwargs, "run kwargs"),
    }


def is_greedy(params: dict) -> bool:
    """Greedy decoding: ``temperature == 0`` or ``top_p == 0`` (DataDreamer's convention)."""
    return params["temperature"] == 0.0 or params["top_p"] == 0.0
