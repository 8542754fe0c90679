"""A custom step written as DataDreamer's "Creating a new Step" page describes, ported.

``MyNewStep`` is the page's ``class MyNewStep(Step)`` with its two methods filled in,
one documented facility a section: registering inputs, arguments and outputs and data
card information in ``setup()``; reading ``self.inputs`` / ``self.args``, storing
persistent data in ``self.get_run_output_folder_path()``, updating ``self.progress``
and returning outputs lazily with ``LazyRows`` in ``run()``. ``SummarizeThenCount``
is the page's "Running steps within steps": a ``SuperStep`` whose ``run()`` runs a
prompt step and ``MyNewStep`` and returns their columns.

Differences from DataDreamer: the import lines and the session line
(``with Pipeline("./output") as pipeline:`` and ``defs = pipeline.definitions()``).
``gpt-4`` is called through ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``.
Run it from the repository root: ``python examples/custom_step.py``.
"""

import json
import os

from dreamer_dagster import Pipeline
from dreamer_dagster.llms import OpenAI
from dreamer_dagster.steps import DataCardType, DataSource, LazyRows, ProcessWithPrompt, Step, SuperStep


class MyNewStep(Step):
    def setup(self):
        # Register inputs, arguments, outputs, and data card information here
        self.register_input("texts", help="The texts to count the words of.")
        self.register_arg(
            "lowercase", required=False, default=False, help="Whether to lowercase the texts first."
        )
        self.register_output("texts", help="The texts (lowercased if asked).")
        self.register_output("word_counts", help="The number of words in each text.")
        self.register_data_card(DataCardType.LICENSE, "MIT License")
        self.register_data_card(DataCardType.CITATION, "@misc{word_counts, title={Counting Words}}")

    def run(self):
        # Implement your custom data processing / transformation logic here
        texts = self.inputs["texts"]
        lowercase = self.args["lowercase"]

        # Store persistent data: what this run was asked to count
        with open(os.path.join(self.get_run_output_folder_path(), "request.json"), "w") as f:
            json.dump({"rows": texts.num_rows, "lowercase": lowercase}, f)

        def count_words():
            for i, text in enumerate(texts):
                self.progress = (i + 1) / texts.num_rows
                text = text.lower() if lowercase else text
                yield {"texts": text, "word_counts": len(text.split())}

        return LazyRows(count_words, total_num_rows=texts.num_rows)


class SummarizeThenCount(SuperStep):
    def setup(self):
        self.register_input("texts", help="The texts to summarize.")
        self.register_arg("llm", help="The LLM to summarize with.")
        self.register_output("summaries", help="One summary a text.")
        self.register_output("word_counts", help="The number of words in each summary.")

    def run(self):
        summaries = ProcessWithPrompt(
            "Summarize",
            inputs={"inputs": self.inputs["texts"]},
            args={"llm": self.args["llm"], "instruction": "Summarize the text in one sentence."},
            outputs={"generations": "summaries"},
        )
        counts = MyNewStep("Count Words", inputs={"texts": summaries.output["summaries"]})
        return {
            "summaries": list(summaries.output["summaries"]),
            "word_counts": list(counts.output["word_counts"]),
        }


with Pipeline("./output") as pipeline:
    # Load GPT-4
    gpt_4 = OpenAI(model_name="gpt-4")

    texts = DataSource(
        "Texts",
        data={
            "text": [
                "The River Bridge Reopened After Six Months Of Repairs.",
                "A New Bakery Opened On The Main Square.",
                "The Library Will Stay Open Late During Exams.",
            ]
        },
    )
    word_counts = MyNewStep("Count Words", inputs={"texts": texts.output["text"]}, args={"lowercase": True})
    summaries = SummarizeThenCount(
        "Summarize Then Count", inputs={"texts": texts.output["text"]}, args={"llm": gpt_4}
    )

defs = pipeline.definitions()
