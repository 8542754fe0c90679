"""``DreamerPipelineComponent``: its YAML attributes, translation and templating through
Dagster's component sandbox, several pipeline components in one project, and the user
flow through ``create-dagster`` and the ``dg`` CLI in subprocesses."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster.components.testing import create_defs_folder_sandbox

from dreamer_dagster import DreamerPipelineComponent
from tests.support.waiting import HANG_S

BIN = Path(sys.executable).parent
TYPE = "dreamer_dagster.DreamerPipelineComponent"

PIPELINE = textwrap.dedent(
    """
    from dreamer_dagster import Pipeline
    from dreamer_dagster.steps import DataSource


    def shout(row):
        return {"topic": row["topic"].upper()}


    with Pipeline("./never-used", tags={"source": "python"}) as pipeline:
        topics = DataSource("Topics", data={"topic": ["parsing", "tagging"]})
        loud = topics.map(shout, name="Loud Topics", output_columns=["topic"])

    steps = [loud]
    not_a_pipeline = 42
    """
)


def write_component(sandbox, name: str, attributes: dict) -> Path:
    """A folder ``defs/<name>`` holding ``pipeline.py`` and a ``defs.yaml`` with ``attributes``."""
    folder = sandbox.defs_folder_path / name
    folder.mkdir(parents=True)
    (folder / "pipeline.py").write_text(PIPELINE)
    (folder / "defs.yaml").write_text(yaml.safe_dump({"type": TYPE, "attributes": attributes}))
    return folder


def assets_by_key(defs: dg.Definitions) -> dict[dg.AssetKey, dg.AssetsDefinition]:
    return {key: asset for asset in defs.assets or [] for key in asset.keys}


def test_yaml_attributes_translation_and_env_templating(monkeypatch, tmp_path):
    monkeypatch.setenv("DREAMER_TEST_OUT", str(tmp_path / "from-env"))
    monkeypatch.setenv("DREAMER_TEST_SECRET", "s3cr3t-value")
    attributes = {
        "module": ".pipeline",
        "output_folder": "{{ env.DREAMER_TEST_OUT }}/topics",
        "storage_options": {"key": "{{ env.DREAMER_TEST_SECRET }}", "anon": False},
        "schedule": "0 3 * * *",
        "translation": {
            "group_name": "topics",
            "key_prefix": ["nlp", "topics"],
            "owners": ["team:ml"],
            "tags": {"team": "ml"},
            "kinds": ["synthetic"],
            "automation_condition": "{{ dg.AutomationCondition.eager() }}",
            "pool": "shared_pool",
            "op_tags": {"priority": "high"},
            "steps": {
                "Loud Topics": {"group_name": "loud", "pool": "loud_pool", "owners": ["me@example.com"]}
            },
        },
    }
    with create_defs_folder_sandbox() as sandbox:
        folder = write_component(sandbox, "topics", attributes)
        with sandbox.load_component_and_build_defs(defs_path=folder) as (component, defs):
            assert isinstance(component, DreamerPipelineComponent)
            module = sys.modules[f"{sandbox.project_name}.defs.topics.pipeline"]
            plain = module.pipeline.definitions()
            assets = assets_by_key(defs)

    topics, loud = dg.AssetKey(["nlp", "topics", "topics"]), dg.AssetKey(["nlp", "topics", "loud_topics"])
    assert set(assets) == {topics, loud}
    topics_spec = assets[topics].specs_by_key[topics]
    loud_spec = assets[loud].specs_by_key[loud]
    # every step: group, owners, tags (merged with the pipeline's), kinds (added), automation, pool
    assert topics_spec.group_name == "topics"
    assert topics_spec.owners == ["team:ml"]
    assert topics_spec.tags["team"] == "ml" and topics_spec.tags["source"] == "python"
    assert {"synthetic", "source"} <= set(topics_spec.kinds)
    assert isinstance(topics_spec.automation_condition, type(dg.AutomationCondition.eager()))
    assert assets[topics].op.pool == "shared_pool"
    assert assets[topics].op.tags["priority"] == "high"
    # the per-step override, by step name; the dependency follows the prefixed key
    assert (loud_spec.group_name, loud_spec.owners, assets[loud].op.pool) == (
        "loud",
        ["me@example.com"],
        "loud_pool",
    )
    assert {dep.asset_key for dep in loud_spec.deps} == {topics}
    # the translation never touches the fingerprint
    plain_assets = assets_by_key(plain)
    assert (
        topics_spec.code_version
        == plain_assets[dg.AssetKey("topics")].specs_by_key[dg.AssetKey("topics")].code_version
    )

    # names derived from the component's folder: no clash with another pipeline
    manager = defs.resources["dreamer_io_manager_topics"]
    assert manager.output_folder == str(tmp_path / "from-env" / "topics")
    # {{ env.X }} in storage_options is kept as the variable's name, never its value
    assert manager.storage_options == {"key": {"env": "DREAMER_TEST_SECRET"}, "anon": False}
    assert "s3cr3t-value" not in json.dumps(manager.model_dump(), default=str)
    assert [job.name for job in defs.jobs] == ["dreamer_pipeline_topics"]
    assert [schedule.name for schedule in defs.schedules] == ["dreamer_stale_schedule_topics"]


def test_scaffolded_components_load_together_and_materialize(monkeypatch, tmp_path, instance):
    monkeypatch.setenv("TWEETS_OUTPUT", str(tmp_path / "tweets-out"))
    with create_defs_folder_sandbox() as sandbox:
        tweets = sandbox.scaffold_component(DreamerPipelineComponent, defs_path="tweets")
        news = sandbox.scaffold_component(DreamerPipelineComponent, defs_path="news")
        assert (tweets / "pipeline.py").is_file()
        assert yaml.safe_load((news / "defs.yaml").read_text())["type"].endswith(".DreamerPipelineComponent")
        # a list of steps (module.attribute) beside the scaffolded Pipeline
        write_component(sandbox, "loud", {"module": ".pipeline", "attribute": "steps"})
        with sandbox.build_all_defs() as defs:
            keys = {key.to_user_string() for key in assets_by_key(defs)}
            jobs = {job.name for job in defs.jobs}
            resources = dict(defs.resources)
            result = defs.resolve_job_def("dreamer_pipeline_tweets").execute_in_process(
                instance=instance, asset_selection=[dg.AssetKey(["tweets", "abstracts"])]
            )
        project_root = sandbox.project_root
        # the relative default output folder of "news" is under the project root
        news_folder = resources["dreamer_io_manager_news"].output_folder

    assert result.success
    assert {
        "tweets/abstracts",
        "tweets/tweets_from_abstracts",
        "news/abstracts",
        "topics",
        "loud_topics",
    } <= keys
    assert jobs == {"dreamer_pipeline_tweets", "dreamer_pipeline_news", "dreamer_pipeline_loud"}
    assert {"dreamer_io_manager_tweets", "dreamer_io_manager_news", "dreamer_io_manager_loud"} <= set(
        resources
    )
    assert news_folder == str(project_root / "output" / "news")
    # {{ env('TWEETS_OUTPUT', ...) }}: the tweets component wrote where the variable says
    record = json.loads((tmp_path / "tweets-out" / "abstracts" / "step.json").read_text())
    assert record["name"] == "Abstracts"


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        ({"module": ".no_such_module"}, r"module: no module .*no_such_module.*Fix"),
        (
            {"module": ".pipeline", "attribute": "missing"},
            r"attribute: module .* has no 'missing'.*\['pipeline'\]",
        ),
        ({"module": ".pipeline", "attribute": "not_a_pipeline"}, r"int, not a Pipeline or a list of steps"),
        (
            {"module": ".pipeline", "translation": {"steps": {"Nope": {"pool": "x"}}}},
            r"translation.steps: 'Nope' names no step.*'Topics', 'Loud Topics'",
        ),
        (
            {"module": ".pipeline", "translation": {"automation_condition": "eager"}},
            r"translation.automation_condition: .*Fix: write it as a template",
        ),
        (
            {"module": ".pipeline", "translation": {"steps": {"Topics": {"owners": ["bob"]}}}},
            r"translation.steps\['Topics'\].owners: 'bob' is not an owner",
        ),
        (
            {"module": ".pipeline", "io_manager_key": "no-dashes"},
            r"io_manager_key: must be a Python identifier",
        ),
    ],
)
def test_errors_name_the_component_the_attribute_and_the_fix(attributes, message):
    with create_defs_folder_sandbox() as sandbox:
        folder = write_component(sandbox, "topics", attributes)
        # Dagster wraps a component's load error: the message is somewhere in the chain.
        with pytest.raises(Exception) as raised, sandbox.load_component_and_build_defs(defs_path=folder):  # noqa: B017
            pass
    chain, error = [], raised.value
    while error is not None:
        chain.append(str(error))
        error = error.__cause__ or error.__context__
    assert any(re.search(message, text, re.S) for text in chain), chain


# -- the user flow: create-dagster, dg scaffold defs, dg check / list defs, dg launch ---------


def run_cli(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(BIN / args[0]), *args[1:]], cwd=cwd, env=env, capture_output=True, text=True, timeout=HANG_S
    )
    assert result.returncode == 0, f"{args}: {result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def test_dg_project_with_two_pipeline_components(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    project = tmp_path / "demo"
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "DAGSTER_HOME": str(home),
        "DAGSTER_DG_UPDATE_CHECK_ENABLED": "0",  # no PyPI look-up
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        # No `uv sync` (offline): the project runs on this venv, its package from src/.
        "PYTHONPATH": str(project / "src"),
        "TWEETS_OUTPUT": str(tmp_path / "tweets-out"),
    }
    run_cli(["create-dagster", "project", "--no-uv-sync", str(project)], tmp_path, env)
    listed = run_cli(["dg", "list", "components", "--json"], project, env)
    assert TYPE in {entry["key"] for entry in json.loads(listed.stdout)["items"]}
    for name in ("tweets", "news"):
        run_cli(["dg", "scaffold", "defs", TYPE, name], project, env)
        assert (project / "src" / "demo" / "defs" / name / "pipeline.py").is_file()
    run_cli(["dg", "check", "defs"], project, env)

    listed = json.loads(run_cli(["dg", "list", "defs", "--json"], project, env).stdout)
    keys = {asset["asset_key"] for asset in listed["assets"]}
    assert {
        "tweets/abstracts",
        "tweets/tweets_from_abstracts",
        "news/abstracts",
        "news/tweets_from_abstracts",
    } <= keys
    assert {job["name"] for job in listed["jobs"]} >= {"dreamer_pipeline_tweets", "dreamer_pipeline_news"}
    assert {resource["name"] for resource in listed["resources"]} >= {
        "dreamer_io_manager_tweets",
        "dreamer_io_manager_news",
    }

    run_cli(["dg", "launch", "--assets", "tweets/abstracts"], project, env)
    record = json.loads((tmp_path / "tweets-out" / "abstracts" / "step.json").read_text())
    assert record["name"] == "Abstracts" and record["num_rows"] == 2
    assert not (project / "output" / "news").exists()  # only the selected component's step ran
