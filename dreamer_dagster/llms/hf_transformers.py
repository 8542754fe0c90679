"""Local generation with Hugging Face transformers."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..fingerprint import canonical
from ..model import dtype_name
from ..model_info import HubModelInfo
from . import loaded_models
from .batch_stream import BatchStream
from .cpu_linear import few_row_linears
from .cpu_threads import cpu_lanes, lane_threads, tuned_threads
from .generation_result import GenerationResult
from .llm import DEFAULT_BATCH_SIZE, LLM
from .prefix_cache import with_shared_prefix
from .request import GenerationRequest
from .seeded_sampler import SeededSampler

__all__ = ["HFTransformers"]

#: A fast tokenizer refuses a call while another thread's call holds it ("Already
#: borrowed"): batches generating side by side take turns to encode and decode.
_TOKENIZER_LOCK = threading.Lock()


class HFTransformers(HubModelInfo, LLM):
    """A causal (or encoder-decoder) language model run with transformers ``generate``.

    ``model_name`` is a hub name, a local folder, or a trainer step (its
    ``_model`` folder, which adds the dependency edge); ``adapter_name`` is a
    PEFT adapter (a hub name, a folder, a trainer or a deferred path). Chat
    models get their tokenizer's chat template (with ``system_prompt``) unless
    ``chat_prompt_template`` (``{{system_prompt}}``, ``{{prompt}}``) is given.
    Batches are left-padded and length-sorted; greedy when ``temperature`` or
    ``top_p`` is 0, otherwise sampled with a seed per prompt, so results do not
    depend on ``batch_size``. A batch's shared prompt prefix is prefilled once
    (``prefix_cache``); on the CPU, torch's thread count follows the measured
    decoding speed (``cpu_threads``) and linear layers multiply a decoding step's few
    rows in their weight's layout (``cpu_linear``), and two waiting batches generate side
    by side on a share of the threads each (``cpu_threads.cpu_lanes``): the same tokens,
    sooner. Loaded weights are shared in the process by load
    identity and freed by ``unload_model()``. Writes generations to the model cache.
    """

    KINDS = ("huggingface",)

    def __init__(
        self,
        model_name: Any,
        chat_prompt_template: str | None = None,
        system_prompt: str | None = None,
        revision: str | None = None,
        trust_remote_code: bool = False,
        device: Any = None,
        device_map: Any = None,
        dtype: Any = None,
        quantization_config: Any = None,
        adapter_name: Any = None,
        adapter_kwargs: dict | None = None,
        cache_folder_path: str | None = None,
        **kwargs: Any,
    ):
        for name, value in (("chat_prompt_template", chat_prompt_template), ("system_prompt", system_prompt)):
            if value is not None and not isinstance(value, str):
                raise TypeError(
                    f"HFTransformers: {name} must be a string, got {type(value).__name__} "
                    "(DataDreamer's order: HFTransformers(model_name, chat_prompt_template, system_prompt, "
                    "revision, ...))."
                )
        if adapter_kwargs is not None and adapter_name is None:
            raise ValueError("HFTransformers: adapter_kwargs needs an adapter_name. Fix: pass adapter_name=.")
        super().__init__(model_name, system_prompt=system_prompt, chat_prompt_template=chat_prompt_template)
        self.revision = revision
        self.trust_remote_code = trust_remote_code
        self.device = device
        self.device_map = device_map
        self.dtype = dtype
        self.quantization_config = quantization_config
        self.adapter_name = adapter_name
        self.adapter_kwargs = dict(adapter_kwargs) if adapter_kwargs else None
        self.cache_folder_path = cache_folder_path
        self.kwargs = kwargs
        for name, value in (("model_name", model_name), ("adapter_name", adapter_name)):
            if looks_like_missing_path(value):
                raise ValueError(
                    f"HFTransformers: {name}={value!r} is a local path, and there is no folder "
                    f"{str(Path(value).expanduser().resolve())!r}. Fix: pass an existing folder (relative "
                    "paths are read from the working directory) or a model name."
                )
        # Where the weights are read from when not from ``model_name`` (the embedded
        # default model): a callable giving a local folder, outside the identity.
        self._weights_folder: Any = None

    def run(  # type: ignore[override]
        self,
        prompts: Iterable[str],
        max_new_tokens: int | None = None,
        temperature: float = 1.0,
        top_p: float = 0.0,
        n: int = 1,
        stop: str | list[str] | None = None,
        repetition_penalty: float | None = None,
        logit_bias: dict[int, float] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        batch_scheduler_buffer_size: int | None = None,
        adaptive_batch_size: bool = True,
        seed: int | None = None,
        progress_interval: int | None = 60,
        force: bool = False,
        cache_only: bool = False,
        verbose: bool | None = None,
        log_level: int | None = None,
        total_num_prompts: int | None = None,
        return_generator: bool = False,
        **kwargs: Any,
    ) -> Any:
        """:meth:`LLM.run` with DataDreamer's local-model default ``adaptive_batch_size=True``
        (a batch is halved on out-of-memory either way)."""
        return super().run(
            prompts, max_new_tokens, temperature, top_p, n, stop, repetition_penalty, logit_bias,
            batch_size, batch_scheduler_buffer_size, adaptive_batch_size, seed, progress_interval,
            force, cache_only, verbose, log_level, total_num_prompts, return_generator, **kwargs,
        )  # fmt: skip

    # -- identity ---------------------------------------------------------------------

    def identity(self) -> dict:
        return {
            "model_name": canonical(self.model_name),
            "revision": self.revision,
            "dtype": dtype_name(self.dtype),
            "quantization_config": _config_identity(self.quantization_config),
            "adapter_name": canonical(self.adapter_name),
            **({"adapter_kwargs": canonical(self.adapter_kwargs)} if self.adapter_kwargs else {}),
            "system_prompt": self.system_prompt,
            "chat_prompt_template": self.chat_prompt_template,
            "trust_remote_code": self.trust_remote_code,
            "kwargs": canonical(self.kwargs),
        }

    # -- loading ----------------------------------------------------------------------

    def _load_key(self, part: str) -> str:
        fields: dict[str, Any] = {
            "class": "HFTransformers",
            "part": part,
            "model_name": str(self._source()),
            "revision": self.revision,
            "trust_remote_code": self.trust_remote_code,
        }
        if part == "model":
            fields.update(
                device=str(self.device),
                device_map=canonical(self.device_map),
                dtype=dtype_name(self.dtype),
                quantization_config=_config_identity(self.quantization_config),
                adapter_name=str(self.adapter_name),
                adapter_kwargs=canonical(self.adapter_kwargs),
                kwargs=canonical(self.kwargs),
            )
        return json.dumps(fields, sort_keys=True)

    def _require_resolved(self) -> None:
        for name in ("model_name", "adapter_name"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise RuntimeError(
                    f"HFTransformers.{name} is {value!r}, resolved only when a step runs "
                    "(context.model(llm)); it cannot be loaded while declaring."
                )

    def _source(self) -> Any:
        return self._weights_folder() if self._weights_folder is not None else self.model_name

    def _source_revision(self) -> str | None:
        return None if self._weights_folder is not None else self.revision

    @property
    def config(self) -> Any:
        self._require_resolved()

        def load() -> Any:
            from transformers import AutoConfig

            return AutoConfig.from_pretrained(
                self._source(), revision=self._source_revision(), trust_remote_code=self.trust_remote_code
            )

        return loaded_models.get_or_load(self._load_key("config"), load)

    @property
    def tokenizer(self) -> Any:
        self._require_resolved()

        def load() -> Any:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(
                self._source(), revision=self._source_revision(), trust_remote_code=self.trust_remote_code
            )
            tokenizer.padding_side = "right" if self.config.is_encoder_decoder else "left"
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            return tokenizer

        return loaded_models.get_or_load(self._load_key("tokenizer"), load)

    @property
    def model(self) -> Any:
        self._require_resolved()
        return loaded_models.get_or_load(self._load_key("model"), self._load_model)

    def _load_model(self) -> Any:
        import torch
        import transformers

        kwargs: dict[str, Any] = dict(self.kwargs)
        kwargs.update(revision=self._source_revision(), trust_remote_code=self.trust_remote_code)
        if self.dtype is not None:
            kwargs["dtype"] = _torch_dtype(self.dtype)
        if self.quantization_config is not None:
            kwargs["quantization_config"] = self.quantization_config
        if self.device_map is not None:
            kwargs["device_map"] = self.device_map
        auto = (
            transformers.AutoModelForSeq2SeqLM
            if self.config.is_encoder_decoder
            else transformers.AutoModelForCausalLM
        )
        model = auto.from_pretrained(self._source(), **kwargs)
        if self.adapter_name is not None:
            from peft import PeftModel

            try:
                model = PeftModel.from_pretrained(model, self.adapter_name, **(self.adapter_kwargs or {}))
            except (RuntimeError, ValueError, KeyError) as error:
                raise ValueError(
                    f"HFTransformers({self.model_name!r}): the adapter {self.adapter_name!r} does not fit "
                    f"this model; it was made for {_adapter_base_name(self.adapter_name)!r}. Fix: pass "
                    f"that base model as model_name, or an adapter trained on this one. ({error})"
                ) from error
        if self.device_map is None and self.quantization_config is None:
            model = model.to(self._device(torch))
        model.eval()
        return model

    def _device(self, torch: Any) -> Any:
        if self.device is None:
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if isinstance(self.device, int):
            return torch.device("cpu" if self.device < 0 else f"cuda:{self.device}")
        return torch.device(self.device)

    def unload_model(self) -> None:
        if any(v is not None and not isinstance(v, str) for v in (self.model_name, self.adapter_name)):
            return  # deferred (a trainer's model_path): nothing was loaded under this declaration
        for part in ("model", "tokenizer", "config"):
            loaded_models.unload(self._load_key(part))

    # -- tokens and prompts -------------------------------------------------------------

    def count_tokens(self, value: str) -> int:
        return len(self.tokenizer(value, add_special_tokens=False)["input_ids"])

    def _uses_tokenizer_template(self) -> bool:
        return not self.chat_prompt_template and bool(getattr(self.tokenizer, "chat_template", None))

    def _format_text(self, prompt: str) -> str:
        if self.chat_prompt_template:
            return super()._format_text(prompt)
        if self._uses_tokenizer_template():
            messages = [{"role": "user", "content": prompt}]
            if self.system_prompt is not None:
                messages.insert(0, {"role": "system", "content": self.system_prompt})
            try:
                return self.tokenizer.apply_chat_template(
                    messages, tokenize=False, add_generation_prompt=True
                )
            except Exception as error:  # a jinja TemplateError, or whatever the template raises
                raise ValueError(
                    f"HFTransformers({self.model_name!r}): the tokenizer's chat template failed to render "
                    f"({type(error).__name__}: {error})"
                    + (" with a system prompt" if self.system_prompt is not None else "")
                    + ". Fix: pass chat_prompt_template='...{{prompt}}...' to use your own template"
                    + (", or drop system_prompt" if self.system_prompt is not None else "")
                    + "."
                ) from error
        return f"{self.system_prompt}\n\n{prompt}" if self.system_prompt else prompt

    def _count_text_tokens(self, text: str) -> int:
        # A chat template writes its own special tokens; a raw prompt gets the tokenizer's.
        special = not self._uses_tokenizer_template()
        return len(self.tokenizer(text, add_special_tokens=special)["input_ids"])

    def _context_length(self) -> int | None:
        config = self.config
        if config.is_encoder_decoder:
            config = getattr(config, "get_text_config", lambda **_: config)()
        for name in ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "n_ctx"):
            value = getattr(config, name, None)
            if isinstance(value, int) and value > 0:
                return value
        limit = getattr(self.tokenizer, "model_max_length", None)
        return limit if isinstance(limit, int) and 0 < limit < 1_000_000 else None

    def cache_name(self) -> str:
        declared = self.fingerprint_identity().get("model_name")
        name = declared if isinstance(declared, str) else "trained"
        return f"HFTransformers-{_short_name(name)}-{self.model_fingerprint}"

    # -- generation -------------------------------------------------------------------

    def _open_stream(self, params: dict, batch_size: int) -> BatchStream:
        model = self.model  # load before the first batch, outside its timing
        self.tokenizer  # noqa: B018 - likewise, and before batches run side by side

        def run_batch(requests: list[GenerationRequest]) -> list[GenerationResult]:
            return self._run_batch(requests, params)

        return BatchStream(
            run_batch,
            batch_size,
            is_out_of_memory=_is_out_of_memory,
            on_out_of_memory=_free,
            lanes=cpu_lanes(model),
            lane=lane_threads,
        )

    def _run_batch(self, requests: list[GenerationRequest], params: dict) -> list[GenerationResult]:
        import torch

        model, tokenizer = self.model, self.tokenizer
        n = params["n"]
        greedy = self.is_greedy(params)
        with _TOKENIZER_LOCK:
            encoded = tokenizer(
                [request.text for request in requests],
                return_tensors="pt",
                padding=True,
                add_special_tokens=not self._uses_tokenizer_template(),
            ).to(model.device)
        max_new_tokens = params["max_new_tokens"]
        if max_new_tokens is None:
            context = self._context_length() or self.ASSUMED_CONTEXT_LENGTH
            max_new_tokens = max(1, context - encoded["input_ids"].shape[1])
        extra = dict(params["kwargs"])
        top_k = extra.pop("top_k", None)
        generate_kwargs: dict[str, Any] = {
            "max_new_tokens": max_new_tokens,
            "do_sample": False,
            "pad_token_id": tokenizer.pad_token_id,
            **extra,
        }
        if params["repetition_penalty"] is not None:
            generate_kwargs["repetition_penalty"] = params["repetition_penalty"]
        if params["logit_bias"]:
            generate_kwargs["sequence_bias"] = {(int(t),): b for t, b in params["logit_bias"].items()}
        if params["stop"]:
            generate_kwargs.update(stop_strings=params["stop"], tokenizer=tokenizer)
        rows = n
        if not greedy:
            seeds = [_row_seed(request.seed, j) for request in requests for j in range(n)]
            sampler = SeededSampler(seeds, params["temperature"], params["top_p"], top_k)
            generate_kwargs["logits_processor"] = [sampler]
            if n > 1:
                # generate() refuses num_return_sequences without its own sampling: repeat rows.
                encoded = {name: tensor.repeat_interleave(n, dim=0) for name, tensor in encoded.items()}
        else:
            rows = 1  # greedy answers are identical: generate one, repeat it n times
        with torch.inference_mode(), tuned_threads(model), few_row_linears(model):
            inputs = with_shared_prefix(model, encoded, generate_kwargs) or encoded
            output = model.generate(**inputs, **generate_kwargs)
        if not model.config.is_encoder_decoder:
            output = output[:, inputs["input_ids"].shape[1] :]
        with _TOKENIZER_LOCK:
            texts = tokenizer.batch_decode(output, skip_special_tokens=True)
        lengths = _generated_lengths(output, tokenizer)
        results = []
        for i, request in enumerate(requests):
            row_texts = [self._apply_stop(texts[i * rows + j], params["stop"]) for j in range(rows)]
            completion = sum(lengths[i * rows : (i + 1) * rows])
            if rows == 1 and n > 1:
                row_texts, completion = row_texts * n, completion * n
            results.append(GenerationResult(row_texts, request.prompt_tokens, completion))
        return results


def looks_like_missing_path(value: Any) -> bool:
    """A string that is clearly a local path (``/``, ``./``, ``../``, ``~``) naming nothing."""
    if not isinstance(value, (str, Path)):
        return False
    text = str(value)
    is_path = isinstance(value, Path) or text.startswith(("/", "./", "../", "~"))
    return is_path and not Path(text).expanduser().exists()


def _adapter_base_name(adapter: Any) -> str:
    try:
        with open(Path(str(adapter)) / "adapter_config.json") as handle:
            return str(json.load(handle).get("base_model_name_or_path") or "another model")
    except (OSError, ValueError):
        return "another model"


def _row_seed(seed: int, sample: int) -> int:
    return (seed * 1_000_003 + sample) % (2**63)


def _generated_lengths(output: Any, tokenizer: Any) -> list[int]:
    """Tokens each row generated, up to and including its end-of-sequence token."""
    ends = {tokenizer.eos_token_id, tokenizer.pad_token_id} - {None}
    lengths = []
    for row in output.tolist():
        length = len(row)
        for position, token in enumerate(row):
            if token in ends:
                length = position + 1
                break
        lengths.append(length)
    return lengths


def _is_out_of_memory(error: BaseException) -> bool:
    import torch

    return isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in str(error).lower()


def _free() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _torch_dtype(dtype: Any) -> Any:
    import torch

    if isinstance(dtype, str) and dtype != "auto":
        return getattr(torch, dtype.removeprefix("torch."))
    return dtype


def _config_identity(config: Any) -> Any:
    if config is None:
        return None
    if hasattr(config, "to_dict"):
        return canonical(json.loads(json.dumps(config.to_dict(), default=str)))
    return canonical(config)


def _short_name(name: str) -> str:
    import re

    tail = name.rstrip("/").split("/")[-1]
    return re.sub(r"[^A-Za-z0-9._-]+", "-", tail)[:60].strip("-") or "model"
