"""The example pipeline that `make main` materializes into ./output."""

from dreamer_dagster import Pipeline
from dreamer_dagster.steps import DataSource

with Pipeline("./output") as pipeline:
    topics = DataSource(
        "Research Topics",
        {
            "topic": ["machine translation", "summarization", "question answering", "parsing"],
            "area": ["generation", "generation", "understanding", "understanding"],
        },
    )
    shuffled = topics.shuffle(seed=7, name="Shuffled Topics")
    splits = shuffled.splits(train_size=0.75, validation_size=0.25, name="Topic Splits")

defs = pipeline.definitions()
