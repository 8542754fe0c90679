"""DataDreamer's quick-tour example "Aligning a LLM with Human Preferences" (DPO with LoRA),
ported.

Differences from DataDreamer's text:
- the import lines and the session line (``with Pipeline("./output") as pipeline:``,
  and ``defs = pipeline.definitions()`` at the end so Dagster loads the same file);
- the model: SmolLM2-135M-Instruct (offline, CPU) instead of
  TinyLlama/TinyLlama-1.1B-Chat-v1.0, or the model named by ``DREAMER_EXAMPLE_MODEL``;
  the GPU options (``device=["cuda:0", "cuda:1"]``, ``dtype="bfloat16"``) are dropped:
  this machine has no GPU;
- the preference pairs come from a local file (``examples/data/orca_dpo_pairs_train.jsonl``,
  18 rows in Intel/orca_dpo_pairs's columns) through ``JSONDataSource`` instead of
  ``HFHubDataSource("...", "Intel/orca_dpo_pairs", split="train")``: this machine has
  no access to the Hugging Face Hub.

Run it from the repository root: ``python examples/aligning.py``.
"""

import os

from peft import LoraConfig

from dreamer_dagster import Pipeline
from dreamer_dagster.llms import SMOLLM2_MODEL_NAME
from dreamer_dagster.steps import JSONDataSource
from dreamer_dagster.trainers import TrainHFDPO

with Pipeline("./output") as pipeline:
    # Get the DPO dataset
    dpo_dataset = JSONDataSource("Get DPO Dataset", data_files="examples/data/orca_dpo_pairs_train.jsonl")

    # Keep only 1000 examples as a quick demo
    dpo_dataset = dpo_dataset.take(1000)

    # Create training data splits
    splits = dpo_dataset.splits(train_size=0.90, validation_size=0.10)

    # Align the TinyLlama chat model with human preferences
    trainer = TrainHFDPO(
        "Align TinyLlama-Chat",
        model_name=os.environ.get("DREAMER_EXAMPLE_MODEL", SMOLLM2_MODEL_NAME),
        peft_config=LoraConfig(),
    )
    trainer.train(
        train_prompts=splits["train"].output["question"],
        train_chosen=splits["train"].output["chosen"],
        train_rejected=splits["train"].output["rejected"],
        validation_prompts=splits["validation"].output["question"],
        validation_chosen=splits["validation"].output["chosen"],
        validation_rejected=splits["validation"].output["rejected"],
        epochs=3,
        batch_size=1,
        gradient_accumulation_steps=32,
    )

defs = pipeline.definitions()
