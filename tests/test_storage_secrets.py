"""``storage_options`` values given as ``dg.EnvVar``: read from the environment when the
output folder is opened at run time (the loopback S3 server, with no other credentials
around), and written nowhere: not under DAGSTER_HOME, not in the worker's local folder,
not in the bucket."""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
import zlib
from pathlib import Path

import dagster as dg
import pytest

from dreamer_dagster import DreamerIOManager, Pipeline, dreamer_definitions
from dreamer_dagster.errors import OutputFolderError
from dreamer_dagster.output_folder import OutputFolder
from dreamer_dagster.steps import DataSource
from dreamer_dagster.storage_options import resolve_storage_options


def files_holding(root: Path, secrets: list[bytes]) -> list[str]:
    """The files under ``root`` whose bytes hold any of ``secrets``; in an SQLite file (Dagster's
    storage) each value is also searched zlib-decompressed, as Dagster stores its snapshots."""
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            if data.startswith(b"SQLite format 3"):
                data += b"".join(sqlite_values(path))
            found.extend(f"{path}: {secret!r}" for secret in secrets if secret in data)
    return found


def sqlite_values(path: Path) -> list[bytes]:
    """Every value in the SQLite file at ``path`` as bytes, compressed ones decompressed."""
    values = []
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for row in db.execute(f'SELECT * FROM "{table}"'):
                for value in row:
                    data = value if isinstance(value, bytes) else str(value).encode()
                    values.append(data)
                    with contextlib.suppress(zlib.error):
                        values.append(zlib.decompress(data))
    return values


def test_env_var_storage_options_reach_s3_at_run_time_and_are_written_nowhere(
    s3_output, tmp_path, monkeypatch, instance
):
    import s3fs

    key, secret = f"KEY{uuid.uuid4().hex}", f"SECRET{uuid.uuid4().hex}"
    # No credentials but the storage options' variables: S3 is reached only through them.
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("DREAMER_TEST_S3_KEY", key)
    monkeypatch.setenv("DREAMER_TEST_S3_SECRET", secret)
    options = {"key": dg.EnvVar("DREAMER_TEST_S3_KEY"), "secret": dg.EnvVar("DREAMER_TEST_S3_SECRET")}
    s3fs.S3FileSystem.clear_instance_cache()

    with Pipeline(s3_output, storage_options=options, run=False) as pipeline:
        source = DataSource("Seed", data={"text": ["a", "b"]})
        upper = source.map(lambda row: {"text": row["text"].upper()}, name="Upper", lazy=False)
    defs = pipeline.definitions()
    # The IO manager's config holds the variables' names, never their values.
    assert defs.resources["dreamer_io_manager"].storage_options == {
        "key": "DREAMER_TEST_S3_KEY",
        "secret": "DREAMER_TEST_S3_SECRET",
    }
    result = dg.materialize(list(defs.assets), instance=instance, resources=dict(defs.resources))
    assert result.success
    # The run's filesystem got the values (Dagster hands the IO manager {"env": NAME}).
    used = [(fs.key, fs.secret) for fs in s3fs.S3FileSystem._cache.values()]
    assert (key, secret) in used and all(isinstance(k, str) or k is None for k, _ in used)

    folder = OutputFolder(s3_output, options)
    assert folder.step(upper.folder).step_json()["num_rows"] == 2
    bucket_files = folder.files.root.fs.find(str(folder.root).split("://", 1)[1])
    assert bucket_files
    secrets = [key.encode(), secret.encode()]
    for remote in bucket_files:
        data = folder.files.root.fs.cat_file(remote)
        assert not any(value in data for value in secrets), remote
    assert files_holding(Path(instance.root_directory), secrets) == []
    assert files_holding(tmp_path, secrets) == []  # the worker's local folder is under it


def test_env_vars_resolve_at_any_depth_and_a_missing_one_names_the_option(monkeypatch, instance):
    monkeypatch.setenv("DREAMER_TEST_REGION", "eu-west-3")
    monkeypatch.delenv("DREAMER_TEST_UNSET", raising=False)
    options = {
        "client_kwargs": {"region_name": dg.EnvVar("DREAMER_TEST_REGION")},
        "config_kwargs": {"retries": [{"env": "DREAMER_TEST_REGION"}, 3]},  # the config form
        "anon": False,
    }
    assert resolve_storage_options(options) == {
        "client_kwargs": {"region_name": "eu-west-3"},
        "config_kwargs": {"retries": ["eu-west-3", 3]},
        "anon": False,
    }
    manager = DreamerIOManager(
        output_folder="s3://bucket/out", storage_options={"key": dg.EnvVar("DREAMER_TEST_UNSET")}
    )
    with pytest.raises(OutputFolderError) as raised:
        manager.folder()
    message = str(raised.value)
    assert "storage_options['key']" in message and "DREAMER_TEST_UNSET" in message and "Fix:" in message
    # A run fails with it, before the step writes anything.
    source = DataSource("Seed", data={"text": ["a"]})
    defs = dreamer_definitions(
        [source],
        output_folder="memory://bucket/out",
        storage_options={"key": dg.EnvVar("DREAMER_TEST_UNSET")},
    )
    with pytest.raises(
        OutputFolderError, match=r"storage_options\['key'\] is dg.EnvVar\('DREAMER_TEST_UNSET'\)"
    ):
        dg.materialize(list(defs.assets), instance=instance, resources=dict(defs.resources))
