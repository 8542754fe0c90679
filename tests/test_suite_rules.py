"""The suite's own rules: a test skipped for a missing service fails under CI (``CI=true``)
and is listed at the end of any run (tests/support/services.py); GPU tests skip everywhere;
each test's Dagster instance starts empty (tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

EXAMPLE = """
import pytest

from tests.support.services import missing_service, skip_missing_service


@pytest.fixture
def broker():
    skip_missing_service("redis-server is not installed (Debian package redis-server)", "apt-get it")


def test_needs_a_service():
    skip_missing_service("PostgreSQL is not installed (Debian package postgresql)", "apt-get it")


def test_needs_a_service_through_a_fixture(broker):
    pass


def test_needs_a_test_extra():
    pytest.importorskip("no_such_module_here", reason=missing_service("moto is not installed", "pip it"))


@pytest.mark.gpu
def test_needs_a_gpu():
    pytest.skip("needs a CUDA GPU")


@pytest.mark.gpu
def test_needs_vllm_on_a_gpu():
    skip_missing_service("vllm is not installed", "pip install vllm on a GPU machine")


def test_skips_for_another_reason():
    pytest.skip("only on Windows")


def test_passes():
    pass
"""


def run_example(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: bool) -> pytest.RunResult:
    if ci:
        monkeypatch.setenv("CI", "true")
    else:
        monkeypatch.delenv("CI", raising=False)
    pytester.makeini("[pytest]\nmarkers =\n    gpu: needs a CUDA GPU\n")
    pytester.makepyfile(test_example=EXAMPLE)
    return pytester.runpytest("-p", "tests.support.services", "-ra")


def test_a_missing_service_skips_with_its_reason_and_is_listed_at_the_end(pytester, monkeypatch):
    result = run_example(pytester, monkeypatch, ci=False)
    result.assert_outcomes(passed=1, skipped=6)
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "*= missing services =*",
            "1 test skipped: PostgreSQL is not installed (Debian package postgresql) (apt-get it)",
            "1 test skipped: moto is not installed (pip it)",
            "1 test skipped: redis-server is not installed (Debian package redis-server) (apt-get it)",
            "1 test skipped: vllm is not installed (pip install vllm on a GPU machine)",
            "These skip here; under CI (CI=true) each is a failure.",
            # -ra's list (pyproject's addopts), each skip at its test's line
            "SKIPPED [[]1[]] test_example.py:11: missing service: PostgreSQL is not installed*(apt-get it)",
            "SKIPPED [[]1[]] test_example.py:25: needs a CUDA GPU",
        ],
        consecutive=False,
    )


def test_under_ci_a_missing_service_fails_and_gpu_tests_still_skip(pytester, monkeypatch):
    result = run_example(pytester, monkeypatch, ci=True)
    # The fixture's skip happens in setup, so that test errors; the two in the body fail.
    result.assert_outcomes(passed=1, failed=2, errors=1, skipped=3)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*test_needs_a_service skipped for a missing service: PostgreSQL is not installed*"
            "Under CI (CI=true) a missing service is a failure*",
        ]
    )
    _, skipped, _ = result.reprec.listoutcomes()
    assert sorted(report.nodeid.split("::")[-1] for report in skipped) == [
        "test_needs_a_gpu",
        "test_needs_vllm_on_a_gpu",
        "test_skips_for_another_reason",
    ]


@dg.asset
def one() -> int:
    return 1


def test_each_instance_starts_empty_and_leaves_the_template_empty(instance, dagster_home_template: Path):
    assert instance.get_runs() == []
    assert dg.materialize([one], instance=instance).success
    assert len(instance.get_runs()) == 1
    with dg.DagsterInstance.from_config(str(dagster_home_template)) as template:
        assert template.get_runs() == []
