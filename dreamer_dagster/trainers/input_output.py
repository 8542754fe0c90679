"""``train(train_input, train_output, ...)``: DataDreamer's signature for trainers
that learn to map one column to another (fine-tuning, classification)."""

from __future__ import annotations

from typing import Any, Self

from ..deferred import ColumnRef
from .train_arguments import train_arguments

__all__ = ["InputOutputTraining"]


class InputOutputTraining:
    """Mixin for a trainer (before its trainer base in the bases) whose ``train()``
    takes an input column and an output column, with DataDreamer's arguments."""

    def train(
        self,
        train_input: ColumnRef,
        train_output: ColumnRef,
        validation_input: ColumnRef | None = None,
        validation_output: ColumnRef | None = None,
        truncate: bool = True,
        epochs: float = 3.0,
        batch_size: int = 8,
        optim: str = "adamw_torch",
        learning_rate: float = 1e-3,
        weight_decay: float = 0.01,
        lr_scheduler_type: str = "linear",
        warmup_steps: int = 0,
        neftune_noise_alpha: float | None = None,
        seed: int = 42,
        *,
        early_stopping_patience: int | None = 5,
        early_stopping_threshold: float | None = 0.0,
        gradient_accumulation_steps: int = 1,
        max_length: int | None = None,
        callbacks: list | None = None,
        **kwargs: Any,
    ) -> Self:
        """Declare the training; ``**kwargs`` are ``TrainingArguments`` fields. Returns the trainer."""
        self.declare_training(*train_arguments(locals()))
        return self
