"""Testing helpers for pipelines built on dreamer_dagster (in the wheel; not imported by
``import dreamer_dagster``).

- :class:`FakeLLM`: an offline, deterministic LLM (a dict of answers, a function of the
  prompt, or an echo) that goes through the model cache like any LLM;
- :class:`FakeOpenAIServer`: an OpenAI-compatible HTTP server on 127.0.0.1 with set
  latency, injected faults (``fail_next(500)``, ``fault_mix``, prompt markers) and a record
  of every request; ``start_server_process`` / ``control`` run and drive one in a
  subprocess; ``python -m dreamer_dagster.testing`` serves one;
- :mod:`dreamer_dagster.testing.pytest_plugin`: the ``openai_server`` and
  ``openai_server_process`` fixtures.

A pytest example::

    import dagster as dg
    from dreamer_dagster import dreamer_definitions
    from dreamer_dagster.llms import OpenAI
    from dreamer_dagster.steps import DataSource, ProcessWithPrompt
    from dreamer_dagster.testing import FakeLLM, FakeOpenAIServer


    def test_tweets(tmp_path, monkeypatch):
        monkeypatch.setenv("OPENAI_API_KEY", "test-key")
        with FakeOpenAIServer() as server:
            server.fail_next(500)                  # the first request fails, the retry succeeds
            llm = OpenAI("fake-chat", base_url=server.base_url)
            seed = DataSource("Seed", data={"text": ["a", "b"]})
            tweets = ProcessWithPrompt(
                "Tweets", inputs={"inputs": seed.output["text"]},
                args={"llm": llm, "instruction": "Tweet it."},
            )
            defs = dreamer_definitions([tweets], output_folder=str(tmp_path))  # the seed comes along
            result = dg.materialize(defs.assets, resources=defs.resources)
        assert result.success
        assert server.statuses[500] == 1 and server.statuses[200] == 2

    def test_offline():
        llm = FakeLLM({"Hi": "Hello!"})            # or FakeLLM(lambda prompt: ...), FakeLLM()
        assert llm.run(["Hi"]) == ["Hello!"]
"""

from .fake_llm import FakeLLM, MissingAnswerError
from .fine_tuning_api import FineTuningAPI
from .http_messages import FakeRequest, FakeResponse
from .openai_answers import fake_embedding
from .openai_server import FakeOpenAIServer, control, start_server_process

__all__ = [
    "FakeLLM",
    "FakeOpenAIServer",
    "FakeRequest",
    "FakeResponse",
    "FineTuningAPI",
    "MissingAnswerError",
    "control",
    "fake_embedding",
    "start_server_process",
]
