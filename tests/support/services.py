"""Services the tests start on loopback, and what happens when one is missing.

Redis (the celery broker) and PostgreSQL (Dagster's instance storage) each run in a temporary
folder on a free port, stopped after the test. ``scripts/install-system-packages.sh`` installs
them (Debian ``redis-server``, ``postgresql``, ``chromium``); the test extras bring the rest
(moto's S3 server, selenium, dagster-celery, dagster-postgres).

Where one is missing, the test skips with ``skip_missing_service`` (its reason starts with
``missing service:``) and the end of the run lists them. Under CI (``CI=true``), where
``make test`` runs as root with apt-get reachable and installs every one, such a skip is a
failure (``pytest_runtest_makereport`` below; registered by ``tests/conftest.py``). GPU tests
(marker ``gpu``) still skip: CI has no GPU."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import pytest

from tests.support.s3 import free_port
from tests.support.waiting import HANG_S

__all__ = [
    "MISSING_SERVICE",
    "in_ci",
    "missing_service",
    "postgres_binaries",
    "redis_server",
    "running_postgres",
    "skip_missing_service",
    "wait_for_port",
]

MISSING_SERVICE = "missing service: "
"""How the skip reason of a test whose service is not here begins."""

DEBIAN_FIX = "`make test` installs it with scripts/install-system-packages.sh, as root with apt-get"
EXTRAS_FIX = "in the test extras: pip install -e '.[test]'"


def in_ci() -> bool:
    """Whether this run is CI's (``CI=true``), where every service must be there."""
    return os.environ.get("CI") == "true"


def missing_service(what: str, fix: str) -> str:
    """The skip reason for a missing service: what is missing, then how to get it."""
    return f"{MISSING_SERVICE}{what} ({fix})"


def skip_missing_service(what: str, fix: str) -> NoReturn:
    """Skip this test because ``what`` is not here (a failure under CI: see the module)."""
    pytest.skip(missing_service(what, fix))


def _skip_reason(report: pytest.TestReport) -> str | None:
    if not report.skipped or hasattr(report, "wasxfail") or not isinstance(report.longrepr, tuple):
        return None
    return str(report.longrepr[2]).removeprefix("Skipped: ")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Generator[None, object, object]:
    """A test skipped for a missing service: its skip points at the test (not at this module);
    under CI (not a GPU test) it fails, saying which service and how to get it."""
    report = yield
    reason = _skip_reason(report)
    if not reason or not reason.startswith(MISSING_SERVICE):
        return report
    path, line = item.reportinfo()[:2]
    report.longrepr = (str(path), (line or 0) + 1, f"Skipped: {reason}")
    if in_ci() and item.get_closest_marker("gpu") is None:
        report.outcome = "failed"
        report.longrepr = (
            f"{item.nodeid} skipped for a {reason}. Under CI (CI=true) a missing service is a failure: "
            "run `make test` as root with apt-get reachable (scripts/install-system-packages.sh "
            "installs the Debian packages) after pip install -e '.[test]'."
        )
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """At the end of the run: each missing service and how many tests skipped for it."""
    reasons = Counter(
        reason
        for report in terminalreporter.stats.get("skipped", [])
        if (reason := _skip_reason(report)) and reason.startswith(MISSING_SERVICE)
    )
    if not reasons:
        return
    terminalreporter.section("missing services")
    for reason, count in sorted(reasons.items()):
        terminalreporter.line(
            f"{count} test{'s' * (count > 1)} skipped: {reason.removeprefix(MISSING_SERVICE)}"
        )
    terminalreporter.line("These skip here; under CI (CI=true) each is a failure.")


def wait_for_port(port: int, timeout: float = HANG_S, process: subprocess.Popen | None = None) -> None:
    """Until something listens on the loopback ``port`` (or ``process`` exits: an error)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode} before it listened")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listened on 127.0.0.1:{port} within {timeout:.0f} s")


@contextmanager
def redis_server() -> Iterator[str]:
    """``redis-server`` on a free loopback port (no persistence); yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        skip_missing_service("redis-server is not installed (Debian package redis-server)", DEBIAN_FIX)
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process=process)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=HANG_S)


def postgres_binaries() -> Path | None:
    """The folder of ``initdb`` / ``pg_ctl`` (Debian keeps them out of PATH), or None."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return versions[-1].parent if versions else None


@contextmanager
def running_postgres() -> Iterator[str]:
    """A PostgreSQL server in a temporary folder on a free loopback port (trust auth, user
    ``postgres``); yields its URL. PostgreSQL refuses to run as root: as root it runs as
    ``nobody``."""
    binaries = postgres_binaries()
    if binaries is None:
        skip_missing_service("PostgreSQL is not installed (Debian package postgresql)", DEBIAN_FIX)
    as_user: list[str] = []
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        if runuser is None:
            skip_missing_service(
                "runuser is missing: PostgreSQL cannot run as root without it (Debian package util-linux)",
                DEBIAN_FIX,
            )
        as_user = [runuser, "-u", "nobody", "--"]
    folder = Path(tempfile.mkdtemp(prefix="dreamer-pg-", dir="/tmp"))
    data, log = folder / "data", folder / "server.log"
    if as_user:
        os.chmod(folder, 0o755)
        shutil.chown(folder, "nobody")
    port = free_port()
    try:
        subprocess.run(
            [
                *as_user,
                str(binaries / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ],
            check=True,
            capture_output=True,
            timeout=HANG_S,
        )
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            [
                *as_user,
                str(binaries / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(log),
                "-w",
                "start",
            ],
            check=True,
            capture_output=True,
            timeout=HANG_S,
        )
        try:
            wait_for_port(port)
            yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
        finally:
            subprocess.run(
                [*as_user, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                capture_output=True,
                timeout=HANG_S,
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
