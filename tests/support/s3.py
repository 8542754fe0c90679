"""An S3-compatible server on loopback: ``moto`` in server mode, one process per test session.

``s3_server`` starts it and points the standard variables (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``...) at it, so s3fs, and every subprocess a test starts,
reach it as they would reach S3; ``s3_output`` is a fresh bucket's output
folder URL for one test.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.waiting import HANG_S

S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MotoServer:
    """``moto_server`` on a free loopback port, in a process of its own."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> MotoServer:
        server = Path(sys.executable).parent / "moto_server"
        self.process = subprocess.Popen(
            [str(server), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        from tests.support.services import wait_for_port

        try:
            wait_for_port(self.port, process=self.process)
        except RuntimeError as error:
            self.__exit__()
            raise RuntimeError(f"moto_server did not start: {error}") from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=HANG_S)
            self.process = None

    @property
    def env(self) -> dict[str, str]:
        return {**S3_ENV, "AWS_ENDPOINT_URL": self.endpoint}

    def make_bucket(self, name: str | None = None) -> str:
        import boto3

        name = name or f"test-{uuid.uuid4().hex[:12]}"
        boto3.client("s3", endpoint_url=self.endpoint, **_credentials()).create_bucket(Bucket=name)
        return name


def _credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": S3_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": S3_ENV["AWS_SECRET_ACCESS_KEY"],
        "region_name": S3_ENV["AWS_DEFAULT_REGION"],
    }


@pytest.fixture(scope="session")
def s3_server() -> Iterator[MotoServer]:
    from tests.support.services import EXTRAS_FIX, missing_service

    pytest.importorskip("s3fs", reason=missing_service("s3fs is not installed", EXTRAS_FIX))
    pytest.importorskip(
        "moto", reason=missing_service("moto[server] (the S3 server) is not installed", EXTRAS_FIX)
    )
    saved = {name: os.environ.get(name) for name in (*S3_ENV, "AWS_ENDPOINT_URL")}
    with MotoServer() as server:
        os.environ.update(server.env)
        try:
            yield server
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


@pytest.fixture
def s3_output(s3_server: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket's ``output`` prefix; this test's workers keep their local folders in tmp_path."""
    monkeypatch.setenv("DREAMER_LOCAL_FOLDER", str(tmp_path / "worker"))
    return f"s3://{s3_server.make_bucket()}/output"
