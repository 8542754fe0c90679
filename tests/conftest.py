"""Shared fixtures. Each area keeps its own fixtures in tests/support/<area>.py,
registered below."""

from __future__ import annotations

import os

import dagster as dg
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

pytest_plugins: list[str] = [
    "tests.support.trainers",
    "tests.support.openai_server",
    "tests.support.anthropic_server",
    "tests.support.s3",
]


@pytest.fixture
def instance(tmp_path_factory: pytest.TempPathFactory) -> dg.DagsterInstance:
    """One Dagster instance shared by every materialization in a test."""
    home = tmp_path_factory.mktemp("dagster_home")
    with dg.instance_for_test(temp_dir=str(home)) as test_instance:
        yield test_instance


@pytest.fixture
def output_folder(tmp_path) -> str:
    return str(tmp_path / "output")


@pytest.fixture(scope="session")
def script_dagster_home(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One DAGSTER_HOME for the tests that run ``Pipeline`` blocks as scripts in this process:
    its instance is made once, not once a block."""
    home = tmp_path_factory.mktemp("script_dagster_home")
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return str(home)


@pytest.fixture
def script_home(script_dagster_home: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs of ``Pipeline(..., run=True)`` blocks go to the shared script DAGSTER_HOME."""
    monkeypatch.setenv("DAGSTER_HOME", script_dagster_home)
    monkeypatch.delenv("DREAMER_RUN", raising=False)
    return script_dagster_home
