"""Metadata as dbt gives it: ``dagster/column_schema`` (plain types) and
``dagster/column_lineage`` on the asset spec before any run; plain types, a
``TableMetadataValue`` of sample rows and dagster-openai's ``openai.*`` usage keys on each
materialization; the pre-run estimate (``dreamer/estimate``) on the spec."""

from __future__ import annotations

import dagster as dg

from dreamer_dagster import DreamerTranslator, Pipeline, dreamer_definitions
from dreamer_dagster.column_schema import plain_type
from dreamer_dagster.embedders import OpenAIEmbedder
from dreamer_dagster.llms import OpenAI
from dreamer_dagster.load_estimate import MAX_LOAD_PROMPTS
from dreamer_dagster.steps import DataFromPrompt, DataSource, Embed, ProcessWithPrompt


def specs(defs: dg.Definitions) -> dict[str, dg.AssetSpec]:
    return {spec.key.to_user_string(): spec for spec in defs.resolve_all_asset_specs()}


def schema_of(spec_or_metadata) -> dict[str, str]:
    metadata = getattr(spec_or_metadata, "metadata", spec_or_metadata)
    schema = metadata["dagster/column_schema"]
    schema = getattr(schema, "schema", schema)  # a materialization's metadata value
    return {column.name: column.type for column in schema.columns}


def lineage_of(spec: dg.AssetSpec) -> dict[str, list[tuple[str, str]]]:
    lineage = spec.metadata["dagster/column_lineage"]
    return {
        column: [(dep.asset_key.to_user_string(), dep.column_name) for dep in deps]
        for column, deps in lineage.deps_by_column.items()
    }


def pipeline_steps(server_url: str):
    source = DataSource(
        "Texts",
        {"text": ["a b", "c d e"], "n": [1, 2], "v": [[0.5, 1.5], [2.0]], "meta": [{"k": 1}, {"k": 2}]},
    )
    llm = OpenAI("fake-chat", base_url=server_url)
    tweets = ProcessWithPrompt(
        "Tweets",
        inputs={"inputs": source.output["text"]},
        args={"llm": llm, "instruction": "Write a tweet."},
        outputs={"inputs": "texts", "generations": "tweets"},
    )
    renamed = tweets.rename_column("tweets", "tweet")
    kept = renamed.select_columns(["tweet"])
    embedded = Embed(
        "Embedded",
        inputs={"texts": kept.output["tweet"]},
        args={"embedder": OpenAIEmbedder("fake-embed", base_url=server_url, dimensions=16)},
    )
    return source, tweets, renamed, kept, embedded


def test_column_schema_and_lineage_are_on_the_spec_before_the_first_run(tmp_path, openai_server):
    source, tweets, renamed, kept, embedded = pipeline_steps(openai_server.base_url)
    output = tmp_path / "output"
    defs = dreamer_definitions([embedded], output_folder=str(output))
    by_key = specs(defs)
    assert not output.exists()  # nothing ran, nothing was read
    assert schema_of(by_key["texts"]) == {
        "text": "string",
        "n": "int64",
        "v": "list<float64>",
        "meta": "struct",
    }
    assert "dagster/column_lineage" not in by_key["texts"].metadata  # a source has no upstream
    assert schema_of(by_key["tweets"]) == {"texts": "string", "prompts": "string", "tweets": "string"}
    assert lineage_of(by_key["tweets"]) == {
        "texts": [("texts", "text")],
        "prompts": [("texts", "text")],
        "tweets": [("texts", "text")],
    }
    rename_key, select_key = renamed.asset_key.to_user_string(), kept.asset_key.to_user_string()
    assert schema_of(by_key[rename_key]) == {"texts": "string", "prompts": "string", "tweet": "string"}
    assert lineage_of(by_key[rename_key])["tweet"] == [("tweets", "tweets")]
    assert schema_of(by_key[select_key]) == {"tweet": "string"}
    assert lineage_of(by_key[select_key]) == {"tweet": [(rename_key, "tweet")]}
    assert schema_of(by_key["embedded"]) == {"texts": "string", "embeddings": "list<float32>"}
    assert lineage_of(by_key["embedded"]) == {
        "texts": [(select_key, "tweet")],
        "embeddings": [(select_key, "tweet")],
    }


def test_a_translators_own_column_schema_is_kept(tmp_path):
    class Own(DreamerTranslator):
        def get_asset_spec(self, step):
            schema = dg.TableSchema(columns=[dg.TableColumn("text", "varchar")])
            return super().get_asset_spec(step).merge_attributes(metadata={"dagster/column_schema": schema})

    source = DataSource("Texts", {"text": ["a"]})
    defs = dreamer_definitions([source], output_folder=str(tmp_path), translator=Own())
    assert schema_of(specs(defs)["texts"]) == {"text": "varchar"}


def test_materializations_have_plain_types_a_sample_table_and_openai_usage_keys(
    tmp_path, instance, openai_server, monkeypatch
):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    source, tweets, renamed, kept, embedded = pipeline_steps(openai_server.base_url)
    defs = dreamer_definitions([embedded], output_folder=str(tmp_path / "output"))
    result = dg.materialize(list(defs.assets), instance=instance, resources=dict(defs.resources))
    assert result.success

    def metadata(step) -> dict:
        [event] = result.asset_materializations_for_node(step.asset_key.to_python_identifier())
        return {key: value.value for key, value in event.metadata.items()}

    texts = metadata(source)
    assert schema_of(texts) == {"text": "string", "n": "int64", "v": "list<float64>", "meta": "struct"}
    assert "openai.calls" not in texts  # a step that calls no API model
    assert schema_of(metadata(embedded)) == {"texts": "string", "embeddings": "list<float32>"}

    made = metadata(tweets)
    assert schema_of(made) == schema_of(specs(defs)["tweets"])  # the declaration said it right
    sample = made["dreamer/sample"]
    assert isinstance(sample, dg.TableMetadataValue)
    assert [column.name for column in sample.schema.columns] == ["texts", "prompts", "tweets"]
    assert [record.data["texts"] for record in sample.records] == ["a b", "c d e"]
    assert made["openai.calls"] == 2 and made["openai.fake-chat.calls"] == 2
    assert made["openai.prompt_tokens"] == made["dreamer/prompt_tokens"] > 0
    assert made["openai.completion_tokens"] == made["dreamer/completion_tokens"] > 0
    assert made["openai.total_tokens"] == made["openai.prompt_tokens"] + made["openai.completion_tokens"]
    embedded_usage = metadata(embedded)
    assert embedded_usage["openai.calls"] >= 1 and embedded_usage["openai.fake-embed.calls"] >= 1

    # A reused step made no calls this time: no usage keys.
    again = dg.materialize(list(defs.assets), instance=instance, resources=dict(defs.resources))
    [event] = again.asset_materializations_for_node("tweets")
    assert event.metadata["dreamer/reused"].value is True and "openai.calls" not in event.metadata


def plain(text: str) -> str:
    return plain_type(text)


def test_plain_type_names_from_datasets_features():
    assert plain("Value('string')") == "string"
    assert plain("Value(dtype='int64', id=None)") == "int64"
    assert plain("List(Value('float32'), length=384)") == "float32[384]"
    assert plain("Sequence(feature=Value(dtype='float32', id=None), length=384, id=None)") == "float32[384]"
    assert plain("List(Value('string'))") == "list<string>"
    assert plain("List({'x': Value('int64')})") == "list<struct>"
    assert plain("{'a': Value('string'), 'b': List(Value('int64'))}") == "struct"
    assert plain("[Value('string')]") == "list<string>"
    assert plain("ClassLabel(names=['a', 'b'])") == "int64"
    assert plain("Array2D(shape=(2, 3), dtype='float32')") == "float32[2,3]"
    assert plain({"feature": {"dtype": "float32", "_type": "Value"}, "length": 8, "_type": "List"}) == (
        "float32[8]"
    )


def test_the_pre_run_estimate_is_on_the_spec(tmp_path, instance, openai_server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with Pipeline(str(tmp_path / "priced"), run=False) as priced:
        made = DataFromPrompt(
            "Made",
            args={
                "llm": OpenAI("gpt-4o-mini"),
                "instruction": "Write a tweet.",
                "n": 20,
                "max_new_tokens": 10,
            },
        )
        ProcessWithPrompt(
            "Then",
            inputs={"inputs": made.output["generations"]},
            args={"llm": OpenAI("gpt-4o-mini"), "instruction": "x"},
        )
        DataFromPrompt(
            "Many", args={"llm": OpenAI("gpt-4o-mini"), "instruction": "x", "n": MAX_LOAD_PROMPTS + 1}
        )
        DataSource("Plain", {"text": ["a"]})
    by_key = specs(priced.definitions())
    estimate = by_key["made"].metadata["dreamer/estimate"].data
    assert estimate["uncached_prompts"] == 20 and estimate["completion_tokens"] == 20 * 10
    assert estimate["estimated_usd"] > 0 and estimate["note"] is None
    then = by_key["then"].metadata["dreamer/estimate"].data
    assert then["estimated_usd"] is None and "prompts come from the data of 'Made'" in then["note"]
    assert "more than 1000 prompts" in by_key["many"].metadata["dreamer/estimate"].data["note"]
    assert "dreamer/estimate" not in by_key["plain"].metadata  # no model, no estimate
    assert not (tmp_path / "priced").exists()

    # After a run, loading again shows the reused step at $0.
    with Pipeline(str(tmp_path / "run"), run=False) as served:
        DataFromPrompt(
            "Made",
            args={"llm": OpenAI("fake-chat", base_url=openai_server.base_url), "instruction": "x", "n": 3},
        )
    defs = served.definitions()
    assert dg.materialize(list(defs.assets), instance=instance, resources=dict(defs.resources)).success
    reloaded = specs(served.definitions())["made"].metadata["dreamer/estimate"].data
    assert reloaded["uncached_prompts"] == 0 and reloaded["estimated_usd"] == 0.0
    assert reloaded["note"] == "its finished output is reused"
