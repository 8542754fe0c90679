"""The loopback OpenAI-compatible server of the tests: :mod:`dreamer_dagster.testing`'s, re-exported
here so the tests' imports (and ``conftest.py``'s plugin list, which takes the fixtures from
this module) keep working. Run as ``python -m tests.support.openai_server`` it is
``python -m dreamer_dagster.testing``."""

from __future__ import annotations

from dreamer_dagster.testing.fine_tuning_api import FineTuningAPI
from dreamer_dagster.testing.http_messages import (
    FakeRequest,
    FakeResponse,
    content_text,
    error_response,
    prompt_text,
)
from dreamer_dagster.testing.openai_answers import fake_embedding
from dreamer_dagster.testing.openai_server import FakeOpenAIServer, control, main, start_server_process
from dreamer_dagster.testing.pytest_plugin import openai_server, openai_server_process

# The names the tests' support modules used before the server moved into the package.
_content_text = content_text
_error = error_response
_prompt_text = prompt_text

__all__ = [
    "FakeOpenAIServer",
    "FakeRequest",
    "FakeResponse",
    "FineTuningAPI",
    "control",
    "fake_embedding",
    "openai_server",
    "openai_server_process",
    "start_server_process",
]

if __name__ == "__main__":
    main()
