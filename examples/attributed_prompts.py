"""DataDreamer's quick-tour example "Generating Training Data with Attributed Prompts",
ported.

Differences from DataDreamer's text:
- the import lines and the session line (``with Pipeline("./output") as pipeline:``,
  and ``defs = pipeline.definitions()`` at the end so Dagster loads the same file);
- tiny sizes: 16 movie reviews instead of 1,000.

``attributes[0].split(",")`` is a deferred value: the attributes are read from the
"Generate Attributes" step's output when "Generate Movie Reviews" runs, and the
dependency shows in Dagster. ``gpt-4`` is called through ``OPENAI_BASE_URL`` /
``OPENAI_API_KEY``; publishing goes to ``HF_ENDPOINT`` with ``HF_TOKEN``.
"""

from dreamer_dagster import Pipeline
from dreamer_dagster.llms import OpenAI
from dreamer_dagster.steps import (
    DataFromAttributedPrompt,
    DataSource,
    Prompt,
)

with Pipeline("./output") as pipeline:
    # Load GPT-4
    gpt_4 = OpenAI(model_name="gpt-4")

    # Create prompts to generate attributes for movie reviews
    attribute_generation_prompts = DataSource(
        "Attribute Generation Prompts",
        data={
            "prompts": [
                "Generate the names of 10 movies released in theatres in the past, in a comma separated list.",
                "Generate 10 elements of a movie a reviewer might consider, in a comma separated list.",
                "Generate 10 adjectives that could describe a movie reviewer's style, in a comma separated list.",
            ],
        },
    )

    # Generate the attributes for movie reviews
    attributes = Prompt(
        "Generate Attributes",
        inputs={
            "prompts": attribute_generation_prompts.output["prompts"],
        },
        args={
            "llm": gpt_4,
        },
    ).output["generations"]

    # Generate movie reviews with varied attributes
    movie_reviews = (
        DataFromAttributedPrompt(
            "Generate Movie Reviews",
            args={
                "llm": gpt_4,
                "n": 16,
                "instruction": "Generate a few sentence {review_style} movie review about {movie_name} that focuses on {movie_element}.",
                "attributes": {
                    "movie_name": attributes[0].split(","),
                    "movie_element": attributes[1].split(","),
                    "review_style": attributes[2].split(","),
                },
            },
            outputs={"generations": "reviews"},
        )
        .select_columns(["reviews"])
        .shuffle()
    )

    # Publish and share the synthetic dataset
    movie_reviews.publish_to_hf_hub(
        "datadreamer-dev/movie_reviews",
    )

defs = pipeline.definitions()
