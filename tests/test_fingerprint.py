"""The one fingerprint: stable across processes, sensitive to what changes outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dreamer_dagster.fingerprint import DataFile, FingerprintError, canonical, fingerprint

PIPELINE = textwrap.dedent(
    """
    import json, sys
    from dreamer_dagster.llms import OpenAI
    from dreamer_dagster.steps import DataFromAttributedPrompt, DataSource, JSONDataSource

    threshold = 3
    rows = JSONDataSource("Rows", data_files=sys.argv[1])
    kept = rows.filter(lambda row: len(row["text"]) > threshold, name="Kept")
    colors = DataSource("Colors", {"colors": ["red,blue"]})
    prompt = DataFromAttributedPrompt(
        "Attributed",
        args={
            "llm": OpenAI("gpt-4o-mini", system_prompt="Be brief."),
            "n": 2,
            "instruction": "Write about {color}.",
            "attributes": {"color": colors.output["colors"][0].split(",")},
        },
    )
    print(json.dumps([kept.fingerprint, prompt.fingerprint]))
    """
)


def fingerprints_in_a_new_process(tmp_path: Path, data_file: Path, hash_seed: str) -> list[str]:
    script = tmp_path / "pipeline.py"
    script.write_text(PIPELINE)
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "OPENAI_API_KEY": f"key-{hash_seed}"}
    result = subprocess.run(
        [sys.executable, str(script), str(data_file)], capture_output=True, text=True, env=env, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_same_fingerprints_in_separate_processes(tmp_path: Path) -> None:
    data_file = tmp_path / "rows.json"
    data_file.write_text(json.dumps([{"text": "hello"}, {"text": "hi"}]))
    first = fingerprints_in_a_new_process(tmp_path, data_file, "1")
    second = fingerprints_in_a_new_process(tmp_path, data_file, "12345")
    assert first == second  # hash randomization and a different API key change nothing
    data_file.write_text(json.dumps([{"text": "hello"}, {"text": "changed"}]))
    assert fingerprints_in_a_new_process(tmp_path, data_file, "1")[0] != first[0]


def test_callables_by_source_and_captured_values() -> None:
    def make(limit: int):
        return lambda row: len(row) > limit

    assert fingerprint(make(3)) == fingerprint(make(3))
    assert fingerprint(make(3)) != fingerprint(make(4))  # a captured value
    assert fingerprint(lambda row: row + 1) != fingerprint(lambda row: row + 2)  # the source
    assert fingerprint(str.upper) != fingerprint(str.lower)


def test_files_by_content_not_path(tmp_path: Path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("same")
    b.write_text("same")
    assert canonical(DataFile(a))["sha256"] == canonical(DataFile(b))["sha256"]
    b.write_text("other")
    assert canonical(DataFile(a))["sha256"] != canonical(DataFile(b))["sha256"]


def test_dict_order_does_not_matter_but_values_do() -> None:
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 1.5})


def test_values_without_a_stable_identity_are_refused() -> None:
    with pytest.raises(FingerprintError, match="no stable fingerprint"):
        fingerprint({"client": object()})
