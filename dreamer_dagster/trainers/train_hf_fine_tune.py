"""``TrainHFFineTune``: supervised fine-tuning of a causal or seq2seq language model."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from .base import TrainingRun
from .hf_base import HFTrainer
from .input_output import InputOutputTraining

__all__ = ["AUTO", "TrainHFFineTune", "validate_chat_args"]

#: ``chat_prompt_template`` / ``system_prompt`` default: the model's own chat
#: template when it has one (a chat model), the plain input otherwise.
AUTO = "auto"


class TrainHFFineTune(InputOutputTraining, HFTrainer):
    """Fine-tunes a causal LM (SFT through TRL's ``SFTTrainer``, loss on the output
    only) or a seq2seq LM (``Seq2SeqTrainer``) to map ``train_input`` to ``train_output``.

    Inputs are formatted as prompts: with ``chat_prompt_template=AUTO`` a chat
    model's own chat template (with ``system_prompt`` as the system message
    when given), with a string the template's ``{{prompt}}`` and
    ``{{system_prompt}}`` filled in (and saved as the tokenizer's chat
    template), with None the bare input. Writes ``_model``: the model (or its
    LoRA adapter), the tokenizer, ``training_args.json``, ``seed.json``, the
    model card and ``dreamer_trainer.json`` (``task``: ``causal_lm`` or
    ``seq2seq_lm``). Per-epoch metrics: training loss, validation loss and
    perplexity.
    """

    MODEL_ARGS: ClassVar[Mapping[str, Any]] = {
        **HFTrainer.MODEL_ARGS,
        "chat_prompt_template": AUTO,
        "system_prompt": AUTO,
    }
    TRAIN_ARGS: ClassVar[Mapping[str, Any]] = {**HFTrainer.TRAIN_ARGS, "truncate": True, "max_length": None}
    QUANTIZABLE: ClassVar[bool] = True

    def __init__(
        self,
        name: str,
        model_name: Any,
        chat_prompt_template: str | None = AUTO,
        system_prompt: str | None = AUTO,
        revision: str | None = None,
        trust_remote_code: bool = False,
        device: Any = None,
        dtype: Any = None,
        quantization_config: Any = None,
        peft_config: Any = None,
        distributed_config: dict | None = None,
        fsdp: bool | str | list[str] = True,
        fsdp_config: dict | None = None,
        force: bool = False,
        verbose: bool | None = None,
        log_level: int | None = None,
        **kwargs: Any,
    ):
        super().__init__(
            name,
            model_name=model_name,
            chat_prompt_template=chat_prompt_template,
            system_prompt=system_prompt,
            revision=revision,
            trust_remote_code=trust_remote_code,
            device=device,
            dtype=dtype,
            quantization_config=quantization_config,
            peft_config=peft_config,
            distributed_config=distributed_config,
            fsdp=fsdp,
            fsdp_config=fsdp_config,
            force=force,
            verbose=verbose,
            log_level=log_level,
            **kwargs,
        )

    def validate_model_args(self) -> None:
        super().validate_model_args()
        validate_chat_args(self)

    # -- run time -------------------------------------------------------------------

    def derived_metrics(self, metrics: Mapping[str, Any]) -> dict:
        loss = metrics.get("eval_loss")
        if isinstance(loss, (int, float)) and loss < 50:
            return {"eval_perplexity": math.exp(loss)}
        return {}

    def train_model(self, run: TrainingRun) -> dict:
        tokenizer = self.load_tokenizer(run)
        config = self.load_config(run)
        seq2seq = bool(getattr(config, "is_encoder_decoder", False))
        prompt = self.prompt_formatter(run, tokenizer, seq2seq)
        max_length = self.max_length(run, tokenizer)
        info = {
            "task": "seq2seq_lm" if seq2seq else "causal_lm",
            "chat_prompt_template": run.args.get("chat_prompt_template"),
            "system_prompt": run.args.get("system_prompt"),
        }
        if seq2seq:
            trainer = self._seq2seq_trainer(run, tokenizer, prompt, max_length)
        else:
            trainer = self._causal_trainer(run, tokenizer, prompt, max_length)
        results = self.fit(run, trainer)
        if seq2seq is False and getattr(trainer.model, "generation_config", None) is not None:
            trainer.model.generation_config.pad_token_id = tokenizer.pad_token_id
        self.save(run, trainer, tokenizer, info)
        return results

    def max_length(self, run: TrainingRun, tokenizer: Any) -> int | None:
        if run.args.get("max_length"):
            return int(run.args["max_length"])
        if not run.args.get("truncate", True):
            return None
        return min(int(getattr(tokenizer, "model_max_length", 1024) or 1024), 2048)

    def prompt_formatter(self, run: TrainingRun, tokenizer: Any, seq2seq: bool) -> Callable[[str], str]:
        """Input text -> the prompt the model is trained on (and the tokenizer's chat template)."""
        template = run.args.get("chat_prompt_template")
        system = run.args.get("system_prompt")
        system = None if system == AUTO else system
        if isinstance(template, str) and template != AUTO:
            tokenizer.chat_template = chat_template_from_prompt_template(template, system or "")

            def from_template(text: str) -> str:
                return template.replace("{{system_prompt}}", system or "").replace("{{prompt}}", text)

            return from_template
        if template == AUTO and not seq2seq and getattr(tokenizer, "chat_template", None):

            def from_chat_template(text: str) -> str:
                messages = ([{"role": "system", "content": system}] if system else []) + [
                    {"role": "user", "content": text}
                ]
                return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

            return from_chat_template
        return str

    def _causal_trainer(self, run: TrainingRun, tokenizer: Any, prompt: Callable, max_length: Any) -> Any:
        from transformers import AutoModelForCausalLM
        from trl import SFTConfig, SFTTrainer

        def to_pairs(row: dict) -> dict:
            return {"prompt": prompt(str(row["input"])), "completion": str(row["output"])}

        data = {}
        for split in ("train", "validation"):
            dataset = run.split(split)
            if dataset is not None:
                data[split] = dataset.map(to_pairs, remove_columns=dataset.column_names)
        model = self.load_model(run, AutoModelForCausalLM, task_type="CAUSAL_LM")
        args = self.training_arguments(
            run, args_cls=SFTConfig, max_length=max_length, completion_only_loss=True, packing=False
        )
        return SFTTrainer(
            model=model,
            args=args,
            train_dataset=data["train"],
            eval_dataset=data.get("validation"),
            processing_class=tokenizer,
            callbacks=self.callbacks(run),
        )

    def _seq2seq_trainer(self, run: TrainingRun, tokenizer: Any, prompt: Callable, max_length: Any) -> Any:
        from transformers import (
            AutoModelForSeq2SeqLM,
            DataCollatorForSeq2Seq,
            Seq2SeqTrainer,
            Seq2SeqTrainingArguments,
        )

        truncate = max_length is not None

        def tokenize(batch: dict) -> dict:
            prompts = [prompt(str(text)) for text in batch["input"]]
            encoded = tokenizer(prompts, truncation=truncate, max_length=max_length)
            targets = tokenizer(
                text_target=[str(t) for t in batch["output"]], truncation=truncate, max_length=max_length
            )
            encoded["labels"] = targets["input_ids"]
            return dict(encoded)

        data = {}
        for split in ("train", "validation"):
            dataset = run.split(split)
            if dataset is not None:
                data[split] = dataset.map(tokenize, batched=True, remove_columns=dataset.column_names)
        model = self.load_model(run, AutoModelForSeq2SeqLM, task_type="SEQ_2_SEQ_LM")
        args = self.training_arguments(run, args_cls=Seq2SeqTrainingArguments)
        return Seq2SeqTrainer(
            model=model,
            args=args,
            train_dataset=data["train"],
            eval_dataset=data.get("validation"),
            processing_class=tokenizer,
            data_collator=DataCollatorForSeq2Seq(tokenizer, model=model),
            callbacks=self.callbacks(run),
        )

    def usage_snippet(self, run: TrainingRun, info: dict) -> str:
        path = str(run.checkpoints_dir.parent / "_model")
        seq2seq = info.get("task") == "seq2seq_lm"
        auto = "AutoModelForSeq2SeqLM" if seq2seq else "AutoModelForCausalLM"
        lines = ["from transformers import AutoTokenizer"]
        if info.get("adapter"):
            peft_auto = "AutoPeftModelForSeq2SeqLM" if seq2seq else "AutoPeftModelForCausalLM"
            lines += [
                f"from peft import {peft_auto}",
                "",
                f"model = {peft_auto}.from_pretrained({path!r})  # base model + adapter",
            ]
        else:
            lines += [f"from transformers import {auto}", "", f"model = {auto}.from_pretrained({path!r})"]
        lines += [f"tokenizer = AutoTokenizer.from_pretrained({path!r})"]
        if not seq2seq:
            lines.append("tokenizer.padding_side = 'left'")
        if info.get("chat_prompt_template") not in (None,) and not seq2seq:
            lines += [
                "prompt = tokenizer.apply_chat_template(",
                "    [{'role': 'user', 'content': 'Your input'}], tokenize=False, add_generation_prompt=True",
                ")",
            ]
        else:
            lines.append("prompt = 'Your input'")
        lines += [
            "inputs = tokenizer(prompt, return_tensors='pt')",
            "outputs = model.generate(**inputs, max_new_tokens=64)",
            "",
            "# In a dreamer_dagster pipeline: HFTransformers(trainer) generates with it.",
        ]
        return "\n".join(lines)


def chat_template_from_prompt_template(template: str, system_prompt: str) -> str:
    """A Jinja chat template that renders a user message the way ``template`` does.

    ``{{prompt}}`` becomes the last user message, ``{{system_prompt}}`` the
    system message (``system_prompt`` when there is none); assistant messages
    follow, each ending in the EOS token.
    """

    def literal(text: str) -> str:
        return "{{ " + json.dumps(text) + " }}" if text else ""

    def render(part: str) -> str:
        pieces = part.split("{{system_prompt}}")
        return "{{ ns.system }}".join(literal(piece) for piece in pieces)

    before, after = template.split("{{prompt}}", 1)
    return (
        "{%- set ns = namespace(system=" + json.dumps(system_prompt) + ") -%}"
        "{%- for message in messages -%}"
        "{%- if message['role'] == 'system' -%}{%- set ns.system = message['content'] -%}"
        "{%- elif message['role'] == 'user' -%}"
        + render(before)
        + "{{ message['content'] }}"
        + render(after)
        + "{%- elif message['role'] == 'assistant' -%}{{ message['content'] }}{{ eos_token }}"
        "{%- endif -%}{%- endfor -%}"
    )


def validate_chat_args(trainer: HFTrainer) -> None:
    """Check ``chat_prompt_template`` and ``system_prompt`` (trainers that format chats)."""
    template = trainer._model_args["chat_prompt_template"]
    if template not in (None, AUTO) and (not isinstance(template, str) or "{{prompt}}" not in template):
        raise trainer.error(
            "a chat prompt template must be a string holding '{{prompt}}' (and optionally "
            "'{{system_prompt}}'), 'auto' for the model's own chat template, or None.",
            "chat_prompt_template",
        )
    system = trainer._model_args["system_prompt"]
    if system is not None and not isinstance(system, str):
        raise trainer.error("must be a string, 'auto' or None.", "system_prompt")
