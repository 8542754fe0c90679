"""``dg scaffold defs dreamer_dagster.DreamerPipelineComponent NAME``: a ``defs.yaml`` and a
``pipeline.py`` that materialize offline (a data source, then tweets written by the embedded
SmolLM2-135M-Instruct)."""

from __future__ import annotations

import dagster as dg

from ..names import safe_name

__all__ = ["DreamerPipelineScaffolder", "defs_yaml_text", "pipeline_module_text"]


def defs_yaml_text(type_name: str, name: str) -> str:
    """The scaffolded ``defs.yaml`` of component ``name``."""
    return f"""\
type: {type_name}

attributes:
  # The Pipeline (or list of steps) to load: `pipeline` in pipeline.py beside this file.
  module: .pipeline
  attribute: pipeline

  # Where the steps write (relative paths are under the project root; s3://... works
  # too, with storage_options). Set {name.upper()}_OUTPUT to move it.
  output_folder: "{{{{ env('{name.upper()}_OUTPUT', 'output/{name}') }}}}"

  # Dagster attributes of every step (and per step, under `steps:` by step name).
  translation:
    group_name: {name}
    key_prefix: {name}

  # A stale-only schedule: uncomment to run only the changed steps each night.
  # schedule: "0 3 * * *"
"""


def pipeline_module_text(name: str) -> str:
    """The scaffolded ``pipeline.py`` of component ``name``."""
    return f'''\
"""The {name} pipeline: a few abstracts, then a tweet for each written by the embedded
SmolLM2-135M-Instruct (offline, CPU).

Dagster loads it through defs.yaml (whose output_folder replaces the one below); run it
as a script (`python pipeline.py`) to materialize it as DataDreamer would.
"""

from dreamer_dagster import Pipeline
from dreamer_dagster.llms import default_llm
from dreamer_dagster.steps import DataSource, ProcessWithPrompt

with Pipeline("output/{name}") as pipeline:
    abstracts = DataSource(
        "Abstracts",
        data={{
            "abstracts": [
                "We fine-tune a small language model to summarize research papers in one sentence.",
                "We show that synthetic data from a small model improves a classifier by 4 points.",
            ]
        }},
    )
    tweets = ProcessWithPrompt(
        "Tweets from Abstracts",
        inputs={{"inputs": abstracts.output["abstracts"]}},
        args={{
            "llm": default_llm(),
            "instruction": "Given the abstract, write a tweet to summarize the work.",
            "max_new_tokens": 32,
        }},
        outputs={{"inputs": "abstracts", "generations": "tweets"}},
    )
'''


class DreamerPipelineScaffolder(dg.Scaffolder):
    """Writes ``defs.yaml`` (commented) and ``pipeline.py`` into the new component's folder."""

    def scaffold(self, request: dg.ScaffoldRequest) -> None:
        if request.scaffold_format != "yaml" or request.append:
            dg.scaffold_component(request, {"module": ".pipeline", "attribute": "pipeline"})
        else:
            name = safe_name(request.target_path.name)
            (request.target_path / "defs.yaml").write_text(
                defs_yaml_text(request.type_name, name), encoding="utf-8"
            )
        pipeline_path = request.target_path / "pipeline.py"
        if not pipeline_path.exists():
            pipeline_path.write_text(
                pipeline_module_text(safe_name(request.target_path.name)), encoding="utf-8"
            )
