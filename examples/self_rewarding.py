"""DataDreamer's quick-tour example "Training a Self-Improving LLM with Self-Rewarding",
ported.

Differences from DataDreamer's text:
- the import lines and the session line (``with Pipeline("./output") as pipeline:``,
  and ``defs = pipeline.definitions()`` at the end so Dagster loads the same file);
- the model: SmolLM2-135M-Instruct (offline, CPU) instead of
  TinyLlama/TinyLlama-1.1B-Chat-v1.0, or the model named by ``DREAMER_EXAMPLE_MODEL``;
  the GPU options (``device_map="auto"``, ``device=["cuda:0", "cuda:1"]``,
  ``dtype="bfloat16"``) are dropped: this machine has no GPU;
- the prompts come from a local file (``examples/data/orca_dpo_pairs_train.jsonl``,
  18 rows in Intel/orca_dpo_pairs's columns) through ``JSONDataSource`` instead of
  ``HFHubDataSource("...", "Intel/orca_dpo_pairs", split="train")``: this machine has
  no access to the Hugging Face Hub;
- tiny sizes: the candidate responses are cut at 8 new tokens.

Each round samples with the previous round's adapter (``trainer.model_path`` is a
deferred value, so round 2's steps depend on round 1's training). Run it from the
repository root.
"""

import os

from peft import LoraConfig

from dreamer_dagster import Pipeline
from dreamer_dagster.llms import SMOLLM2_MODEL_NAME, HFTransformers
from dreamer_dagster.steps import JSONDataSource, JudgeGenerationPairsWithPrompt, Prompt
from dreamer_dagster.trainers import TrainHFDPO

with Pipeline("./output") as pipeline:
    # Get a dataset of prompts
    prompts_dataset = JSONDataSource(
        "Get Prompts Dataset", data_files="examples/data/orca_dpo_pairs_train.jsonl"
    ).select_columns(["question"])

    # Keep only 3000 examples as a quick demo
    prompts_dataset = prompts_dataset.take(3000)

    # Define how many rounds of self-reward training
    rounds = 3

    # For each round of self-reward training
    adapter_to_apply = None
    for r in range(rounds):
        # Use a partial set of the prompts for each round
        prompts_for_round = prompts_dataset.shard(
            num_shards=rounds, index=r, name=f"Round #{r + 1}: Get Prompts"
        )

        # Load the LLM
        llm = HFTransformers(
            os.environ.get("DREAMER_EXAMPLE_MODEL", SMOLLM2_MODEL_NAME),
            adapter_name=adapter_to_apply,
        )

        # Sample 2 candidate responses from the LLM
        candidate_responses = []
        for candidate_idx in range(2):
            candidate_responses.append(
                Prompt(
                    f"Round #{r + 1}: Sample Candidate Response #{candidate_idx}",
                    inputs={"prompts": prompts_for_round.output["question"]},
                    args={
                        "llm": llm,
                        "batch_size": 2,
                        "top_p": 1.0,
                        "seed": candidate_idx,
                        "max_new_tokens": 8,
                    },
                )
            )

        # Have the LLM judge its own responses
        judgements = JudgeGenerationPairsWithPrompt(
            f"Round #{r + 1}: Judge Candidate Responses",
            args={
                "llm": llm,
                "batch_size": 1,
                "max_new_tokens": 5,
            },
            inputs={
                "prompts": prompts_for_round.output["question"],
                "a": candidate_responses[0].output["generations"],
                "b": candidate_responses[1].output["generations"],
            },
        )

        # Unload the LLM
        llm.unload_model()

        # Process the judgements into a preference dataset
        dpo_dataset = judgements.map(
            lambda row: {
                "question": row["prompts"],
                "chosen": row["a"] if row["judgements"] == "Response A" else row["b"],
                "rejected": row["b"] if row["judgements"] == "Response A" else row["a"],
            },
            lazy=False,
            name=f"Round #{r + 1}: Create Self-Reward Preference Dataset",
        )

        # Create training data splits
        splits = dpo_dataset.splits(train_size=0.90, validation_size=0.10)

        # Align the TinyLlama chat model with its own preferences
        trainer = TrainHFDPO(
            f"Round #{r + 1}: Self-Reward Align TinyLlama-Chat",
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

        # Unload the trained model from memory
        trainer.unload_model()

        # Use the newly trained adapter for the next round of self-reward
        adapter_to_apply = trainer.model_path

defs = pipeline.definitions()
