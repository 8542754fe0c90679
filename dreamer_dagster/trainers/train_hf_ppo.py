"""``TrainHFPPO``: DataDreamer's RL trainer, Proximal Policy Optimization (see :mod:`.ppo_loop`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from ..citations import HF_TRANSFORMERS_CITATION, PEFT_CITATION, RLHF_CITATION, TRL_CITATION
from ..deferred import ColumnRef, Deferred
from ..steps.step import REQUIRED, Step
from ..steps.user_code import user_code_error
from .base import MODEL_DIR_INFO, TrainingRun
from .train_hf_fine_tune import AUTO, TrainHFFineTune
from .train_hf_reward_model import TrainHFRewardModel, load_reward_model

__all__ = ["PPO_CITATION", "PPO_KWARGS", "TrainHFPPO"]

PPO_CITATION = """@article{schulman2017proximal,
  title={Proximal policy optimization algorithms},
  author={Schulman, John and Wolski, Filip and Dhariwal, Prafulla and Radford, Alec and Klimov, Oleg},
  journal={arXiv preprint arXiv:1707.06347},
  year={2017}
}"""

#: TRL 0.7 ``PPOConfig`` fields ``train(**kwargs)`` takes, with DataDreamer's defaults.
PPO_KWARGS: dict[str, Any] = {
    "ppo_epochs": 4,
    "mini_batch_size": None,  # the batch size
    "use_score_scaling": True,
    "use_score_norm": False,
    "score_clip": None,
    "gamma": 1.0,
    "lam": 0.95,
    "cliprange": 0.2,
    "cliprange_value": 0.2,
    "vf_coef": 0.1,
    "kl_penalty": "kl",
    "whiten_rewards": False,
    "ratio_threshold": 10.0,
    "horizon": None,  # len(train_prompts) * epochs with adaptive KL control, else 10000
}
#: ``train(**kwargs)`` that are training settings, not PPO's.
_LOOP_KWARGS = {"max_steps": None, "early_stopping_patience": 5, "early_stopping_threshold": 0.0}


class TrainHFPPO(TrainHFFineTune):
    """Aligns a causal LM to a reward with Proximal Policy Optimization, as DataDreamer's
    ``TrainHFPPO`` (TRL 0.7's ``PPOTrainer``; TRL 1.x has none, so the loop is here).

    Each step samples a response to ``batch_size`` prompts (``generation_kwargs`` over
    DataDreamer's ``top_k=50``, ``temperature``, ``top_p``, ``max_new_tokens`` or a
    ``length_sampler()``), scores prompt + response with ``reward_model`` and runs
    ``ppo_epochs`` (4) passes of clipped PPO on the policy and a value head, with a KL
    penalty against the frozen reference (the base model with the LoRA adapter off, or a
    frozen copy) whose coefficient starts at ``init_kl_coef`` and, with ``adap_kl_ctrl``,
    moves toward ``adap_kl_target``; training stops once the KL passes ``max_kl``
    (``"auto"``: 1.5 x the target with adaptive control). ``reward_model`` is a
    :class:`TrainHFRewardModel` trainer (the dependency edge), its ``model_path``, a reward
    model's name or folder, or a function ``f(texts) -> scores`` where each text is a prompt
    (as given) joined to its response. With ``validation_prompts`` each epoch ends with a
    greedy evaluation (``eval_rewards``), the best epoch's weights are kept and training
    stops early after ``early_stopping_patience`` epochs without improvement. ``kwargs``:
    TRL 0.7 ``PPOConfig`` fields (:data:`PPO_KWARGS`), ``max_steps``,
    ``early_stopping_patience``, ``early_stopping_threshold``. Writes ``_model`` (the
    model or its LoRA adapter, the tokenizer, ``ppo_config.json``, ``seed.json``,
    ``dreamer_trainer.json`` with ``task``: ``causal_lm``); the value head is dropped.
    """

    INPUTS: ClassVar[Mapping[str, bool]] = {"train_prompts": True, "validation_prompts": False}
    TRAIN_ARGS: ClassVar[Mapping[str, Any]] = {
        "reward_model": REQUIRED,
        "reward_model_tokenizer": None,
        "max_new_tokens": None,
        "temperature": 1.0,
        "top_p": 1.0,
        "generation_kwargs": None,
        "truncate": True,
        "epochs": 3.0,
        "batch_size": 8,
        "optimizer": None,
        "learning_rate": 1e-5,
        "weight_decay": 0.01,
        "lr_scheduler": None,
        "seed": 42,
        "length_sampler": None,
        "init_kl_coef": 0.2,
        "adap_kl_ctrl": True,
        "adap_kl_target": 6.0,
        "max_kl": AUTO,
        **_LOOP_KWARGS,
        "ppo_kwargs": None,
        "training_kwargs": None,
        "callbacks": None,
    }
    BEST_METRIC: ClassVar[str] = "eval_rewards"
    GREATER_IS_BETTER: ClassVar[bool] = True

    def train(  # type: ignore[override]
        self,
        train_prompts: ColumnRef,
        validation_prompts: ColumnRef | None = None,
        reward_model: Any = None,
        reward_model_tokenizer: Any = None,
        max_new_tokens: int | None = None,
        temperature: float = 1.0,
        top_p: float = 1.0,
        generation_kwargs: dict | None = None,
        truncate: bool = True,
        epochs: float = 3.0,
        batch_size: int = 8,
        optimizer: Any = None,
        learning_rate: float = 1e-5,
        weight_decay: float = 0.01,
        lr_scheduler: Any = None,
        seed: int = 42,
        length_sampler: Callable[[], int] | None = None,
        init_kl_coef: float = 0.2,
        adap_kl_ctrl: bool = True,
        adap_kl_target: float = 6.0,
        max_kl: float | str | None = AUTO,
        **kwargs: Any,
    ) -> TrainHFPPO:
        """Declare the training (DataDreamer's signature); returns the trainer."""
        if reward_model is None:
            raise self.error(
                "a reward is required: a TrainHFRewardModel trainer, a reward model's name or folder, "
                "or a function f(texts) -> list[float].",
                "reward_model",
            )
        loop = {name: kwargs.pop(name, default) for name, default in _LOOP_KWARGS.items()}
        ppo = {name: kwargs.pop(name) for name in list(kwargs) if name in PPO_KWARGS}
        if kwargs:
            name = sorted(kwargs)[0]
            raise self.error(
                f"is not supported by TrainHFPPO. Fix: leave it out; train() takes DataDreamer's arguments, "
                f"the TRL 0.7 PPOConfig fields {sorted(PPO_KWARGS)} and {sorted(_LOOP_KWARGS)}.",
                name,
            )
        self.declare_training(
            inputs={"train_prompts": train_prompts, "validation_prompts": validation_prompts},
            args={
                "reward_model": reward_model,
                "reward_model_tokenizer": reward_model_tokenizer,
                "max_new_tokens": max_new_tokens,
                "temperature": temperature,
                "top_p": top_p,
                "generation_kwargs": generation_kwargs,
                "truncate": truncate,
                "epochs": epochs,
                "batch_size": batch_size,
                "optimizer": optimizer,
                "learning_rate": learning_rate,
                "weight_decay": weight_decay,
                "lr_scheduler": lr_scheduler,
                "seed": seed,
                "length_sampler": length_sampler,
                "init_kl_coef": init_kl_coef,
                "adap_kl_ctrl": adap_kl_ctrl,
                "adap_kl_target": adap_kl_target,
                "max_kl": max_kl,
                **loop,
                "ppo_kwargs": ppo or None,
            },
        )
        return self

    def validate(self) -> None:
        a = self.args
        reward = a["reward_model"]
        if isinstance(reward, Step) and not isinstance(reward, TrainHFRewardModel):
            raise self.error(f"{reward!r} is not a TrainHFRewardModel trainer.", "reward_model")
        if type(reward).__module__.split(".")[0] in ("torch", "transformers", "peft"):
            raise self.error(
                f"got a {type(reward).__name__} object, which cannot be fingerprinted. Fix: pass the reward "
                "model's folder or name (save_pretrained it first), or its TrainHFRewardModel trainer.",
                "reward_model",
            )
        if not isinstance(reward, (str, Path, Step, Deferred)) and not callable(reward):
            raise self.error(
                f"got {type(reward).__name__}; give a TrainHFRewardModel trainer, its model_path, a reward "
                "model's name or folder, or a function f(texts) -> list[float].",
                "reward_model",
            )
        if a["reward_model_tokenizer"] is not None:
            raise self.error(
                "the reward model's tokenizer is read from its folder here. Fix: leave it out and pass the "
                "reward model as a folder or name.",
                "reward_model_tokenizer",
            )
        for name, fix in (
            ("optimizer", "learning_rate= and weight_decay= (AdamW)"),
            ("lr_scheduler", "none"),
        ):
            if a[name] is not None and a[name] != AUTO:
                raise self.error(
                    f"an optimizer or scheduler object needs the model's parameters, which exist only at run "
                    f"time. Fix: leave it out (PPO uses {fix}).",
                    name,
                )
        generation = dict(a["generation_kwargs"] or {})
        if a["max_new_tokens"] is not None and (
            a["length_sampler"] is not None or {"max_length", "max_new_tokens"} & set(generation)
        ):
            raise self.error(
                "cannot be given with a length set through generation_kwargs or length_sampler.",
                "max_new_tokens",
            )
        if a["length_sampler"] is not None and not callable(a["length_sampler"]):
            raise self.error("must be a function with no arguments returning a length.", "length_sampler")
        if isinstance(self._model_args.get("device"), list):
            raise self.error("TrainHFPPO trains on one device. Fix: give one device.", "device")
        if a["callbacks"]:
            raise self.error("TrainHFPPO runs its own PPO loop, without HF Trainer callbacks.", "callbacks")
        if not isinstance(a["batch_size"], int) or a["batch_size"] < 1:
            raise self.error("must be a positive int.", "batch_size")
        ppo = {**PPO_KWARGS, **(a["ppo_kwargs"] or {})}
        if ppo["kl_penalty"] not in ("kl", "abs", "mse"):
            raise self.error("kl_penalty must be 'kl', 'abs' or 'mse'.", "kl_penalty")
        if a["max_kl"] is not None and a["max_kl"] != AUTO and not isinstance(a["max_kl"], (int, float)):
            raise self.error("must be a number, None (never stop) or 'auto'.", "max_kl")

    def citations(self) -> list[str]:
        citations = [HF_TRANSFORMERS_CITATION, TRL_CITATION, PPO_CITATION, RLHF_CITATION]
        if self._model_args.get("peft_config") is not None:
            citations.insert(1, PEFT_CITATION)
        return citations

    # -- run time -------------------------------------------------------------------

    def settings(self, run: TrainingRun, tokenizer: Any, train_rows: int) -> Any:
        """The :class:`~.ppo_loop.PPOSettings` of this run (DataDreamer's rules for the defaults)."""
        from .ppo_loop import PPOSettings

        a = run.args
        ppo = {**PPO_KWARGS, **(a["ppo_kwargs"] or {})}
        temperature, top_p = float(a["temperature"]), float(a["top_p"])
        generation: dict[str, Any] = {
            "top_k": 50,
            "temperature": temperature,
            "top_p": top_p,
            "do_sample": True,
        }
        if temperature == 0.0:  # DataDreamer's rule: no zero temperature; decode greedily
            generation = {"do_sample": False}
        given = dict(a["generation_kwargs"] or {})
        if a["length_sampler"] is None and not {"max_length", "max_new_tokens"} & set(given):
            if a["max_new_tokens"] is None:
                generation["max_length"] = int(tokenizer.model_max_length)
            else:
                generation["max_new_tokens"] = int(a["max_new_tokens"])
        generation.update(given)
        horizon = ppo.pop("horizon")
        if horizon is None:
            horizon = train_rows * float(a["epochs"]) if a["adap_kl_ctrl"] else 10000
        max_kl = a["max_kl"]
        if max_kl == AUTO:
            max_kl = float(a["adap_kl_target"]) * 1.5 if a["adap_kl_ctrl"] else None
        return PPOSettings(
            batch_size=int(a["batch_size"]),
            learning_rate=float(a["learning_rate"]),
            weight_decay=float(a["weight_decay"]),
            init_kl_coef=float(a["init_kl_coef"]),
            adap_kl_ctrl=bool(a["adap_kl_ctrl"]),
            target=float(a["adap_kl_target"]),
            horizon=float(horizon),
            max_kl=max_kl,
            seed=int(a["seed"]),
            generation_kwargs=generation,
            length_sampler=a["length_sampler"],
            **ppo,
        )

    def train_model(self, run: TrainingRun) -> dict:
        from transformers import AutoModelForCausalLM

        from .ppo_loop import PPOLoop

        tokenizer = self.load_tokenizer(run)
        if getattr(self.load_config(run), "is_encoder_decoder", False):
            raise ValueError(
                f"Trainer {run.step_name!r}: TrainHFPPO trains causal LMs, not encoder-decoders."
            )
        prompt = self.prompt_formatter(run, tokenizer, seq2seq=False)
        splits = {}
        for split in ("train", "validation"):
            dataset = run.split(split)
            if dataset is not None:
                raw = [str(text) for text in dataset["prompts"]]
                splits[split] = ([prompt(text) for text in raw], raw)
        settings = self.settings(run, tokenizer, len(splits["train"][0]))
        model = self.load_model(run, AutoModelForCausalLM, task_type="CAUSAL_LM")
        loop = PPOLoop(model, tokenizer, self.reward_function(run), settings, run.info)
        a = run.args
        results = loop.train(
            splits["train"],
            splits.get("validation"),
            float(a["epochs"]),
            max_steps=a.get("max_steps"),
            early_stopping_patience=a.get("early_stopping_patience"),
            early_stopping_threshold=float(a.get("early_stopping_threshold") or 0.0),
        )
        history = results.pop("history")
        self.save_policy(run, loop.model, tokenizer, settings, history)
        return results

    def reward_function(self, run: TrainingRun) -> Callable[[list[str], list[str]], list[float]]:
        """``reward(prompts, responses) -> scores`` for the resolved ``reward_model``: a function
        gets DataDreamer's texts (prompt + response); a model scores each pair as it was trained."""
        from .hf_base import HFTrainer

        reward = run.args["reward_model"]
        if callable(reward) and not isinstance(reward, (str, Path)):
            user_function = reward

            def texts_reward(prompts: list[str], responses: list[str]) -> list[float]:
                try:
                    scores = [float(x) for x in user_function([p + r for p, r in zip(prompts, responses)])]
                except Exception as error:
                    raise user_code_error(
                        (run.step_name, "TrainHFPPO"), "reward_model", None, error
                    ) from error
                if len(scores) != len(prompts):
                    raise ValueError(
                        f"Trainer {run.step_name!r}: reward_model returned {len(scores)} scores for "
                        f"{len(prompts)} texts. Fix: return one score a text."
                    )
                return scores

            return texts_reward
        return load_reward_model(str(reward), device=HFTrainer.run_device(run))

    def save_policy(self, run: TrainingRun, model: Any, tokenizer: Any, settings: Any, history: list) -> None:
        """The model (or its adapter) and tokenizer, ``ppo_config.json``, ``seed.json`` and the
        partial ``dreamer_trainer.json`` (the value head is not part of the trained model)."""
        import dataclasses

        if getattr(model, "generation_config", None) is not None:
            model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.save_pretrained(str(run.model_dir))
        tokenizer.padding_side = "right"
        tokenizer.save_pretrained(str(run.model_dir))
        config = {k: v for k, v in dataclasses.asdict(settings).items() if k != "length_sampler"}
        (run.model_dir / "ppo_config.json").write_text(json.dumps(config, indent=2, default=str))
        (run.model_dir / "ppo_log.json").write_text(json.dumps(history, indent=2))
        (run.model_dir / "seed.json").write_text(json.dumps(run.args.get("seed")))
        info = {
            "task": "causal_lm",
            "chat_prompt_template": run.args.get("chat_prompt_template"),
            "system_prompt": run.args.get("system_prompt"),
            "adapter": (run.model_dir / "adapter_config.json").is_file(),
        }
        (run.model_dir / MODEL_DIR_INFO).write_text(json.dumps(info, indent=2, default=str))
