"""Step folders are named as DataDreamer names them (``safe_fn(name, allow_slashes=True,
to_lower=True)``), asset keys stay Dagster-safe, and the two map one-to-one: names whose
folders would meet are refused when the definitions are built."""

from __future__ import annotations

import json

import pytest

from dreamer_dagster import dreamer_definitions
from dreamer_dagster import metadata as keys
from dreamer_dagster.names import folder_name
from dreamer_dagster.pipeline import Pipeline
from dreamer_dagster.steps import DataSource
from dreamer_dagster.steps.step import StepDeclarationError
from tests.support.foundation import materialize


@pytest.mark.parametrize(
    ("name", "folder"),
    [
        ("Generate Research Paper Abstracts", "generate-research-paper-abstracts"),
        ("my-step (save)", "my-step-save"),
        ("my-step (save #2)", "my-step-save-2"),
        ("A #2", "a-2"),
        ("Src (train split)", "src-train-split"),
        ("Train an Abstract => Tweet Model", "train-an-abstract--tweet-model"),
        ("grandparent / parent / child", "grandparent/parent/child"),
        ("word_count", "word_count"),
        ("Café", "café"),
    ],
)
def test_folder_names_follow_datadreamers_rule(name, folder):
    assert folder_name(name) == folder


def test_a_step_writes_its_datadreamer_folder_under_a_dagster_safe_key(tmp_path, instance):
    output = tmp_path / "output"
    with Pipeline(str(output), run=False):
        source = DataSource("Generate Research Paper Abstracts", {"text": ["a", "b"]})
        again = DataSource("Generate Research Paper Abstracts", {"text": ["c"]})
    assert (source.key, source.folder) == (
        "generate_research_paper_abstracts",
        "generate-research-paper-abstracts",
    )
    assert (again.name, again.key, again.folder) == (
        "Generate Research Paper Abstracts #2",
        "generate_research_paper_abstracts_2",
        "generate-research-paper-abstracts-2",
    )
    defs = dreamer_definitions([source, again], output_folder=str(output))
    spec = next(s for s in defs.resolve_all_asset_specs() if s.key == source.asset_key)
    assert spec.metadata[keys.FOLDER] == "generate-research-paper-abstracts"
    materialize([source, again], instance, output)
    record = json.loads((output / "generate-research-paper-abstracts" / "step.json").read_text())
    assert record["name"] == "Generate Research Paper Abstracts" and record["num_rows"] == 2
    assert (output / "generate-research-paper-abstracts-2" / "_dataset" / "dataset_info.json").is_file()
    assert not (output / "generate_research_paper_abstracts").exists()


def test_names_whose_folders_meet_are_refused_with_the_fix():
    one, other = DataSource("a.b", {"x": [1]}), DataSource("ab", {"x": [2]})
    assert one.key != other.key and one.folder == other.folder == "ab"
    with pytest.raises(StepDeclarationError, match=r"Step 'ab'.*'name'.*same folder 'ab'.*Fix: give one"):
        dreamer_definitions([one, other], output_folder="unused")
    outer, nested = DataSource("Outer", {"x": [1]}), DataSource("Outer / Inner", {"x": [2]})
    with pytest.raises(StepDeclarationError, match=r"'outer/inner' lies inside the folder of step 'Outer'"):
        dreamer_definitions([outer, nested], output_folder="unused")
    with pytest.raises(StepDeclarationError, match=r"argument 'name'.*contains '/'.*Fix"):
        DataSource("a/b", {"x": [1]})
    with pytest.raises(StepDeclarationError, match=r"'_dataset', a name the output folder's layout uses"):
        DataSource("_dataset", {"x": [1]})
