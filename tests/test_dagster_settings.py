"""Per-step Dagster settings, pools, kinds, the translator and what an asset shows:
declared on real steps, built into real assets, materialized by real Dagster."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from dreamer_dagster import (
    DreamerIOManager,
    DreamerTranslator,
    Pipeline,
    build_step_spec,
)
from dreamer_dagster.llms import HFTransformers, OpenAI
from dreamer_dagster.steps import DataSource, ProcessWithPrompt, StepDeclarationError
from dreamer_dagster.trainers import TrainHFFineTune, TrainOpenAIFineTune
from dreamer_dagster.translator import DEFAULT_RETRY_POLICY
from tests.support.foundation import materialization_metadata, materialize, rows

HERE = Path(__file__).resolve()


def llm(server, **kwargs) -> OpenAI:
    return OpenAI("fake-chat", base_url=server.base_url, api_key="test-key", **kwargs)


def prompt_step(name, source, model, **settings) -> ProcessWithPrompt:
    return ProcessWithPrompt(
        name,
        inputs={"inputs": source.output["text"]},
        args={"llm": model, "instruction": "Shorten it."},
        **settings,
    )


def op_of(asset: dg.AssetsDefinition):
    return asset.op


# -- settings on every step ---------------------------------------------------------------


def test_every_step_and_trainer_takes_the_settings_without_changing_its_fingerprint(openai_server):
    model = llm(openai_server)
    source = DataSource("Texts", {"text": ["a", "b"]})
    plain = prompt_step("Plain", source, model)
    condition = dg.AutomationCondition.eager()
    policy = dg.RetryPolicy(max_retries=5, delay=1)
    configured = prompt_step(
        "Plain",
        source,
        model,
        automation_condition=condition,
        pool="shared_api",
        retry_policy=policy,
        checks={"duplicate_generations": {"warn": 0.1}},
        budget_usd=2.5,
        owners=["ml@example.com", "team:data"],
        tags={"stage": "generation"},
        op_tags={"dagster-k8s/config": {"container_config": {"resources": {"limits": {"cpu": "1"}}}}},
        group_name="generation",
    )
    assert configured.fingerprint == plain.fingerprint
    assert (configured.pool, configured.retry_policy, configured.budget_usd) == ("shared_api", policy, 2.5)

    asset = configured.asset
    spec = asset.specs_by_key[asset.key]
    assert spec.automation_condition == condition
    assert spec.owners == ["ml@example.com", "team:data"]
    assert spec.tags["stage"] == "generation" and spec.group_name == "generation"
    assert spec.code_version == plain.fingerprint
    assert asset.op.pool == "shared_api"
    assert asset.op.retry_policy == policy
    k8s = json.loads(asset.op.tags["dagster-k8s/config"])  # Dagster stores op tags as strings
    assert k8s["container_config"]["resources"]["limits"]["cpu"] == "1"

    # Operations and trainers take them too (trainers through their own signatures).
    taken = source.take(1, name="First").configure(pool="ops", owners=["team:data"])
    assert taken.asset.op.pool == "ops"
    trainer = TrainHFFineTune("Tuned", model_name="some/model", pool="gpu_big", tags={"kind": "lora"})
    trainer.train(train_input=source.output["text"], train_output=source.output["text"])
    assert trainer.asset.op.pool == "gpu_big"
    assert trainer.asset.specs_by_key[trainer.asset.key].tags["kind"] == "lora"


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("pool", "has space", "not a pool name"),
        ("retry_policy", 3, "dg.RetryPolicy"),
        ("automation_condition", "eager", "dg.AutomationCondition"),
        ("budget_usd", -1, "US dollars > 0"),
        ("owners", ["bob"], "email or 'team:name'"),
        ("checks", {"duplicates": {}}, "unknown check 'duplicates'"),
        ("checks", {"duplicate_generations": {"warning": 0.1}}, "unknown keys"),
        ("checks", {"eval_loss": {"warn": 0.1}}, "does not apply to a DataSource"),
        ("tags", {"a": 1}, "strings to strings"),
    ],
)
def test_bad_settings_fail_at_declaration_naming_step_and_argument(setting, value, message):
    with pytest.raises(StepDeclarationError) as error:
        DataSource("Seeds", {"text": ["a"]}, **{setting: value})
    assert "Step 'Seeds' (DataSource)" in str(error.value)
    assert f"argument {setting!r}" in str(error.value) and message in str(error.value)


def test_pipeline_defaults_and_step_overrides(tmp_path, openai_server):
    model = llm(openai_server)
    with Pipeline(
        str(tmp_path / "output"),
        automation_condition=dg.AutomationCondition.eager(),
        pool="team_pool",
        owners=["team:data"],
        tags={"project": "tweets", "stage": "any"},
        checks={"duplicate_generations": {"warn": 0.05}},
        budget_usd=1.0,
    ) as pipeline:
        source = DataSource("Texts", {"text": ["a"]})
        default = prompt_step("Default", source, model)
        own = prompt_step("Own", source, model, pool="own_pool", tags={"stage": "mine"}, budget_usd=3.0)
        trainer = TrainOpenAIFineTune("Tuned", model_name="gpt-4o-mini", retry_policy=False).train(
            train_input=source.output["text"], train_output=source.output["text"]
        )
    assert default.pool == "team_pool" and own.pool == "own_pool"
    assert (default.budget_usd, own.budget_usd, trainer.budget_usd) == (1.0, 3.0, 1.0)
    assert own.tags == {"project": "tweets", "stage": "mine"}
    assert trainer.pool == "team_pool" and trainer.retry_policy is False
    assert default.checks["duplicate_generations"].warn == 0.05
    defs = pipeline.definitions()
    assets = {asset.key.to_user_string(): asset for asset in defs.assets}
    assert assets["own"].op.pool == "own_pool"
    assert assets["tuned"].op.retry_policy is None
    assert assets["default"].specs_by_key[assets["default"].key].automation_condition is not None
    with pytest.raises(ValueError, match=r"Pipeline, argument 'pool'"):
        Pipeline(str(tmp_path), pool="bad pool")


# -- pools and kinds from the model ---------------------------------------------------------


def test_pools_and_kinds_follow_the_model(openai_server):
    source = DataSource("Texts", {"text": ["a"]})
    api = prompt_step("Api", source, llm(openai_server))
    port = openai_server.port
    assert api.asset.op.pool == f"openai_127_0_0_1_{port}"
    assert OpenAI("gpt-4o-mini").default_pool() == "openai_api_openai_com"
    assert api.asset.op.retry_policy == DEFAULT_RETRY_POLICY
    assert {"openai", "prompt"} <= api.dagster_kinds()

    local = prompt_step("Local", source, HFTransformers("some/model", device="cpu"))
    on_gpu = prompt_step("On Gpu", source, HFTransformers("some/model", device=0))
    assert (local.asset.op.pool, on_gpu.asset.op.pool) == ("local_cpu", "local_cuda_0")
    assert "huggingface" in local.dagster_kinds()

    shared = llm(openai_server).with_pool("my_endpoint")
    assert prompt_step("Shared", source, shared).asset.op.pool == "my_endpoint"
    with pytest.raises(ValueError, match="not a pool name"):
        llm(openai_server).with_pool("two words")

    trainer = TrainHFFineTune("Tune", model_name="some/model").train(
        train_input=source.output["text"], train_output=source.output["text"]
    )
    on_cpu = TrainHFFineTune("Tune Cpu", model_name="some/model", device="cpu").train(
        train_input=source.output["text"], train_output=source.output["text"]
    )
    assert (trainer.asset.op.pool, on_cpu.asset.op.pool) == ("gpu", "cpu")
    assert {"huggingface", "pytorch", "trainer"} <= trainer.dagster_kinds()
    assert trainer.asset.op.retry_policy is None  # no model call to retry
    assert source.asset.op.pool is None and source.asset.op.retry_policy is None


# -- the translator -------------------------------------------------------------------------


class TeamTranslator(DreamerTranslator):
    def get_asset_spec(self, step):
        spec = super().get_asset_spec(step)
        # A careless override of what reuse depends on is put right by build_step_spec.
        spec = spec.replace_attributes(code_version="overridden", group_name="team_group")
        return spec.merge_attributes(tags={"team": "ml"}, kinds={"dreamer"})

    def get_op_settings(self, step):
        settings = super().get_op_settings(step)
        if type(step).KIND == "trainer":
            return settings.replace(op_tags={"dagster-k8s/config": {"pod_spec_config": {"gpu": 1}}})
        return settings.replace(pool="translated")


def test_translator_prefix_group_tags_and_op_settings_keep_reuse_and_loading(
    tmp_path, instance, openai_server
):
    output = tmp_path / "output"
    model = llm(openai_server)
    with Pipeline(str(output), translator=TeamTranslator(key_prefix=["team", "tweets"])) as pipeline:
        source = DataSource("Texts", {"text": ["a", "b"]})
        short = prompt_step("Short", source, model)
        trainer = TrainOpenAIFineTune("Tuned", model_name="gpt-4o-mini").train(
            train_input=short.output["generations"], train_output=short.output["inputs"]
        )
    spec = build_step_spec(short, pipeline.translator)
    assert spec.key == dg.AssetKey(["team", "tweets", "short"])
    assert spec.code_version == short.fingerprint  # set after the hook
    assert spec.metadata["dreamer/fingerprint"] == short.fingerprint
    assert spec.group_name == "team_group" and spec.tags["team"] == "ml" and "dreamer" in spec.kinds
    assert [dep.asset_key for dep in spec.deps] == [dg.AssetKey(["team", "tweets", "texts"])]
    assert json.loads(trainer.asset.op.tags["dagster-k8s/config"]) == {"pod_spec_config": {"gpu": 1}}
    assert short.asset.op.pool == "translated"

    defs = pipeline.definitions()
    keys = {asset.key for asset in defs.assets}
    assert dg.AssetKey(["team", "tweets", "tuned"]) in keys
    dg.materialize(
        [asset for asset in defs.assets if asset.key != trainer.asset_key],
        instance=instance,
        resources=dict(defs.resources),
    )
    # Folders keep the step's plain name; the prefixed downstream loaded its input from it.
    assert rows(output, short)["generations"] == ["Echo: Input: a\n\nInstruction: Shorten it."] + [
        "Echo: Input: b\n\nInstruction: Shorten it."
    ]
    assert not (output / "team").exists()

    # asset_spec=fn changes the spec the same way.
    def grouped(step, spec):
        return spec.replace_attributes(group_name=f"g_{step.key}")

    with Pipeline(str(output), asset_spec=grouped) as functional:
        again = DataSource("Texts", {"text": ["a", "b"]})
    assert functional.definitions().assets[0].specs_by_key[again.asset_key].group_name == "g_texts"


def test_two_pipelines_with_two_io_managers_in_one_code_location(tmp_path, instance):
    with Pipeline(str(tmp_path / "first"), io_manager_key="first_io") as first:
        DataSource("Texts", {"text": ["one"]}).take(1, name="Taken A")
    with Pipeline(str(tmp_path / "second"), io_manager_key="second_io") as second:
        DataSource("Other Texts", {"text": ["two"]}).take(1, name="Taken B")
    defs = dg.Definitions.merge(first.definitions(), second.definitions())
    assert isinstance(defs.resources["first_io"], DreamerIOManager)
    job = defs.resolve_job_def("dreamer_pipeline_second_io")
    assert job.execute_in_process(instance=instance).success
    assert (tmp_path / "second" / "taken-b" / "step.json").exists()
    assert not (tmp_path / "first").exists()
    assert defs.resolve_job_def("dreamer_pipeline_first_io").execute_in_process(instance=instance).success
    assert json.loads((tmp_path / "first" / "taken-a" / "step.json").read_text())["num_rows"] == 1


# -- what an asset page shows ----------------------------------------------------------------


def test_asset_shows_description_code_reference_uri_rows_schema_card_stats_and_sample(
    tmp_path, instance, openai_server
):
    output = tmp_path / "output"
    source = DataSource("Texts", {"text": [f"text {i} " + "long " * 40 for i in range(7)]})
    model = llm(openai_server)
    inputs, args = {"inputs": source.output["text"]}, {"llm": model, "instruction": "Go"}
    short = ProcessWithPrompt("Short", inputs=inputs, args=args)  # the line the UI links to
    line = next(
        i for i, text in enumerate(HERE.read_text().splitlines(), 1) if "the line the UI links" in text
    )
    asset = short.asset
    spec = asset.specs_by_key[asset.key]
    assert spec.description.startswith("Short — ProcessWithPrompt: ")
    [reference] = spec.metadata["dagster/code_references"].code_references
    assert (reference.file_path, reference.line_number) == (str(HERE), line)
    assert {"openai", "prompt"} <= set(spec.kinds)

    result = materialize([short], instance, output)
    metadata = materialization_metadata(result, short)
    assert metadata["dagster/uri"] == (output / "short").resolve().as_uri()
    assert metadata["dagster/row_count"] == 7
    assert [column.name for column in metadata["dagster/column_schema"].columns] == [
        "inputs",
        "prompts",
        "generations",
    ]
    assert "## Short" in metadata["dreamer/data_card"] and "fake-chat" in metadata["dreamer/data_card"]
    assert metadata["dreamer/model_calls"] == 7 and metadata["dreamer/cache_hits"] == 0
    sample = metadata["dreamer/sample"]  # a table the web UI shows as one
    assert [column.name for column in sample.schema.columns] == ["inputs", "prompts", "generations"]
    assert len(sample.records) == 5
    assert all(len(cell) <= 80 for record in sample.records for cell in record.data.values())
    assert "…" in "".join(sample.records[0].data.values())


def test_automation_is_opt_in_and_its_sensor_starts_stopped(tmp_path, instance):
    with Pipeline(str(tmp_path / "output")) as plain:
        DataSource("Texts", {"text": ["a"]})
    assert not any(
        sensor.name == "default_automation_condition_sensor" for sensor in plain.definitions().sensors or []
    )
    repository = plain.definitions().get_repository_def()
    assert not repository.has_sensor_def("default_automation_condition_sensor")

    condition = dg.AutomationCondition.code_version_changed() | dg.AutomationCondition.missing()
    with Pipeline(str(tmp_path / "output"), automation_condition=condition) as automated:
        source = DataSource("Texts", {"text": ["a"]})
    defs = automated.definitions()
    sensor = defs.get_repository_def().get_sensor_def("default_automation_condition_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    # Dagster's own evaluation of the condition: the never-materialized step is requested.
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert result.get_requested_partitions(source.asset_key) == {None}
