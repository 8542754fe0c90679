"""DataDreamer's test fixtures, adapted: copied by the compatibility run as
``datadreamer/tests/conftest.py`` in place of DataDreamer's own conftest.

Each adaptation and its reason is listed in docs/parity.md ("DataDreamer's test suite").
``create_datadreamer`` and ``restore_os_environ`` are DataDreamer's, unchanged;
``create_test_step`` and ``mock_llm`` reach into DataDreamer's internals and are adapted;
the tests listed in ``not_applicable.py`` are skipped with their reason; a test that
runs longer than ``DREAMER_COMPAT_TIMEOUT`` seconds fails (SIGALRM).
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from datadreamer import DataDreamer
from datadreamer.errors import StepOutputError
from datadreamer.steps import Step, wait

from dreamer_dagster.testing import FakeLLM
from tests.datadreamer_compat.not_applicable import NOT_APPLICABLE

TEST_DIR = "./.tests_data"  # DataDreamer's tests/test_utils/config.py
TIMEOUT_S = int(os.environ.get("DREAMER_COMPAT_TIMEOUT", "60"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip the tests that are not applicable, with their reason."""
    for item in items:
        key = item.nodeid.split("datadreamer/tests/", 1)[-1].split("[", 1)[0]
        if key in NOT_APPLICABLE:
            item.add_marker(pytest.mark.skip(reason=f"not applicable: {NOT_APPLICABLE[key]}"))


class TestTimeout(Exception):
    """A DataDreamer test ran past the compatibility run's limit."""


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    def expire(_signum: int, _frame: Any) -> None:
        raise TestTimeout(f"{item.nodeid} ran past {TIMEOUT_S} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(TIMEOUT_S)
    try:
        return (yield)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="session", autouse=True)
def repository_readme() -> Iterator[None]:
    """Adapted: DataDreamer's tests run from its repository's root, where ``./README.md`` is a
    file (``test_path_is_to_file`` opens a session on it); the run's folder gets one."""
    path = Path("README.md")
    made = not path.exists()
    if made:
        path.write_text("DataDreamer's tests run from its repository root, which has this file.\n")
    yield
    if made:
        path.unlink(missing_ok=True)


@pytest.fixture(autouse=True)
def restore_os_environ() -> Iterator[None]:
    """DataDreamer's, unchanged."""
    orig_environ = os.environ.copy()
    yield
    os.environ.clear()
    os.environ.update(orig_environ)


@pytest.fixture
def create_datadreamer() -> Callable[..., DataDreamer]:
    """DataDreamer's, unchanged (``DataDreamer`` is ``Pipeline`` through the alias)."""

    def _create_datadreamer(path: None | str = None, **kwargs: Any) -> DataDreamer:
        if path is None:
            path = uuid.uuid4().hex[0:10]
        if path == ":memory:":
            return DataDreamer(path, **kwargs)
        return DataDreamer(os.path.join(TEST_DIR, path), **kwargs)

    return _create_datadreamer


@pytest.fixture
def create_test_step() -> Callable[..., Step]:
    """Adapted: DataDreamer marks its test step with the private ``_INTERNAL_TEST_KEY`` so
    that it never runs when constructed, and the tests hand the output in through the
    private ``Step._set_output``, which processes it at once. Here the test step's class
    sets ``RUNS_WHEN_DECLARED = False`` (this project's documented hook: the step runs only
    when code asks for it), ``_set_output(value)`` keeps the value and runs the step now
    with ``wait()`` (``run()`` returns the value, so its errors raise from ``_set_output``;
    a second ``_set_output`` after one that worked raises ``StepOutputError``), and reading
    ``.output`` before that raises ``StepOutputError``, as DataDreamer's ``output`` does."""

    def _create_test_step(
        name: str = "my-step",
        inputs: Any = None,
        args: Any = None,
        outputs: Any = None,
        output_names: Any = None,
        setup: Callable[[Step], None] | None = None,
        **kwargs: Any,
    ) -> Step:
        if output_names is None:
            output_names = []

        class TestStep(Step):
            RUNS_WHEN_DECLARED = False

            def setup(self) -> None:
                if isinstance(output_names, str):
                    self.register_output(output_names)
                else:
                    for o in output_names:
                        self.register_output(o)
                if setup is not None:
                    setup(self)

            def run(self) -> Any:
                return self.__dict__.get("_given_output")

            def _set_output(self, value: Any) -> None:
                if self.__dict__.get("_output_set"):
                    raise StepOutputError("Step has already been run.")
                self.__dict__["_given_output"] = value
                wait(self)
                self.__dict__["_output_set"] = True

            @property
            def output(self) -> Any:
                if not self.__dict__.get("_output_set"):
                    raise StepOutputError("Step has not been run. Output is not available.")
                return super().output

        return TestStep(name, inputs=inputs, args=args, outputs=outputs, **kwargs)

    return _create_test_step


@pytest.fixture
def mock_llm() -> Callable[..., Any]:
    """Adapted: DataDreamer replaces the private ``LLM._run_batch`` of a real model with a
    table of responses; here the same table is answered by ``FakeLLM`` (this project's
    offline model), named after the model it stands for."""

    def _mock_llm(llm: Any, responses: dict[str, str]) -> Any:
        return FakeLLM(responses, model_name=getattr(llm, "model_name", "fake-llm"))

    return _mock_llm
