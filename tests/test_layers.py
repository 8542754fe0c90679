"""The layers (CONTRIBUTING.md "Layers"): the core rooms never import steps/, pipeline,
script_mode or definitions, checked by import-linter's contract in pyproject.toml (the
same ``lint-imports`` that ``make test`` runs), and the contract still covers the core."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from tests.support.waiting import HANG_S

ROOT = Path(__file__).resolve().parents[1]
CORE = ["fingerprint", "cache", "output_folder", "deferred", "model", "llms", "checks", "cost"]
UPPER = ["steps", "pipeline", "script_mode", "definitions"]


def _contract() -> dict:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    assert config["root_package"] == "dreamer_dagster"
    (contract,) = [c for c in config["contracts"] if c["id"] == "core-below-steps"]
    return contract


def test_the_contract_forbids_the_upper_layers_to_every_core_room():
    contract = _contract()
    assert contract["type"] == "forbidden"
    assert not contract.get("allow_indirect_imports", False)  # a chain through another room counts
    assert {f"dreamer_dagster.{name}" for name in CORE} <= set(contract["source_modules"])
    assert set(contract["forbidden_modules"]) == {f"dreamer_dagster.{name}" for name in UPPER}


def test_the_core_never_imports_the_upper_layers():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--no-cache", "--no-logo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=HANG_S,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{_contract()['name']} KEPT" in result.stdout
