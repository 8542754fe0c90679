"""DataDreamer's quick-tour example "Augmenting an Existing Dataset", ported.

Differences from DataDreamer's text:
- the import lines and the session line (``with Pipeline("./output") as pipeline:``,
  and ``defs = pipeline.definitions()`` at the end so Dagster loads the same file);
- the questions come from a local file (``examples/data/hotpot_qa_distractor_train.jsonl``,
  five questions in hotpot_qa's columns) through ``JSONDataSource`` instead of
  ``HFHubDataSource("...", "hotpot_qa", config_name="distractor", split="train")``:
  this machine has no access to the Hugging Face Hub.

``gpt-4`` is called through ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``; publishing goes
to ``HF_ENDPOINT`` with ``HF_TOKEN``. Run it from the repository root.
"""

from dreamer_dagster import Pipeline
from dreamer_dagster.llms import OpenAI
from dreamer_dagster.steps import JSONDataSource, ProcessWithPrompt

with Pipeline("./output") as pipeline:
    # Load GPT-4
    gpt_4 = OpenAI(model_name="gpt-4")

    # Get HotPot QA questions
    hotpot_qa_dataset = JSONDataSource(
        "Get Hotpot QA Questions",
        data_files="examples/data/hotpot_qa_distractor_train.jsonl",
    ).select_columns(["question"])

    # Keep only 1000 questions as a quick demo
    hotpot_qa_dataset = hotpot_qa_dataset.take(1000)

    # Ask GPT-4 to decompose the question
    questions_and_decompositions = ProcessWithPrompt(
        "Generate Decompositions",
        inputs={"inputs": hotpot_qa_dataset.output["question"]},
        args={
            "llm": gpt_4,
            "instruction": (
                "Given the question which requires multiple steps to solve, give a numbered list of intermediate questions required to solve the question."
                "Return only the list, nothing else."
            ),
        },
        outputs={"inputs": "questions", "generations": "decompositions"},
    ).select_columns(["questions", "decompositions"])

    # Publish and share the synthetic dataset
    questions_and_decompositions.publish_to_hf_hub(
        "datadreamer-dev/hotpot_qa_augmented",
    )

defs = pipeline.definitions()
