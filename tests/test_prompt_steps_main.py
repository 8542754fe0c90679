"""The README's main job (definitions.py, run by ``make main``): generation on the default LLM."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.waiting import HANG_S

REPO = Path(__file__).resolve().parents[1]

LOAD = """
import json, runpy, sys
import dagster as dg
namespace = runpy.run_path("definitions.py")
defs = namespace["defs"]
assert isinstance(defs, dg.Definitions)
keys = sorted(key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys())
heavy = [name for name in ("torch", "transformers", "trl", "peft", "sentence_transformers") if name in sys.modules]
print(json.dumps({"keys": keys, "heavy": heavy, "llm": type(namespace["llm"]).__name__}))
"""


def test_main_definitions_load_without_torch_or_transformers():
    result = subprocess.run(
        [sys.executable, "-c", LOAD], cwd=REPO, capture_output=True, text=True, timeout=HANG_S
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["heavy"] == []
    assert loaded["llm"] == "HFTransformers"
    assert {
        "generate_research_paper_abstracts",
        "generate_tweets_from_abstracts",
        "abstract_tweet_splits_train",
        "abstract_tweet_splits_validation",
    } <= set(loaded["keys"])
