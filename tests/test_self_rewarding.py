"""DataDreamer's "Self-Rewarding LLMs" example, ported: the script below is the example with
the import and session lines changed, the hub data set and TinyLlama swapped for local
prompts and SmolLM2, the GPU options dropped and the sizes made tiny. Two rounds run end
to end through Dagster; round 2 generates with round 1's adapter."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from dreamer_dagster import Pipeline
from dreamer_dagster.llms import HFTransformers
from dreamer_dagster.steps import DataSource, JudgeGenerationPairsWithPrompt, Prompt
from dreamer_dagster.trainers import TrainHFDPO

pytestmark = pytest.mark.slow  # trains real models (still part of the suite)

QUESTIONS = [
    "What is the capital of France?",
    "Name a primary color.",
    "What do bees make?",
    "How many legs does a spider have?",
    "What is frozen water called?",
    "Which planet is called the red planet?",
    "What gas do plants breathe in?",
    "What is 2 plus 3?",
    "What animal says moo?",
    "What color is the sky on a clear day?",
    "What do you call a baby cat?",
    "Which season comes after winter?",
]


def self_rewarding_pipeline(
    output: str, model_name: str
) -> tuple[Pipeline, list[TrainHFDPO], list[HFTransformers]]:
    from peft import LoraConfig

    trainers, llms = [], []
    with Pipeline(output) as pipeline:
        # Get a dataset of prompts
        prompts_dataset = DataSource("Get Prompts Dataset", data={"question": QUESTIONS}).select_columns(
            ["question"]
        )

        # Keep only 12 examples as a quick demo
        prompts_dataset = prompts_dataset.take(12)

        # Define how many rounds of self-reward training
        rounds = 2

        # For each round of self-reward training
        adapter_to_apply = None
        for r in range(rounds):
            # Use a partial set of the prompts for each round
            prompts_for_round = prompts_dataset.shard(
                num_shards=rounds, index=r, name=f"Round #{r + 1}: Get Prompts"
            )

            # Load the LLM
            llm = HFTransformers(model_name, adapter_name=adapter_to_apply)
            llms.append(llm)

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

            # Align the chat model with its own preferences
            trainer = TrainHFDPO(
                f"Round #{r + 1}: Self-Reward Align SmolLM2",
                model_name=model_name,
                peft_config=LoraConfig(),
            )
            trainer.train(
                train_prompts=splits["train"].output["question"],
                train_chosen=splits["train"].output["chosen"],
                train_rejected=splits["train"].output["rejected"],
                validation_prompts=splits["validation"].output["question"],
                validation_chosen=splits["validation"].output["chosen"],
                validation_rejected=splits["validation"].output["rejected"],
                epochs=1,
                batch_size=1,
                gradient_accumulation_steps=2,
            )
            trainers.append(trainer)

            # Unload the trained model from memory
            trainer.unload_model()

            # Use the newly trained adapter for the next round of self-reward
            adapter_to_apply = trainer.model_path
    return pipeline, trainers, llms


def test_self_rewarding_runs_two_rounds(smollm2: Path, tmp_path: Path, instance: dg.DagsterInstance) -> None:
    import datasets
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    output = tmp_path / "output"
    pipeline, trainers, _ = self_rewarding_pipeline(str(output), str(smollm2))
    defs = pipeline.definitions()
    graph = defs.resolve_asset_graph()
    round_two_sample = dg.AssetKey("round_2_sample_candidate_response_0")
    # Round 2 samples with round 1's adapter: the trainer is upstream of its prompts.
    assert trainers[0].asset_key in graph.get(round_two_sample).parent_keys

    result = dg.materialize(list(defs.assets), instance=instance, resources=dict(defs.resources))
    assert result.success

    for round_number, trainer in enumerate(trainers, start=1):
        preferences = datasets.load_from_disk(
            str(output / f"round-{round_number}-create-self-reward-preference-dataset" / "_dataset")
        )
        assert len(preferences) == 6
        assert {"question", "chosen", "rejected"} <= set(preferences.column_names)
        assert all(
            chosen != "" or rejected != ""
            for chosen, rejected in zip(preferences["chosen"], preferences["rejected"])
        )
        judged = datasets.load_from_disk(
            str(output / f"round-{round_number}-judge-candidate-responses" / "_dataset")
        )
        assert len(judged) == 6
        model_dir = output / trainer.folder / "_model"
        assert (model_dir / "adapter_config.json").is_file()

    samples = datasets.load_from_disk(str(output / "round-2-sample-candidate-response-0" / "_dataset"))
    assert len(samples) == 6 and all(isinstance(g, str) for g in samples["generations"])

    # The last round's adapter loads on SmolLM2 and generates.
    final = output / trainers[-1].folder / "_model"
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(smollm2)), str(final))
    tokenizer = AutoTokenizer.from_pretrained(str(final))
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": QUESTIONS[0]}], tokenize=False, add_generation_prompt=True
    )
    inputs = tokenizer(text, return_tensors="pt")
    generated = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert generated.shape[1] > inputs["input_ids"].shape[1]

    # A second materialization reuses every step: nothing is generated or trained again.
    again = dg.materialize(list(defs.assets), instance=instance, resources=dict(defs.resources))
    reused = [
        event.step_materialization_data.materialization.metadata["dreamer/reused"].value
        for event in again.get_asset_materialization_events()
    ]
    assert reused and all(reused)
