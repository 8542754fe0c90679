"""Shared fixtures. Each area keeps its own fixtures in tests/support/<area>.py,
registered below (``tests.support.services`` also fails, under CI, a test skipped for a
missing service)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

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
    "tests.support.services",
    "pytester",
]

SCRATCH_FREE_BYTES = 2 * 2**30


def _scratch_folder(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A new folder for a Dagster home: in /dev/shm where it is a writable tmpfs with room to
    spare (SQLite's syncs cost nothing there: a materialization takes about half the time),
    else under pytest's temporary folder."""
    shm = Path("/dev/shm")
    try:
        if os.access(shm, os.W_OK) and shutil.disk_usage(shm).free >= SCRATCH_FREE_BYTES:
            return Path(tempfile.mkdtemp(prefix=f"dreamer-{name}-{os.getpid()}-", dir=shm))
    except OSError:
        pass
    return tmp_path_factory.mktemp(name)


def _remove_scratch_of_dead_sessions() -> None:
    """The /dev/shm folders of test sessions that were killed (their pid is gone)."""
    for folder in Path("/dev/shm").glob("dreamer-dagster_home*-*-*"):
        pid = folder.name.rsplit("-", 2)[-2]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def dagster_home_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A Dagster home whose SQLite storage is made once a session: each test's instance starts
    from a copy (0.15 s instead of the 1.5-3 s its tables take to create)."""
    _remove_scratch_of_dead_sessions()
    template = _scratch_folder(tmp_path_factory, "dagster_home_template")
    with dg.instance_for_test(temp_dir=str(template)):
        pass
    yield template
    shutil.rmtree(template, ignore_errors=True)


@pytest.fixture
def instance(
    tmp_path_factory: pytest.TempPathFactory, dagster_home_template: Path
) -> Iterator[dg.DagsterInstance]:
    """One Dagster instance shared by every materialization in a test (its own storage, a copy
    of the session's template)."""
    home = _scratch_folder(tmp_path_factory, "dagster_home")
    shutil.copytree(dagster_home_template, home, dirs_exist_ok=True)
    try:
        with dg.instance_for_test(temp_dir=str(home)) as test_instance:
            yield test_instance
    finally:
        if home.is_relative_to("/dev/shm"):
            shutil.rmtree(home, ignore_errors=True)


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
