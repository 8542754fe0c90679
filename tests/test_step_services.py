"""What a step does for the core rooms, which cannot import ``steps/`` (CONTRIBUTING.md
"Layers"; ``step_like.py``, ``steps/step_services.py``): the core tells a step from a
model or a value, and ``cost.estimate_step`` leaves a SuperStep's own calls alone."""

from __future__ import annotations

import datasets

from dreamer_dagster.cost import StepEstimate, estimate_step
from dreamer_dagster.deferred import upstream_steps
from dreamer_dagster.llms import OpenAI
from dreamer_dagster.step_like import is_step
from dreamer_dagster.steps import DataSource, SuperStep
from dreamer_dagster.trainers import TrainHFFineTune


class Summaries(SuperStep):
    """A SuperStep holding a model: its inner steps would make its calls."""

    def setup(self):
        self.register_input("texts")
        self.register_arg("llm")
        self.register_output("summaries")

    def run(self):
        raise AssertionError("a SuperStep is never run to estimate it")


def test_the_core_tells_a_step_from_models_references_and_values():
    source = DataSource("Texts", {"text": ["a", "b"]})
    trainer = TrainHFFineTune("Tuned", model_name="never/loaded")
    llm = OpenAI("gpt-4o-mini")
    ref = source.output["text"]
    assert is_step(source) and is_step(trainer)
    assert not any(is_step(value) for value in (llm, ref, ref.at(0), "Texts", None, DataSource))
    # A step (or trainer) held in args is a dependency; a model without one and plain values are not.
    found = upstream_steps({"llm": llm, "model": [trainer], "n": 1, "text": "Texts", "data": ref})
    assert found == [trainer, source]


def test_a_super_step_is_not_estimated_its_inner_steps_are_its_calls(tmp_path):
    source = DataSource("Texts", {"text": ["a", "b"]})
    step = Summaries(
        "Summaries", inputs={"texts": source.output["text"]}, args={"llm": OpenAI("gpt-4o-mini")}
    )
    upstream = {source.key: datasets.Dataset.from_dict({"text": ["a", "b"]})}
    assert estimate_step(step, tmp_path / "output", upstream) == StepEstimate(
        "Summaries", None, None, None, None, None, "Summaries runs other steps: its cost is not estimated"
    )
