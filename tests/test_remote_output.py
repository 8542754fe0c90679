"""The output folder on shared storage: the loopback S3 server (moto), and a shared disk given
as a ``file://`` URL. A step killed mid-upload leaves nothing taken for finished; the lease
lock; trained models downloaded before loading; per-worker model caches merged so that any
worker reads every call made on every other; ``s3://`` never becomes a local folder."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import pytest

from dreamer_dagster import DreamerIOManager, Pipeline
from dreamer_dagster.cli import load_definitions
from dreamer_dagster.output_folder import OutputFolder, StepLocked
from dreamer_dagster.step_lock import LeaseLock
from dreamer_dagster.steps import DataSource
from tests.support.foundation import materialize, rows
from tests.support.waiting import HANG_S

REPO = Path(__file__).resolve().parents[1]

# A step that runs again (force=True) over a finished folder, killed while its new _dataset
# goes into place: on S3 after the first file of it is uploaded, on a local disk right after
# the rename (a rename has no middle).
KILLED = textwrap.dedent(
    """
    import os, signal, sys

    import dagster as dg

    if os.environ["OUTPUT"].startswith("s3://"):
        import s3fs

        put_file = s3fs.S3FileSystem._put_file

        async def dying_put_file(self, lpath, rpath, *args, **kwargs):
            result = await put_file(self, lpath, rpath, *args, **kwargs)
            if "/source/_dataset/" in rpath:
                os.kill(os.getpid(), signal.SIGKILL)
            return result

        s3fs.S3FileSystem._put_file = dying_put_file
    else:
        import dreamer_dagster.filesystem as filesystem

        replace = filesystem.os.replace

        class DyingOs:
            def __getattr__(self, name):
                return getattr(os, name)

            @staticmethod
            def replace(source, target):
                replace(source, target)
                if str(target).endswith("/source/_dataset"):
                    os.kill(os.getpid(), signal.SIGKILL)

        filesystem.os = DyingOs()

    sys.path.insert(0, os.environ["REPO"])
    from tests.test_remote_output import declare_forced

    steps = declare_forced(os.environ["OUTPUT"], os.environ["MARK"])
    from dreamer_dagster import dreamer_definitions

    defs = dreamer_definitions(steps, output_folder=os.environ["OUTPUT"])
    dg.materialize(list(defs.assets), resources=dict(defs.resources))
    """
)


def declare_forced(output: str, mark: str) -> list:
    def make():
        for index in range(50):
            yield {"text": f"{mark}-{index}", "padding": "x" * 200}

    with Pipeline(output):
        source = DataSource("Source", make, columns=["text", "padding"], force=True)
        after = source.take(10, name="After")
    return [source, after]


@pytest.fixture(params=["local", "s3"])
def output(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "output")
    return request.getfixturevalue("s3_output")


def test_a_step_killed_mid_upload_leaves_no_finished_folder(output, tmp_path, instance):
    steps = declare_forced(output, "first")
    materialize(steps, instance, output)
    folder = OutputFolder(output).step("source")
    assert folder.step_json() is not None
    env = {**os.environ, "OUTPUT": output, "MARK": "second", "REPO": str(REPO), "PYTHONPATH": str(REPO)}
    env["DREAMER_LOCAL_FOLDER"] = str(tmp_path / "killed-worker")
    env["DREAMER_LEASE_SECONDS"] = "2"  # the killed run's lease frees 2 s after it dies
    killed = subprocess.run(
        [sys.executable, "-c", KILLED], env=env, capture_output=True, text=True, timeout=HANG_S
    )
    assert killed.returncode == -9, killed.stderr[-3000:]

    folder = OutputFolder(output).step("source")
    assert folder.step_json() is None  # not finished: neither the old output nor the half new one
    assert folder.files.exists(folder.dataset_path)  # part of the new _dataset is there
    again = declare_forced(output, "second")
    with pytest.raises(FileNotFoundError, match="no step.json"):
        materialize(again, instance, output, only=[again[1]])
    materialize(again, instance, output)
    assert rows(output, again[1])["text"] == [f"second-{index}" for index in range(10)]


def test_the_lease_lock_is_exclusive_names_its_holder_and_frees_after_a_dead_holder(s3_output):
    folder = OutputFolder(s3_output)
    first = folder.step("step").lock()
    assert isinstance(first, LeaseLock)
    first.acquire("run A (pid 1 on host-a)")
    second = folder.step("step").lock()
    assert second.holder() == "run A (pid 1 on host-a)"
    waited = []
    with pytest.raises(StepLocked, match="run A"):
        second.acquire("run B", timeout=0.6, on_wait=waited.append)
    assert waited == ["run A (pid 1 on host-a)"]
    first.release()
    second.acquire("run B", timeout=60)
    assert second.holder() == "run B"
    second.release()
    # A holder that dies stops renewing: its lease frees ttl seconds later.
    dead = LeaseLock(folder.root / ".locks" / "step", "step", ttl=1.0)
    dead.acquire("run D (killed)")
    dead._stop.set()  # the renewing thread of a killed process is gone
    third = LeaseLock(folder.root / ".locks" / "step", "step", ttl=1.0)
    assert third.holder() == "run D (killed)"
    third.acquire("run C", timeout=60)
    assert third.holder() == "run C"
    third.release()
    assert third.holder() is None
    assert len(folder.files.list_names(folder.root / ".locks" / "step")) == 1  # older leases deleted


def test_a_trained_model_folder_is_downloaded_before_loading(s3_output, tmp_path):
    folder = OutputFolder(s3_output, local_folder=str(tmp_path / "trainer-worker"))
    staged = tmp_path / "staged"
    (staged / "_model").mkdir(parents=True)
    (staged / "_model" / "config.json").write_text('{"model_type": "tiny"}')
    (staged / "_model" / "weights.bin").write_bytes(b"\x00" * 1000)
    folder.step("tune").commit(
        staged, {"fingerprint": "0123456789abcdef", "data_version": "00000000000000d1", "model": True}
    )
    assert folder.files.exists(folder.root / "tune" / "_model" / "weights.bin")

    manager = DreamerIOManager(output_folder=s3_output, local_folder=str(tmp_path / "other-worker"))
    upstream = dg.build_output_context(
        asset_key=dg.AssetKey("tune"), definition_metadata={"dreamer/folder": "tune"}
    )
    loaded = manager.load_input(
        dg.build_input_context(upstream_output=upstream, asset_key=dg.AssetKey("tune"))
    )
    local = Path(loaded)
    assert local.is_dir() and str(local).startswith(str(tmp_path / "other-worker"))
    assert (local / "config.json").read_text() == '{"model_type": "tiny"}'
    assert (local / "weights.bin").stat().st_size == 1000


SHARED = textwrap.dedent(
    """
    import os

    from dreamer_dagster import Pipeline
    from dreamer_dagster.llms import OpenAI
    from dreamer_dagster.steps import DataSource, ProcessWithPrompt

    with Pipeline(os.environ["OUTPUT"]) as pipeline:
        source = DataSource("Inputs", {"text": [f"text {i}" for i in range(12)]})
        ProcessWithPrompt(
            "Processed",
            inputs={"inputs": source.output["text"]},
            args={"llm": OpenAI("fake-chat", base_url=os.environ["BASE_URL"]), "instruction": "Shorten it."},
        )
    defs = pipeline.definitions()
    """
)


@pytest.mark.parametrize("where", ["s3", "shared-disk"])
def test_each_worker_keeps_its_cache_and_reads_every_others(where, tmp_path, request, monkeypatch, instance):
    from tests.support.openai_server import FakeOpenAIServer

    output = request.getfixturevalue("s3_output") if where == "s3" else (tmp_path / "shared").as_uri()
    script = tmp_path / "pipeline.py"
    script.write_text(SHARED)
    with FakeOpenAIServer() as server:
        monkeypatch.setenv("BASE_URL", server.base_url)
        monkeypatch.setenv("OUTPUT", output)
        for worker in ("a", "b"):  # two machines: each its own local folder
            monkeypatch.setenv("DREAMER_LOCAL_FOLDER", str(tmp_path / f"worker-{worker}"))
            defs = load_definitions(script)
            dg.materialize(list(defs.assets), instance=instance, resources=dict(defs.resources))
            if worker == "a":
                assert server.request_count == 12
                first = rows(output, SimpleNamespace(key="processed", folder="processed"))
                # Worker b finds no step folder (a new output prefix elsewhere would do the same)...
                folder = OutputFolder(output)
                folder.files.remove_tree(folder.root / "processed")
        # ...and reads all twelve answers from what worker a published: no call is paid twice.
        assert server.request_count == 12
        assert rows(output, SimpleNamespace(key="processed", folder="processed")) == first
    shared = OutputFolder(output)
    published = shared.files.list_names(shared.root / ".cache")
    assert len(published) == 1 and not published[0].endswith(".db")  # one folder per model cache
    local_caches = sorted(p.name for p in (tmp_path / "worker-a").rglob("*.db"))
    assert local_caches and all(not name.startswith(".") for name in local_caches)


def test_an_s3_output_folder_is_never_a_local_folder(s3_output, tmp_path, monkeypatch, instance):
    monkeypatch.chdir(tmp_path)
    with Pipeline(s3_output) as pipeline:
        source = DataSource("Seed", {"text": ["a", "b"]})
    defs = pipeline.definitions()
    assert defs.resources["dreamer_io_manager"].output_folder == s3_output
    assert source.asset.specs_by_key[source.asset_key].metadata["dagster/uri"] == f"{s3_output}/seed"
    materialize([source], instance, s3_output)
    assert not (tmp_path / "s3:").exists() and not any(p.name.startswith("s3") for p in tmp_path.iterdir())
    assert OutputFolder(s3_output).step("seed").step_json()["num_rows"] == 2
    with pytest.raises(Exception, match="cannot be written.*bucket"):
        OutputFolder("s3://no-such-bucket-here/output").check_writable("seed")
