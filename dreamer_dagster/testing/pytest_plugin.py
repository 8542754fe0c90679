"""pytest fixtures for the loopback OpenAI-compatible server.

Load them in a ``conftest.py``::

    pytest_plugins = ["dreamer_dagster.testing.pytest_plugin"]

``openai_server`` is a :class:`~dreamer_dagster.testing.FakeOpenAIServer` served from a
thread of the test process; ``openai_server_process`` runs one in a subprocess (for tests
that run the ``dagster`` CLI) and yields its base URL.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .openai_server import FakeOpenAIServer, start_server_process

__all__ = ["openai_server", "openai_server_process"]


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAIServer]:
    """A fake OpenAI-compatible server on 127.0.0.1 (a thread); ``.base_url`` ends in ``/v1``."""
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def openai_server_process() -> Iterator[str]:
    """The fake server in a subprocess (for ``dagster`` CLI subprocess tests); yields its base URL."""
    with start_server_process() as base_url:
        yield base_url
