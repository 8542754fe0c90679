"""Generation with vLLM on a GPU machine."""

from __future__ import annotations

import json
import os
from typing import Any

from ..citations import VLLM_CITATION
from ..fingerprint import canonical
from ..model_info import HubModelInfo
from . import loaded_models
from .batch_stream import BatchStream
from .generation_result import GenerationResult
from .hf_transformers import HFTransformers
from .llm import LLM
from .request import GenerationRequest

__all__ = ["VLLM"]


class VLLM(HubModelInfo, LLM):
    """A model served in-process by vLLM (``import vllm`` happens when a step runs).

    Prompts are formatted and counted with the model's own tokenizer (chat
    template, ``system_prompt``) exactly as ``HFTransformers`` does; vLLM then
    schedules the whole group of prompts it is given (continuous batching), each
    with its own seed. DataDreamer's order: ``VLLM(model_name,
    chat_prompt_template, system_prompt, revision, trust_remote_code, device,
    dtype, quantization, swap_space, cache_folder_path, **kwargs)``; ``device``
    (a GPU or a list of GPUs) picks the GPUs vLLM sees and, by default, the
    tensor-parallel size. ``device``, ``tensor_parallel_size``,
    ``gpu_memory_utilization``, ``swap_space`` and ``batch_size`` change speed,
    not results, and are not part of the identity.
    Writes generations to the model cache.
    """

    KINDS = ("vllm",)

    def __init__(
        self,
        model_name: Any,
        chat_prompt_template: str | None = None,
        system_prompt: str | None = None,
        revision: str | None = None,
        trust_remote_code: bool = False,
        device: Any = None,
        dtype: Any = None,
        quantization: str | None = None,
        swap_space: int = 1,
        cache_folder_path: str | None = None,
        *,
        max_model_len: int | None = None,
        tensor_parallel_size: int | None = None,
        gpu_memory_utilization: float = 0.9,
        **kwargs: Any,
    ):
        super().__init__(model_name, system_prompt=system_prompt, chat_prompt_template=chat_prompt_template)
        devices = device if isinstance(device, (list, tuple)) else ([] if device is None else [device])
        self.devices = [_gpu_index(d) for d in devices]
        self.revision = revision
        self.trust_remote_code = trust_remote_code
        self.dtype = dtype
        self.quantization = quantization
        if self.quantization is None and isinstance(model_name, str) and "-awq" in model_name.lower():
            self.quantization = "awq"  # as DataDreamer infers it
        self.swap_space = swap_space
        self.cache_folder_path = cache_folder_path
        self.max_model_len = max_model_len
        self.tensor_parallel_size = tensor_parallel_size or max(1, len(self.devices))
        self.gpu_memory_utilization = gpu_memory_utilization
        self.kwargs = kwargs

    def identity(self) -> dict:
        return {
            "model_name": canonical(self.model_name),
            "revision": self.revision,
            "dtype": None if self.dtype is None else str(self.dtype).removeprefix("torch."),
            "quantization": self.quantization,
            "max_model_len": self.max_model_len,
            "system_prompt": self.system_prompt,
            "chat_prompt_template": self.chat_prompt_template,
            "trust_remote_code": self.trust_remote_code,
            "kwargs": canonical(self.kwargs),
        }

    @property
    def citation(self) -> list[str] | None:
        return [*(super().citation or []), VLLM_CITATION]

    @property
    def tokenizer(self) -> Any:
        return self._formatter().tokenizer

    # -- tokenizer-side work is HFTransformers' -----------------------------------------

    def _formatter(self) -> HFTransformers:
        return HFTransformers(
            self.model_name,
            revision=self.revision,
            trust_remote_code=self.trust_remote_code,
            system_prompt=self.system_prompt,
            chat_prompt_template=self.chat_prompt_template,
        )

    def count_tokens(self, value: str) -> int:
        return self._formatter().count_tokens(value)

    def _format_text(self, prompt: str) -> str:
        return self._formatter()._format_text(prompt)

    def _count_text_tokens(self, text: str) -> int:
        return self._formatter()._count_text_tokens(text)

    def _context_length(self) -> int | None:
        return self.max_model_len or self._formatter()._context_length()

    # -- the engine -------------------------------------------------------------------

    def _load_key(self) -> str:
        return json.dumps(
            {
                "class": "VLLM",
                "model_name": str(self.model_name),
                "identity": self.identity(),
                "tensor_parallel_size": self.tensor_parallel_size,
                "gpu_memory_utilization": self.gpu_memory_utilization,
            },
            sort_keys=True,
        )

    @property
    def engine(self) -> Any:
        def load() -> Any:
            from vllm import LLM as Engine

            options: dict[str, Any] = dict(self.kwargs)
            if self.dtype is not None:
                options["dtype"] = str(self.dtype).removeprefix("torch.")
            if self.quantization is not None:
                options["quantization"] = self.quantization
            if self.max_model_len is not None:
                options["max_model_len"] = self.max_model_len
            if self.devices:
                # vLLM uses the GPUs it sees: show it the ones named by ``device``.
                os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(d) for d in self.devices)
            return Engine(
                model=str(self.model_name),
                swap_space=self.swap_space,
                revision=self.revision,
                trust_remote_code=self.trust_remote_code,
                tensor_parallel_size=self.tensor_parallel_size,
                gpu_memory_utilization=self.gpu_memory_utilization,
                **options,
            )

        return loaded_models.get_or_load(self._load_key(), load)

    def unload_model(self) -> None:
        if not isinstance(self.model_name, str):
            return  # deferred (a trainer's model_path): nothing was loaded under this declaration
        loaded_models.unload(self._load_key())
        self._formatter().unload_model()

    def _open_stream(self, params: dict, batch_size: int) -> BatchStream:
        self.engine  # noqa: B018 - start the engine before the first batch

        def run_batch(requests: list[GenerationRequest]) -> list[GenerationResult]:
            return self._run_batch(requests, params)

        # vLLM schedules what it is given itself: hand it whole groups.
        return BatchStream(run_batch, batch_size * 4, group_batches=1)

    def _run_batch(self, requests: list[GenerationRequest], params: dict) -> list[GenerationResult]:
        from vllm import SamplingParams

        greedy = self.is_greedy(params)
        context = self._context_length() or self.ASSUMED_CONTEXT_LENGTH
        sampling = []
        for request in requests:
            options: dict[str, Any] = dict(params["kwargs"])
            options.update(
                n=params["n"],
                temperature=0.0 if greedy else params["temperature"],
                top_p=1.0 if greedy else params["top_p"],
                max_tokens=params["max_new_tokens"] or max(1, context - request.prompt_tokens),
                seed=request.seed % (2**63),
            )
            if params["stop"]:
                options["stop"] = params["stop"]
            if params["repetition_penalty"] is not None:
                options["repetition_penalty"] = params["repetition_penalty"]
            if params["logit_bias"]:
                options["logit_bias"] = {int(t): b for t, b in params["logit_bias"].items()}
            sampling.append(SamplingParams(**options))
        outputs = self.engine.generate([request.text for request in requests], sampling, use_tqdm=False)
        results = []
        for output in outputs:
            texts = [self._apply_stop(choice.text, params["stop"]) for choice in output.outputs]
            completion = sum(len(choice.token_ids) for choice in output.outputs)
            results.append(GenerationResult(texts, len(output.prompt_token_ids or []), completion))
        return results


def _gpu_index(device: Any) -> int:
    """``0`` / ``"cuda:1"`` / ``torch.device("cuda", 2)`` -> the GPU's index."""
    if isinstance(device, int):
        return device
    index = None if isinstance(device, str) else getattr(device, "index", None)
    if isinstance(index, int):
        return index
    text = str(device)
    if text.startswith("cuda:") and text[5:].isdigit():
        return int(text[5:])
    raise ValueError(f"VLLM: device must name a GPU (0, 'cuda:1', ...) or a list of them, got {device!r}.")
