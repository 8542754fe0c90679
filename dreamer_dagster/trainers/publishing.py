"""After training: ``trainer.model``, ``trainer.export_to_disk`` and ``trainer.publish_to_hf_hub``.

They work exactly as a step's exports do (see :mod:`~dreamer_dagster.steps.export`):
inside the trainer's ``Pipeline`` block, ``export_to_disk`` and ``publish_to_hf_hub``
become export assets (a running script materializes them at once and gets the path
or URL back), and ``trainer.model`` trains first in a running script. After the
block they run on the finished output folder: they read the trainer's committed
``_model`` (``output_folder=`` names the folder; by default the trainer's
``Pipeline`` folder, else ``./output``) and refuse a trainer that is not
materialized with its current fingerprint, saying how to materialize it.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..steps.export import export_call

if TYPE_CHECKING:
    from .base import Trainer

__all__ = ["TrainerPublishing"]

#: ``pipeline_tag`` on the Hub by ``dreamer_trainer.json``'s task.
PIPELINE_TAGS = {
    "causal_lm": "text-generation",
    "seq2seq_lm": "text2text-generation",
    "sequence_classification": "text-classification",
    "setfit_classification": "text-classification",
    "sentence_transformer": "sentence-similarity",
}
LIBRARIES = {"setfit_classification": "setfit", "sentence_transformer": "sentence-transformers"}


def _returning_model(export: Callable) -> Callable:
    """DataDreamer's ``export_to_disk`` returns the exported model: the call loads it from the
    folder it wrote. In a file Dagster loads, inside the block, the call still returns the
    export step; the export step itself (``__wrapped__``) writes the folder and returns its path."""

    @functools.wraps(export)
    def call(self: Trainer, *args: Any, **kwargs: Any) -> Any:
        result = export(self, *args, **kwargs)
        return self.load_trained(str(result)) if isinstance(result, Path) else result

    call.__wrapped__ = export.__wrapped__  # type: ignore[attr-defined]
    return call


class TrainerPublishing:
    """Mixin of :class:`~dreamer_dagster.trainers.Trainer`: DataDreamer's after-training methods."""

    def finished_model_dir(self: Trainer, output_folder: str | os.PathLike | None = None) -> Path:
        """The committed ``_model`` folder of this trainer's current fingerprint."""
        from ..steps.export import NotMaterializedError

        folder = self.export_folder(output_folder).step(self.folder)
        record = folder.step_json()
        command = f"`dagster asset materialize --select {self.key} -f <your definitions file>`"
        if record is None or record.get("fingerprint") != self.fingerprint or not record.get("model"):
            state = "is not trained" if record is None else "holds another training (its fingerprint differs)"
            raise NotMaterializedError(
                f"Trainer {self.name!r} {state} in {str(folder.root)!r}, so it has no model to load, "
                f"export or publish yet. Fix: materialize it first, e.g. {command}, or pass "
                "output_folder= to name the folder it was written to."
            )
        return folder.local_model_path(record)

    @property
    def model(self: Trainer) -> Any:
        """The trained model, loaded from ``_model`` once the trainer has materialized (kept
        until ``unload_model()``); a clear error before that."""
        from ..script_mode import require_output

        loaded = self.__dict__.get("_loaded_model")
        if loaded is None:
            require_output(self, "trainer.model")
            loaded = self.load_trained(str(self.finished_model_dir()))
            self.__dict__["_loaded_model"] = loaded
        return loaded

    def load_trained(self: Trainer, model_dir: str) -> Any:
        """Load a finished ``_model`` for inference (subclasses with their own format override it)."""
        from .trained_models import load_trained_model, trained_model_info

        task = trained_model_info(model_dir).get("task")
        if task == "openai":
            return json.loads((Path(model_dir) / "trained_model_name.json").read_text())
        if task == "sentence_transformer":
            from sentence_transformers import SentenceTransformer

            return SentenceTransformer(model_dir)
        return load_trained_model(model_dir)

    def unload_model(self: Trainer) -> None:
        """Forget the loaded ``trainer.model``; harmless when nothing is loaded."""
        self.__dict__.pop("_loaded_model", None)

    @_returning_model
    @export_call
    def export_to_disk(
        self: Trainer,
        path: str | os.PathLike,
        adapter_only: bool = False,
        *,
        output_folder: str | os.PathLike | None = None,
    ) -> Path:
        """Write the trained model to ``path``: a LoRA adapter merged into its base model (or, with
        ``adapter_only``, the adapter alone), the tokenizer, the label maps,
        ``training_args.json`` and the model card. Returns the exported model, loaded from
        ``path`` (as DataDreamer's does; the export step records ``path``)."""
        from .trained_models import merge_adapter

        model_dir = self.finished_model_dir(output_folder)
        is_adapter = (model_dir / "adapter_config.json").is_file()
        if adapter_only and not is_adapter:
            raise ValueError(
                f"Trainer {self.name!r}: adapter_only=True, but it trained no adapter (no peft_config)."
            )
        target = Path(path)
        if target.exists():
            shutil.rmtree(target)
        if adapter_only or not is_adapter:
            shutil.copytree(model_dir, target)
        else:
            merge_adapter(model_dir, target)
        return target

    def model_card(self: Trainer) -> None:
        """Print the model card as DataDreamer's ``trainer.model_card()`` does (JSON): the
        ``model_card`` (date, base model, licenses, citations), the ``data_card`` of the
        training data, and the training's record (type, name, fingerprint, args, metrics)."""
        from ..cards import CITATION, DATETIME, LICENSE, MODEL_CARD, MODEL_NAME, card_values
        from ..script_mode import require_output

        require_output(self, "model_card()")
        _, record = self.finished_record()
        data_card = record.get("data_card") or {}
        own = data_card.get(self.name) or {}
        card: dict[str, Any] = {DATETIME: record.get("datetime")}
        base = self.base_model_name()
        if "/" in base and not base.startswith(("/", ".")) and not Path(base).exists():
            card[MODEL_CARD] = [f"https://huggingface.co/{base}"]
        for key in (MODEL_NAME, LICENSE, CITATION):
            values = card_values({self.name: own}, key)
            if values:
                card[key] = values
        shown = {k: v for k, v in record.items() if k not in ("data_card", "manifest")}
        shown.update(type=type(self).__name__, name=self.name, fingerprint=self.fingerprint)
        print(json.dumps({"model_card": card, "data_card": data_card, **shown}, indent=4, default=str))

    def save_hf_hub_files(
        self: Trainer,
        folder: str | os.PathLike,
        repo_id: str | None = None,
        adapter_only: bool = False,
        is_synthetic: bool = True,
        output_folder: str | os.PathLike | None = None,
    ) -> Path:
        """Writes into ``folder`` exactly what :meth:`publish_to_hf_hub` uploads: the exported
        model (:meth:`export_to_disk`) and a ``README.md`` model card whose YAML front matter
        names the base model, the training datasets, the tags and the pipeline."""
        from ..cards import DATASET_NAME, MODEL_NAME, card_values
        from .trained_models import trained_model_info

        export = TrainerPublishing.export_to_disk.__wrapped__  # the export itself, never a new step
        target = export(self, folder, adapter_only=adapter_only, output_folder=output_folder)
        info = trained_model_info(target)
        card = (
            json.loads((target / "data_card.json").read_text())
            if (target / "data_card.json").is_file()
            else {}
        )
        readme = (
            (target / "README.md").read_text() if (target / "README.md").is_file() else f"# {self.name}\n"
        )
        body = readme.split("---\n", 2)[2] if readme.startswith("---\n") else readme
        (target / "README.md").write_text(
            hub_model_card(
                self,
                info,
                card_values(card, DATASET_NAME),
                card_values(card, MODEL_NAME),
                body,
                repo_id,
                adapter_only,
                is_synthetic,
            ),
            encoding="utf-8",
        )
        return target

    @export_call
    def publish_to_hf_hub(
        self: Trainer,
        repo_id: str,
        branch: str | None = None,
        private: bool = False,
        token: str | None = None,
        adapter_only: bool = False,
        is_synthetic: bool = True,
        *,
        output_folder: str | os.PathLike | None = None,
        **kwargs: Any,
    ) -> str:
        """Uploads the trained model and its model card to a Hub model repo; returns its URL.

        The token is ``token`` or the ``HF_TOKEN`` environment variable, read now
        and never logged. ``kwargs`` go to ``HfApi.upload_folder``.
        """
        from ..hub_upload import hub_repo, upload_to_hub

        api, repo_id = hub_repo(token, repo_id)
        with tempfile.TemporaryDirectory(prefix="dreamer-publish-model-") as scratch:
            folder = Path(scratch) / "model"
            self.save_hf_hub_files(
                folder,
                repo_id=repo_id,
                adapter_only=adapter_only,
                is_synthetic=is_synthetic,
                output_folder=output_folder,
            )
            upload_to_hub(
                api,
                folder,
                repo_id,
                "model",
                private=private,
                branch=branch,
                default_commit_message=f"Upload {self.name}",
                **kwargs,
            )
        return f"https://huggingface.co/{repo_id}"


def hub_model_card(
    trainer: Trainer,
    info: dict,
    datasets: list[str],
    models: list[str],
    body: str,
    repo_id: str | None,
    adapter_only: bool,
    is_synthetic: bool,
) -> str:
    """The Hub model card: YAML front matter, then the trainer's own model card."""
    import yaml

    task = info.get("task")
    base = info.get("base_model") or trainer.base_model_name()
    front: dict[str, Any] = {}
    if isinstance(base, str) and base and not Path(base).exists():
        front["base_model"] = base
    if datasets:
        front["datasets"] = datasets
    front["tags"] = [
        "dreamer-dagster",
        type(trainer).__name__,
        *(["synthetic"] if is_synthetic else []),
        *models,
    ]
    library = "peft" if adapter_only else LIBRARIES.get(task)
    if library:
        front["library_name"] = library
    if task in PIPELINE_TAGS:
        front["pipeline_tag"] = PIPELINE_TAGS[task]
    title = repo_id.split("/")[-1] if repo_id else trainer.name
    made = "a synthetic dataset" if is_synthetic else "a dataset"
    return "\n".join(
        [
            "---",
            yaml.safe_dump(front, sort_keys=False, allow_unicode=True).rstrip(),
            "---",
            f"# Model Card for {title}",
            "",
            f"Trained on {made} with a dreamer_dagster pipeline. The data card of every step behind "
            "it is in [data_card.json](data_card.json), the training arguments in "
            "[training_args.json](training_args.json).",
            "",
            body.strip().replace(f"# {trainer.name}", "## Training", 1),
            "",
        ]
    )
