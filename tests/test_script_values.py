"""Real values in a running script (issue 15): ``step.output["col"][i]`` inside a script's
block is the row's value (``json.dumps``, ``isinstance``, ``is None``, dict keys, numpy work
as in DataDreamer), and a value passed on to another step still fingerprints by its source,
so ``python script.py`` and ``dagster asset materialize -f script.py`` agree on every
fingerprint. The rule is stated in dreamer_dagster/sourced_values.py."""

from __future__ import annotations

import copy
import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from dreamer_dagster import Deferred, Pipeline
from dreamer_dagster.errors import OutputNotAvailableError
from dreamer_dagster.fingerprint import canonical
from dreamer_dagster.llms import OpenAI
from dreamer_dagster.steps import DataFromAttributedPrompt, DataSource, ProcessWithPrompt
from tests.support.waiting import HANG_S

ROWS = {
    "text": ["rivers", None, "trains"],
    "tags": ["calm,angry", "x", "y"],
    "n": [2, 1, 1],
    "score": [0.5, 1.5, 2.5],
    "flag": [True, False, True],
    "meta": [{"tone": ["dry", "warm"]}, {"tone": ["odd"]}, {"tone": ["sad"]}],
}

SCRIPT = textwrap.dedent(
    """
    import json, os
    from dreamer_dagster import Pipeline
    from dreamer_dagster.llms import OpenAI
    from dreamer_dagster.steps import DataFromAttributedPrompt, DataSource, ProcessWithPrompt

    llm = OpenAI("fake-chat", base_url=os.environ["BASE_URL"])
    with Pipeline(os.environ["OUTPUT"]) as pipeline:
        topics = DataSource("Topics", ROWS)
        first = topics.output["text"][0]
        tags = topics.output["tags"][0].split(",")
        n = topics.output["n"][0]
        meta = topics.output["meta"][0]
        if __name__ == "__main__":  # a running script: real values, as in DataDreamer
            print("JSON", json.dumps({"first": first, "tags": tags, "n": n, "meta": meta}))
            print("TYPES", isinstance(first, str), isinstance(n, int), isinstance(meta, dict),
                  topics.output["text"][1] is None, {first: 1}.get("rivers"))
        compare = ProcessWithPrompt(
            "Compare", inputs={"inputs": topics.output["tags"]}, args={"llm": llm, "instruction": first}
        )
        toned = DataFromAttributedPrompt(
            "Toned",
            args={"llm": llm, "instruction": "Write a {tone} line.", "attributes": {"tone": tags}, "n": n},
        )
        styled = DataFromAttributedPrompt(
            "Styled", args={"llm": llm, "instruction": "A {tone} poem.", "attributes": meta, "n": 1}
        )
    defs = pipeline.definitions()
    """
).replace("ROWS", repr(ROWS))


def _step_jsons(output: Path) -> dict[str, dict]:
    found = {}
    for path in output.rglob("step.json"):
        record = json.loads(path.read_text())
        found[record["name"]] = record
    return found


def test_script_values_are_real_and_fingerprint_as_materialize_does(tmp_path, openai_server):
    """`python pipeline.py` prints JSON of read values and sees `is None` on a None row; the
    same file under `dagster asset materialize -f` in a fresh output folder writes the same
    fingerprints and args in every step.json, Dagster records the same code versions, and
    the model gets the same prompts."""
    (tmp_path / "pipeline.py").write_text(SCRIPT)
    home = tmp_path / "dagster_home"
    env = {k: v for k, v in os.environ.items() if k != "DREAMER_RUN"}
    env.update(
        BASE_URL=openai_server.base_url,
        OPENAI_API_KEY="sk-loopback",
        DAGSTER_HOME=str(home),
        PYTHONPATH=str(Path(__file__).resolve().parents[1]),
    )

    def run(*command: str, output: str) -> str:
        result = subprocess.run(
            list(command),
            cwd=tmp_path,
            env={**env, "OUTPUT": str(tmp_path / output)},
            capture_output=True,
            text=True,
            timeout=HANG_S,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        return result.stdout + result.stderr

    script = run(sys.executable, "pipeline.py", output="script_output")
    assert (
        'JSON {"first": "rivers", "tags": ["calm", "angry"], "n": 2, "meta": {"tone": ["dry", "warm"]}}'
        in script
    )
    assert "TYPES True True True True 1" in script
    script_prompts = sorted(str(r["body"]["messages"]) for r in openai_server.requests)
    assert len(script_prompts) == 3 + 2 + 1

    dagster = str(Path(sys.executable).parent / "dagster")
    cli = run(dagster, "asset", "materialize", "-f", "pipeline.py", "--select", "*", output="cli_output")
    assert "JSON" not in cli  # loaded as definitions: nothing was read
    cli_prompts = sorted(str(r["body"]["messages"]) for r in openai_server.requests[len(script_prompts) :])
    assert cli_prompts == script_prompts

    by_script, by_cli = _step_jsons(tmp_path / "script_output"), _step_jsons(tmp_path / "cli_output")
    assert set(by_script) == set(by_cli) == {"Topics", "Compare", "Toned", "Styled"}
    for name, record in by_script.items():
        assert record["fingerprint"] == by_cli[name]["fingerprint"], name
        assert record["args"] == by_cli[name]["args"], name
    assert by_script["Compare"]["args"]["instruction"] == {
        "deferred": "Topics.output['text'][0]",
        "fingerprint": by_script["Topics"]["fingerprint"],
    }
    assert (
        by_script["Toned"]["args"]["attributes"]["tone"]["deferred"] == "Topics.output['tags'][0].split(',')"
    )

    # Dagster saw one code version per asset across both runs: the step's fingerprint.
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        for name, record in by_script.items():
            key = dg.AssetKey(name.lower())
            events = instance.fetch_materializations(key, limit=10).records
            versions = {event.asset_materialization.tags.get("dagster/code_version") for event in events}
            assert len(events) == 2 and versions == {record["fingerprint"]}, name
    finally:
        instance.dispose()


def _declare(folder: Path, run: bool, base_url: str) -> dict:
    """The same block, as a script (real values) or as definitions (Deferred values)."""
    llm = OpenAI("fake-chat", base_url=base_url)
    seen: dict = {}
    with Pipeline(str(folder), run=run):
        topics = DataSource("Topics", ROWS)
        word = topics.output["text"][0]
        tags = topics.output["tags"][0].split(",")
        meta = topics.output["meta"][0]
        threshold = topics.output["score"][-1]
        seen["values"] = (word, tags, meta, threshold)
        steps = {
            "word": ProcessWithPrompt(
                "Word", inputs={"inputs": topics.output["tags"]}, args={"llm": llm, "instruction": word}
            ),
            "method": ProcessWithPrompt(
                "Method",
                inputs={"inputs": topics.output["tags"]},
                args={"llm": llm, "instruction": word.upper().strip()},
            ),
            "item": ProcessWithPrompt(
                "Item", inputs={"inputs": topics.output["tags"]}, args={"llm": llm, "instruction": tags[1]}
            ),
            "nested": DataFromAttributedPrompt(
                "Nested",
                args={"llm": llm, "instruction": "{tone}", "attributes": {"tone": meta["tone"]}, "n": 1},
            ),
            "closure": topics.filter(lambda row: row["score"] < threshold, name="Closure"),
        }
        seen["at"] = canonical(topics.output["flag"].at(1))  # a Deferred in both modes
    seen["fingerprints"] = {name: step.fingerprint for name, step in steps.items()}
    seen["args"] = {name: step.describe_args() for name, step in steps.items()}
    return seen


def test_each_kind_of_read_value_fingerprints_as_its_deferred(
    tmp_path, script_home, openai_server, monkeypatch
):
    """Items, methods, nested dict values, a negative index and a value a closure captures give
    the fingerprints and step.json args of the same Deferred expressions declared as definitions."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-loopback")
    script = _declare(tmp_path / "script", True, openai_server.base_url)
    declared = _declare(tmp_path / "declared", False, openai_server.base_url)
    word, tags, meta, threshold = script["values"]
    assert type(word) is not str and isinstance(word, str) and word == "rivers"
    assert isinstance(threshold, float) and threshold == 2.5
    assert all(isinstance(value, Deferred) for value in declared["values"])
    assert script["fingerprints"] == declared["fingerprints"]
    assert script["args"] == declared["args"]
    assert (
        script["at"] == declared["at"] == canonical(declared["values"][0]) | {"deferred": "output['flag'][1]"}
    )
    assert script["args"]["method"]["instruction"]["deferred"] == "Topics.output['text'][0].upper().strip()"


def test_read_values_behave_as_plain_values(tmp_path, script_home):
    with Pipeline(str(tmp_path / "output"), run=True):
        topics = DataSource("Topics", ROWS)
        text, n, score, flag, meta = (topics.output[c][0] for c in ("text", "n", "score", "flag", "meta"))
        assert topics.output["text"][1] is None and flag is True and topics.output["flag"][1] is False
        assert json.loads(json.dumps([text, n, score, meta])) == ["rivers", 2, 0.5, {"tone": ["dry", "warm"]}]
        assert isinstance(text, str) and isinstance(n, int) and isinstance(score, float)
        assert isinstance(meta, dict) and isinstance(meta["tone"], list)
        assert {text: 1}["rivers"] == 1 and hash(text) == hash("rivers")
        assert np.array(topics.output["score"][0:3]).tolist() == [0.5, 1.5, 2.5]
        assert np.array([n, n]).dtype.kind == "i"
        assert topics.output["text"][0:2] == ["rivers", None]
        assert f"{text}!" == "rivers!" and type(f"{text}!") is str  # new text: a plain str
        assert type(pickle.loads(pickle.dumps(meta))) is dict and pickle.loads(pickle.dumps(text)) == "rivers"
        assert list(topics.output["text"]) == ["rivers", None, "trains"]
        assert topics.output["n"].num_rows == 3 and len(topics.output["n"]) == 3
        assert [row["text"] for row in topics.export_to_list()] == ["rivers", None, "trains"]
        assert topics.head(1)["text"].tolist() == ["rivers"] and topics.dataset.num_rows == 3
        with pytest.raises(IndexError):
            topics.output["text"][7]  # noqa: B018 - DataDreamer's error for a row past the end

        # A copy keeps its source; a container changed in place fingerprints by its value.
        assert canonical(copy.deepcopy(meta)) == canonical(meta) == meta.deferred.fingerprint_identity()
        meta["tone"].append("new")
        assert canonical(meta) == {"tone": [canonical(meta["tone"][0]), canonical(meta["tone"][1]), "new"]}
        assert canonical(meta["tone"][0])["deferred"] == "output['meta'][0]['tone'][0]"


def test_definitions_mode_reads_still_raise(tmp_path):
    """In a file Dagster loads, a read is a Deferred, and using it as a value raises as before."""
    with Pipeline(str(tmp_path / "output"), run=False):
        topics = DataSource("Topics", ROWS)
        value = topics.output["text"][0]
        assert isinstance(value, Deferred)
        with pytest.raises(OutputNotAvailableError, match="Step 'Topics'"):
            f"{value}"  # noqa: B018
        with pytest.raises(OutputNotAvailableError):
            value == "rivers"  # noqa: B015
