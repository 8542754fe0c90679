"""A credential inside ``base_url`` is sent as the provider expects and shown nowhere; a
misconfigured endpoint fails its step at once, once, naming the step and the fix.

Real ``dg.materialize`` runs with the real IO manager on a tmp output folder, a Dagster
instance in a tmp DAGSTER_HOME, and the loopback OpenAI-compatible server."""

from __future__ import annotations

import base64
import logging
import socket
import time
import uuid
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest

from dreamer_dagster import dreamer_definitions
from dreamer_dagster.errors import (
    EndpointUnreachableError,
    NonRetryableError,
    RequestConfigurationError,
    is_retryable,
    is_transient,
)
from dreamer_dagster.llms import OpenAI
from dreamer_dagster.steps import DataSource, ProcessWithPrompt
from tests.support.openai_server import FakeRequest, FakeResponse

#: The bound the issue sets on a misconfigured endpoint failing its step (retries included).
FAIL_FAST_S = 30


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_steps(steps: list, instance: dg.DagsterInstance, output: Path) -> dg.ExecuteInProcessResult:
    defs = dreamer_definitions(steps, output_folder=str(output))
    return dg.materialize(
        list(defs.assets),
        instance=instance,
        resources=dict(defs.resources),
        selection=[step.asset_key for step in steps],
        raise_on_error=False,
    )


def prompt_step(name: str, llm: OpenAI, rows: int = 2) -> tuple[DataSource, ProcessWithPrompt]:
    source = DataSource(f"{name} inputs", {"text": [f"{name} {i}" for i in range(rows)]})
    step = ProcessWithPrompt(
        name, inputs={"inputs": source.output["text"]}, args={"llm": llm, "instruction": "Go."}
    )
    return source, step


def step_events(result: dg.ExecuteInProcessResult, step_key: str) -> Counter:
    return Counter(event.event_type_value for event in result.all_events if event.step_key == step_key)


def echo_credentials_401(request: FakeRequest) -> FakeResponse:
    """A 401 whose body echoes what the client sent (some gateways do)."""
    sent = f"{request.headers.get('authorization')} {request.query}"
    return FakeResponse(401, {"error": {"message": f"Incorrect API key provided: {sent}", "code": "401"}})


# -- A: secrets never leave the request -----------------------------------------------------


@pytest.mark.parametrize("form", ["userinfo", "query"])
def test_a_credential_in_base_url_is_sent_and_never_written_or_logged(
    form, tmp_path, instance, openai_server, monkeypatch, caplog, capfd
):
    caplog.set_level(logging.DEBUG)
    env_key = f"sk-env-{uuid.uuid4().hex}"
    monkeypatch.setenv("OPENAI_API_KEY", env_key)
    user, password, query_key = f"user{uuid.uuid4().hex[:12]}", f"pw-{uuid.uuid4().hex}", uuid.uuid4().hex
    host = f"127.0.0.1:{openai_server.port}"
    if form == "userinfo":
        base_url = f"http://{user}:{password}@{host}/v1"
        secrets = [password, f"{user}:{password}", base64.b64encode(f"{user}:{password}".encode()).decode()]
        secrets.append(user)
    else:
        base_url = f"http://{host}/v1?api-version=2024-06-01&api-key={query_key}"
        secrets = [query_key]
    secrets.append(env_key)

    llm = OpenAI("fake-chat", base_url=base_url, max_concurrency=1)
    shown = f"{llm!r} {llm.identity()} {llm.default_pool()} {llm.model_fingerprint} {llm.cache_name()}"
    assert not [secret for secret in secrets if secret in shown]
    source, step = prompt_step("Secret endpoint", llm)
    output = tmp_path / "output"
    assert run_steps([source, step], instance, output).success

    # The request reached the server with the credential as the provider expects it.
    [request, *_] = [r for r in openai_server.requests if r["path"] == "/v1/chat/completions"]
    if form == "userinfo":
        assert request["headers"]["authorization"] == f"Basic {secrets[2]}"
    else:
        # The query after the path, as given (not joined inside it: ".../v1?api-key=X/chat/...").
        assert request["query"] == f"api-version=2024-06-01&api-key={query_key}"
        assert request["headers"]["authorization"] == f"Bearer {env_key}"

    # A 401 whose body echoes the credential: the step fails, the echo is scrubbed everywhere.
    openai_server.add_route("POST", r"/v1/chat/completions", echo_credentials_401)
    refused_source, refused = prompt_step("Refused endpoint", llm)
    result = run_steps([refused_source, refused], instance, output)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = str(failure.event_specific_data.error)
    assert "Refused endpoint" in message and "HTTP 401" in message and "Incorrect API key" in message

    captured = capfd.readouterr()
    texts = {"log records": caplog.text, "stdout": captured.out, "stderr": captured.err, "failure": message}
    assert {where: s for where, text in texts.items() for s in secrets if s in text} == {}
    # Every file under the output folder and DAGSTER_HOME (step.json, datasets, the model
    # cache, Dagster's run, event and index databases, compute logs), byte for byte.
    roots = [output, Path(instance.root_directory)]
    files = [path for root in roots for path in root.rglob("*") if path.is_file()]
    assert list((output / ".cache").glob("*.db")) and [p for p in files if p.suffix == ".db"]
    leaks = [(str(path), s) for path in files for s in secrets if s.encode() in path.read_bytes()]
    assert leaks == []


def test_a_client_side_value_error_fails_at_once_and_is_not_a_malformed_body(openai_server):
    """A header the HTTP client refuses to send is the configuration, not a malformed answer:
    no request, no retry."""
    llm = OpenAI(
        "fake-chat",
        base_url=openai_server.base_url,
        default_headers={"X-Broken": "a\r\nb"},
        retry_initial_delay=0.01,
    ).for_run(None, Counter())
    with pytest.raises(RequestConfigurationError, match=r"could not be made.*Fix: check base_url") as raised:
        llm.run(["x"])
    assert not is_retryable(raised.value)
    assert llm.stats["retries"] == 0 and openai_server.request_count == 0


# -- B: configuration errors fail fast ------------------------------------------------------


def failing_run(tmp_path, instance, base_url: str, name: str) -> tuple[dg.ExecuteInProcessResult, float]:
    llm = OpenAI("fake-chat", base_url=base_url, api_key="sk-test", max_concurrency=1)
    source, step = prompt_step(name, llm)
    assert run_steps([source], instance, tmp_path / "output").success
    started = time.monotonic()
    result = run_steps([step], instance, tmp_path / "output")
    return result, time.monotonic() - started


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("refused", ["cannot be reached", "connection was refused", "Fix: check that the server is running"]),
        ("401", ["HTTP 401", "Fix: check the API key"]),
        ("404 model", ["HTTP 404", "The model does not exist", "Fix: check the model name and base_url"]),
        ("404 path", ["HTTP 404", "No route", "Fix: check the model name and base_url"]),
    ],
)
def test_a_misconfigured_endpoint_fails_its_step_at_once_and_once(
    case, expected, tmp_path, instance, openai_server
):
    """With the default step retry policy (3 retries, 10 s apart) a retried step would take
    over 30 s and log STEP_UP_FOR_RETRY; a configuration error takes neither."""
    base_url = {
        "refused": f"http://127.0.0.1:{closed_port()}/v1",
        "401": openai_server.base_url,
        "404 model": openai_server.base_url,
        "404 path": openai_server.base_url.removesuffix("/v1"),  # base_url without /v1
    }[case]
    if case in ("401", "404 model"):
        openai_server.fail_next(case.split()[0], 100)
    result, seconds = failing_run(tmp_path, instance, base_url, "Misconfigured")
    assert not result.success and seconds < FAIL_FAST_S
    events = step_events(result, "misconfigured")
    assert events["STEP_START"] == 1 and events["STEP_FAILURE"] == 1
    assert events["STEP_UP_FOR_RETRY"] == 0 and events["STEP_RESTARTED"] == 0
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = str(failure.event_specific_data.error)
    assert "Step 'Misconfigured' failed, and running it again cannot fix it" in message
    assert base_url.split("@")[-1].removesuffix("/v1") in message  # the URL is named
    assert all(part in message for part in expected), message
    if case != "refused":
        assert openai_server.request_count == 1  # not retried by the HTTP retries either


def test_a_tls_handshake_failure_fails_at_once(openai_server):
    """https:// to a plain-HTTP server: the handshake fails before any answer."""
    https = openai_server.base_url.replace("http://", "https://")
    llm = OpenAI("fake-chat", base_url=https, retry_initial_delay=0.01).for_run(None, Counter())
    with pytest.raises(
        EndpointUnreachableError, match=r"TLS \(https\) handshake failed.*Fix: check base_url"
    ):
        llm.run(["x"])
    assert llm.stats["retries"] == 0


def test_after_an_answer_a_refused_connection_is_a_passing_outage_and_retried(openai_server):
    """The server answers the first prompt, then stops listening: the second prompt's refused
    connection is retried, and the failure stays transient (the step retry policy re-runs it)."""
    route = openai_server._route

    def answer_then_stop(request: FakeRequest) -> FakeResponse:
        response = route(request)
        openai_server.stop()  # the listening socket closes: the next connection is refused
        response.headers["Connection"] = "close"
        return response

    openai_server._route = answer_then_stop
    llm = OpenAI(
        "fake-chat",
        base_url=openai_server.base_url,
        max_concurrency=1,
        max_retries=2,
        retry_initial_delay=0.01,
    ).for_run(None, Counter())
    with pytest.raises(RuntimeError, match=r"after 3 attempts") as raised:
        llm.run(["first", "second"])
    assert not isinstance(raised.value, NonRetryableError)
    assert is_retryable(raised.value) and is_transient(raised.value)
    assert llm.stats["retries_connection"] == 2
