"""``TrainSentenceTransformer``: fine-tunes an embedding model with sentence-transformers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ..citations import SENTENCE_BERT_CITATION
from ..deferred import ColumnRef
from .base import TrainingRun
from .hf_base import HFTrainer
from .train_arguments import train_arguments

__all__ = ["TrainSentenceTransformer"]


#: The three ways to train, by the method that declares them: input names in column order.
_INPUTS_BY_OBJECTIVE: dict[str, tuple[str, ...]] = {
    "triplets": ("anchors", "positives", "negatives"),
    "positive_pairs": ("anchors", "positives"),
    "labeled_pairs": ("anchors", "others", "labels"),
}


def _inputs(objective: str) -> dict[str, bool]:
    names = _INPUTS_BY_OBJECTIVE[objective]
    return {**{f"train_{n}": True for n in names}, **{f"validation_{n}": False for n in names}}


class TrainSentenceTransformer(HFTrainer):
    """Fine-tunes a sentence-transformers embedding model (``SentenceTransformerTrainer``).

    Declare the training with one of DataDreamer's three methods:

    - ``train_with_triplets``: (anchor, positive, negative), ``TripletLoss`` with
      cosine distance and ``margin`` (0.5 by default);
    - ``train_with_positive_pairs``: (anchor, positive) pairs,
      ``MultipleNegativesSymmetricRankingLoss`` (the batch's other positives are
      the negatives);
    - ``train_with_labeled_pairs``: (anchor, other, label) with a similarity
      label in [0, 1], ``CosineSimilarityLoss``.

    ``loss`` replaces the default: a sentence-transformers loss class (or any
    callable) called with the model. With ``peft_config`` a LoRA adapter is
    trained and merged into the model when training ends. Writes ``_model``:
    the whole sentence-transformers model (``SentenceTransformer(path)`` loads
    it), ``training_args.json``, ``seed.json``, the model card and
    ``dreamer_trainer.json`` (``task``: ``sentence_transformer``). Per-epoch
    metrics: training and validation loss.
    """

    INPUTS: ClassVar[Mapping[str, bool]] = _inputs("triplets")
    TRAIN_ARGS: ClassVar[Mapping[str, Any]] = {
        **HFTrainer.TRAIN_ARGS,
        "objective": "triplets",
        "truncate": True,
        "max_length": None,
        "margin": None,
        "loss": None,
    }
    PEFT_TASK_TYPE: ClassVar[str | None] = "FEATURE_EXTRACTION"

    def __init__(
        self,
        name: str,
        model_name: Any,
        trust_remote_code: bool = False,
        device: Any = None,
        dtype: Any = None,
        peft_config: Any = None,
        distributed_config: dict | None = None,
        fsdp: bool | str | list[str] = True,
        fsdp_config: dict | None = None,
        force: bool = False,
        verbose: bool | None = None,
        log_level: int | None = None,
        *,
        revision: str | None = None,
        **kwargs: Any,
    ):
        """DataDreamer's order (no ``revision`` slot there: here keyword-only)."""
        super().__init__(
            name,
            model_name,
            revision=revision,
            trust_remote_code=trust_remote_code,
            device=device,
            dtype=dtype,
            peft_config=peft_config,
            distributed_config=distributed_config,
            fsdp=fsdp,
            fsdp_config=fsdp_config,
            force=force,
            verbose=verbose,
            log_level=log_level,
            **kwargs,
        )

    def publish_to_hf_hub(  # type: ignore[override]
        self,
        repo_id: str,
        private: bool = False,
        token: str | None = None,
        adapter_only: bool = False,
        is_synthetic: bool = True,
        *,
        branch: str | None = None,
        output_folder: Any = None,
        **kwargs: Any,
    ) -> str:
        """DataDreamer's order for this trainer (no ``branch`` slot there: here keyword-only)."""
        return super().publish_to_hf_hub(
            repo_id,
            branch=branch,
            private=private,
            token=token,
            adapter_only=adapter_only,
            is_synthetic=is_synthetic,
            output_folder=output_folder,
            **kwargs,
        )

    def train(self, *args: Any, **kwargs: Any) -> TrainSentenceTransformer:
        raise self.error(
            "a sentence transformer is declared with .train_with_triplets(), "
            ".train_with_positive_pairs() or .train_with_labeled_pairs(), not .train().",
            "train",
        )

    def _declare_objective(
        self, objective: str, columns: dict[str, Any], args: dict[str, Any]
    ) -> TrainSentenceTransformer:
        self.INPUTS = _inputs(objective)  # this trainer's inputs: the declaring method's columns
        self.declare_training(inputs=columns, args={**args, "objective": objective})
        return self

    def train_with_triplets(
        self,
        train_anchors: ColumnRef,
        train_positives: ColumnRef,
        train_negatives: ColumnRef,
        validation_anchors: ColumnRef | None = None,
        validation_positives: ColumnRef | None = None,
        validation_negatives: ColumnRef | None = None,
        truncate: bool = True,
        margin: float | None = None,
        epochs: float = 3.0,
        batch_size: int = 8,
        loss: Any = None,
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
    ) -> TrainSentenceTransformer:
        """Train on (anchor, positive, negative) triplets; ``**kwargs`` are training arguments."""
        return self._declare_objective("triplets", *train_arguments(locals()))

    def train_with_positive_pairs(
        self,
        train_anchors: ColumnRef,
        train_positives: ColumnRef,
        validation_anchors: ColumnRef | None = None,
        validation_positives: ColumnRef | None = None,
        truncate: bool = True,
        epochs: float = 3.0,
        batch_size: int = 8,
        loss: Any = None,
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
    ) -> TrainSentenceTransformer:
        """Train on (anchor, positive) pairs; the batch's other positives act as negatives."""
        inputs, args = train_arguments(locals())
        return self._declare_objective("positive_pairs", inputs, {**args, "margin": None})

    def train_with_labeled_pairs(
        self,
        train_anchors: ColumnRef,
        train_others: ColumnRef,
        train_labels: ColumnRef,
        validation_anchors: ColumnRef | None = None,
        validation_others: ColumnRef | None = None,
        validation_labels: ColumnRef | None = None,
        truncate: bool = True,
        epochs: float = 3.0,
        batch_size: int = 8,
        loss: Any = None,
        optim: str = "adamw_torch",
        learning_rate: float = 1e-3,
        weight_decay: float = 0.01,
        lr_scheduler_type: str = "linear",
        warmup_steps: int = 0,
        neftune_noise_alpha: float | None = None,
        seed: int = 42,
        *,
        margin: float | None = None,
        early_stopping_patience: int | None = 5,
        early_stopping_threshold: float | None = 0.0,
        gradient_accumulation_steps: int = 1,
        max_length: int | None = None,
        callbacks: list | None = None,
        **kwargs: Any,
    ) -> TrainSentenceTransformer:
        """Train on (anchor, other, similarity label) rows."""
        return self._declare_objective("labeled_pairs", *train_arguments(locals()))

    def validate(self) -> None:
        objective = self.args["objective"]
        if objective not in _INPUTS_BY_OBJECTIVE:
            raise self.error(f"must be one of {list(_INPUTS_BY_OBJECTIVE)}.", "objective")
        margin = self.args["margin"]
        if margin is not None:
            if objective == "positive_pairs":
                raise self.error("positive pairs have no margin.", "margin")
            if not isinstance(margin, (int, float)) or isinstance(margin, bool):
                raise self.error("must be a number.", "margin")
        loss = self.args["loss"]
        if loss is not None and not callable(loss):
            raise self.error("must be a loss class (or a callable) that takes the model.", "loss")

    def citations(self) -> list[str]:
        return [*super().citations(), SENTENCE_BERT_CITATION]

    # -- run time -------------------------------------------------------------------

    def train_model(self, run: TrainingRun) -> dict:
        from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
        from transformers import set_seed

        a = run.args
        set_seed(int(a.get("seed") or 0))
        model = self.load_sentence_transformer(run)
        peft_config = self.peft_config(run, self.PEFT_TASK_TYPE)
        if peft_config is not None:
            model.add_adapter(peft_config)
        columns = list(_INPUTS_BY_OBJECTIVE[a["objective"]])
        renames = {"labels": "label"}  # the column sentence-transformers reads as labels

        def prepare(dataset: Any) -> Any:
            dataset = dataset.select_columns(columns)
            for old, new in renames.items():
                if old in dataset.column_names:
                    dataset = dataset.rename_column(old, new)
            if "label" in dataset.column_names:
                dataset = dataset.map(lambda row: {"label": float(row["label"])})
            return dataset

        data = {
            name: prepare(run.split(name)) for name in ("train", "validation") if run.split(name) is not None
        }
        args = self.training_arguments(run, args_cls=SentenceTransformerTrainingArguments)
        trainer = SentenceTransformerTrainer(
            model=model,
            args=args,
            train_dataset=data["train"],
            eval_dataset=data.get("validation"),
            loss=self.loss(run, model),
            callbacks=self.callbacks(run),
        )
        results = self.fit(run, trainer)
        if peft_config is not None:
            merge_adapters(model)
        info = {
            "task": "sentence_transformer",
            "adapter": False,
            "merged_adapter": peft_config is not None,
            "objective": a["objective"],
            "max_seq_length": model.max_seq_length,
        }
        self.save(run, trainer, model.tokenizer, info)
        return results

    def load_sentence_transformer(self, run: TrainingRun) -> Any:
        """The base model as a ``SentenceTransformer`` (a plain transformers encoder gets mean pooling)."""
        from sentence_transformers import SentenceTransformer

        kwargs = self.from_pretrained_kwargs(run)
        model = SentenceTransformer(
            self.base_model_path(run),
            device=self.run_device(run),
            revision=kwargs.pop("revision", None),
            trust_remote_code=kwargs.pop("trust_remote_code", False),
            model_kwargs={**kwargs, **({"dtype": run.args["dtype"]} if run.args.get("dtype") else {})}
            or None,
        )
        if run.args.get("max_length"):
            model.max_seq_length = int(run.args["max_length"])
        elif not run.args.get("truncate", True):
            model.max_seq_length = None
        tokenizer = model.tokenizer
        if getattr(tokenizer, "pad_token", "") is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        return model

    @staticmethod
    def loss(run: TrainingRun, model: Any) -> Any:
        """The loss module: the user's ``loss`` called with the model, or the objective's default."""
        from sentence_transformers import losses

        a = run.args
        if a.get("loss") is not None:
            return a["loss"](model)
        if a["objective"] == "triplets":
            margin = 0.5 if a.get("margin") is None else float(a["margin"])
            return losses.TripletLoss(
                model, distance_metric=losses.TripletDistanceMetric.COSINE, triplet_margin=margin
            )
        if a["objective"] == "labeled_pairs":
            return losses.CosineSimilarityLoss(model)
        return losses.MultipleNegativesSymmetricRankingLoss(model)

    def usage_snippet(self, run: TrainingRun, info: dict) -> str:
        path = str(run.checkpoints_dir.parent / "_model")
        return "\n".join(
            [
                "from sentence_transformers import SentenceTransformer",
                "from sentence_transformers.util import cos_sim",
                "",
                f"model = SentenceTransformer({path!r})",
                "embeddings = model.encode(['A sentence', 'Another sentence'])",
                "print(cos_sim(embeddings[0], embeddings[1]))",
                "",
                "# In a dreamer_dagster pipeline: SentenceTransformersEmbedder(trainer) embeds with it.",
            ]
        )


def merge_adapters(model: Any) -> None:
    """Merge the LoRA layers added by ``model.add_adapter`` into the weights and remove them."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for module in list(model.modules()):
        if not getattr(module, "_hf_peft_config_loaded", False):
            continue
        for name, layer in list(module.named_modules()):
            if isinstance(layer, BaseTunerLayer):
                layer.merge()
                parent_name, _, child = name.rpartition(".")
                parent = module.get_submodule(parent_name) if parent_name else module
                setattr(parent, child, layer.get_base_layer())
        module._hf_peft_config_loaded = False
        if hasattr(module, "peft_config"):
            del module.peft_config
