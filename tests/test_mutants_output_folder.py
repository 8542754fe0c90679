"""The output folder's layout, its finished check (each reason a folder is not finished), the
reuse / back-up / restore rules, the commit, and a remote folder's worker paths, on a tmp folder
and an fsspec memory folder, without a Dagster run. Written to kill the mutants ``make mutants``
found alive in ``output_folder.py`` and ``step_reuse.py`` (see docs/mutants.md)."""

from __future__ import annotations

import json
import uuid

import pytest

from dreamer_dagster.errors import IntegrityError, OutputFolderError
from dreamer_dagster.output_folder import OutputFolder, Preparation, step_uri
from dreamer_dagster.step_lock import LeaseLock, StepLock

FP, OTHER = "0123456789abcdef", "fedcba9876543210"
VERSION = "00000000000000aa"


def staged_dataset(tmp_path, rows: dict | None = None):
    import datasets

    staged = tmp_path / f"staged-{uuid.uuid4().hex}"
    datasets.Dataset.from_dict(rows or {"text": ["a", "b"]}).save_to_disk(str(staged / "_dataset"))
    (staged / "scratch.txt").write_text("left by the run")
    return staged


def finished(folder, tmp_path, fingerprint: str = FP, rows: dict | None = None) -> dict:
    record = {"name": "Step", "fingerprint": fingerprint, "data_version": VERSION}
    folder.commit(staged_dataset(tmp_path, rows), record)
    return record


@pytest.fixture
def output(tmp_path):
    return OutputFolder(tmp_path / "out")


@pytest.fixture
def remote(tmp_path):
    return OutputFolder(f"memory://of-{uuid.uuid4().hex}/out", local_folder=str(tmp_path / "worker"))


# -- layout ----------------------------------------------------------------------------------


def test_the_layout_of_a_local_output_folder(output, tmp_path):
    root = tmp_path / "out"
    step = output.step("tweets")
    assert (output.root, output.local_root, str(output), output.url) == (root, root, str(root), str(root))
    assert not output.remote and not output.shared and output.lease_seconds is None
    assert (step.root, step.name, step.path) == (root, "tweets", root / "tweets")
    assert step.uri == (root / "tweets").as_uri()
    assert step.step_json_path == root / "tweets" / "step.json"
    assert (step.dataset_path, step.model_path) == (root / "tweets" / "_dataset", root / "tweets" / "_model")
    assert step.checkpoints_path == root / "tweets" / "_checkpoints"
    assert step.model_state_path == root / "tweets" / "_model_state"
    assert step.backup_path(FP) == root / "_backups" / "tweets" / FP
    assert step.shard("0003").name == "tweets/_shards/0003"
    assert step.shard("0003").path == root / "tweets" / "_shards" / "0003"
    assert output.cache_path == root / ".cache"
    lock = step.lock()
    assert (
        isinstance(lock, StepLock) and lock.path == root / ".locks" / "tweets.lock" and lock.step == "tweets"
    )
    assert step_uri(root, "tweets") == (root / "tweets").as_uri()
    assert output.publish_cache() == 0  # one cache file shared by every process here
    work = output.staging("tweets", run_id="run1")
    assert work.parent == root / ".staging" and work.is_dir() and "run1" in work.name


def test_the_layout_of_a_remote_output_folder(remote, tmp_path):
    step = remote.step("tweets")
    local = tmp_path / "worker"
    assert (
        remote.remote and remote.shared and str(remote) == remote.url and remote.url.startswith("memory://")
    )
    assert remote.local_root.is_relative_to(local)
    assert step.uri == f"{remote.url}/tweets" == step_uri(remote.url, "tweets")
    assert step.checkpoints_path == remote.local_root / "tweets" / "_checkpoints"
    assert step.model_state_path == remote.local_root / "tweets" / "_model_state"
    assert remote.cache_path == remote.local_root / ".cache"
    assert remote.dagster_home() == remote.local_root / ".dagster"
    assert remote.staging("tweets").parent == remote.local_root / ".staging"
    lock = OutputFolder(remote.url, local_folder=str(local), lease_seconds=9).step("tweets").lock()
    assert isinstance(lock, LeaseLock) and lock.ttl == 9 and str(lock.folder) == f"{remote.url}/.locks/tweets"
    assert lock.step == "tweets"


def test_a_file_url_is_a_shared_disk(tmp_path):
    from dreamer_dagster.cache import ModelCache

    shared = OutputFolder((tmp_path / "disk").as_uri(), local_folder=str(tmp_path / "worker"))
    assert shared.shared and not shared.remote
    assert shared.cache_path == shared.local_root / ".cache"
    assert shared.cache_path != tmp_path / "disk" / ".cache"
    # The Dagster home and the work folders stay on the shared disk; the cache is the worker's.
    assert shared.dagster_home() == tmp_path / "disk" / ".dagster"
    assert shared.staging("tweets").parent == tmp_path / "disk" / ".staging"
    with ModelCache(shared.cache_path, "m") as cache:
        cache.put_many([("k", 1), ("j", 2)])
    assert shared.publish_cache() == 2
    assert [path.name for path in (tmp_path / "disk" / ".cache").iterdir()] == ["m"]


def test_a_backup_path_is_made_only_of_a_fingerprint(output):
    with pytest.raises(OutputFolderError) as raised:
        output.step("tweets").backup_path("../../etc")
    assert str(raised.value) == (
        f"{output.step('tweets').path} names the fingerprint '../../etc', not one this library writes: "
        "not trusted (planted or hand-edited?). Fix: remove it."
    )


def test_dagster_home_is_made_once_with_telemetry_off(output, tmp_path):
    home = output.dagster_home()
    assert home == tmp_path / "out" / ".dagster"
    assert (home / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"
    (home / "dagster.yaml").write_text("# the user's own\n")
    assert output.dagster_home() == home and (home / "dagster.yaml").read_text() == "# the user's own\n"
    assert [path.name for path in home.iterdir()] == ["dagster.yaml"]


# -- finished or not -------------------------------------------------------------------------


def test_a_committed_folder_is_finished_and_its_outputs_checked(output, tmp_path):
    step = output.step("tweets")
    assert step.step_json() is None and step.problem() is None and step.finished_fingerprint() is None
    step.start(FP)
    assert json.loads((step.path / "_in_progress.json").read_text()) == {"fingerprint": FP}
    assert step.in_progress_fingerprint() == FP and step.recorded_fingerprint() is None
    record = finished(step, tmp_path)
    assert not (step.path / "_in_progress.json").exists()
    assert not (step.path / "scratch.txt").exists()
    stored = step.step_json()
    assert {key: stored[key] for key in record} == record and "manifest" in json.dumps(stored)
    assert (step.finished_fingerprint(), step.recorded_fingerprint(), step.problem()) == (FP, FP, None)
    assert step.load_dataset()["text"] == ["a", "b"] and step.load_dataset(stored)["text"] == ["a", "b"]
    assert step.local_output("_dataset") == step.dataset_path
    assert sum(batch.num_rows for batch in step.record_batches()) == 2
    step.verify_output()
    # A file changed after the commit is never read.
    arrow = next(step.dataset_path.glob("*.arrow"))
    arrow.write_bytes(arrow.read_bytes()[:-8] + b"tampered")
    for read in (step.verify_output, step.load_dataset, lambda: list(step.record_batches())):
        with pytest.raises(IntegrityError):
            read()
    with pytest.raises(IntegrityError):
        step.verify_output(stored)


def test_an_output_is_checked_against_the_record_given(output, tmp_path):
    step = output.step("tweets")
    finished(step, tmp_path, FP, {"text": ["old"]})
    old = step.step_json()
    finished(step, tmp_path, OTHER, {"text": ["new", "rows"]})
    assert step.load_dataset()["text"] == ["new", "rows"]
    for read in (step.load_dataset, step.verify_output, lambda record: step.local_output("_dataset", record)):
        with pytest.raises(IntegrityError) as raised:
            read(old)  # the files are not the ones that record describes
        assert str(step.path) in str(raised.value)
    model = output.step("tuned")
    staged = tmp_path / "staged-model"
    (staged / "_model").mkdir(parents=True)
    (staged / "_model" / "config.json").write_text("{}")
    model.commit(staged, {"fingerprint": FP, "data_version": VERSION, "model": True})
    with pytest.raises(IntegrityError):
        model.local_model_path(old | {"model": True})


def test_a_committed_model_folder(output, tmp_path):
    step = output.step("tuned")
    staged = tmp_path / "staged-model"
    (staged / "_model").mkdir(parents=True)
    (staged / "_model" / "config.json").write_text("{}")
    step.commit(staged, {"fingerprint": FP, "data_version": VERSION, "model": True})
    assert step.problem() is None and step.local_model_path() == step.model_path
    assert not staged.exists()
    (step.model_path / "config.json").write_text('{"planted": 1}')
    with pytest.raises(IntegrityError):
        step.local_model_path()


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"data_version": VERSION}, "{json} has no fingerprint (hand-edited?)"),
        ({"fingerprint": "", "data_version": VERSION}, "{json} has no fingerprint (hand-edited?)"),
        ({"fingerprint": 7, "data_version": VERSION}, "{json} has no fingerprint (hand-edited?)"),
        ({"fingerprint": FP}, "{json} has no data_version (hand-edited?)"),
        ({"fingerprint": FP, "data_version": ""}, "{json} has no data_version (hand-edited?)"),
        ({"fingerprint": "../x", "data_version": VERSION}, "untrusted fingerprint"),
        ({"fingerprint": FP, "data_version": "/etc"}, "untrusted data_version"),
        (
            {"fingerprint": FP, "data_version": VERSION, "model": True},
            "{folder}/_model is missing (deleted by hand?)",
        ),
    ],
)
def test_each_reason_a_step_json_is_not_a_finished_step(output, tmp_path, record, reason):
    step = output.step("tweets")
    finished(step, tmp_path)
    step.step_json_path.write_text(json.dumps(record))
    problem = step.problem()
    if reason.startswith("untrusted"):
        field = reason.split()[1]
        assert (
            problem.startswith(str(step.step_json_path))
            and field in problem
            and repr(record[field]) in problem
        )
    else:
        assert problem == reason.format(json=step.step_json_path, folder=step.path)
    assert step.step_json() is None and step.finished_fingerprint() is None
    assert not step.holds_finished(FP)


def test_a_missing_dataset_or_a_broken_step_json_is_not_finished(output, tmp_path):
    step = output.step("tweets")
    finished(step, tmp_path)
    import shutil

    shutil.rmtree(step.dataset_path)
    assert step.problem() == f"{step.dataset_path} is missing (deleted by hand?)"
    step.step_json_path.write_text('{"fingerprint": ')
    assert (
        step.problem() == f"{step.step_json_path} does not parse as a JSON object (truncated or hand-edited)"
    )
    assert step.recorded_fingerprint() is None
    step.step_json_path.write_text(json.dumps({"fingerprint": "not-one", "data_version": VERSION}))
    assert step.recorded_fingerprint() is None  # names no valid fingerprint


def test_an_in_progress_claim_is_trusted_only_with_a_fingerprint(output):
    step = output.step("tweets")
    step.files.make_dirs(step.path)
    (step.path / "_in_progress.json").write_text(json.dumps({"fingerprint": "/etc/passwd"}))
    assert step.problem() == (
        f"{step.path / '_in_progress.json'} names the fingerprint '/etc/passwd', not one this library "
        "writes: not trusted (planted or hand-edited?)"
    )
    assert step.in_progress_fingerprint() is None
    (step.path / "_in_progress.json").write_text("not json")
    assert step.problem() is None and step.in_progress_fingerprint() is None
    step.start(FP)
    assert step.problem() is None and step.in_progress_fingerprint() == FP


# -- the reuse / back up / restore rules ----------------------------------------------------


def test_reuse_back_up_and_restore(output, tmp_path):
    step = output.step("tweets")
    assert step.prepare(FP) is Preparation.FRESH and not step.path.exists()
    step.start(FP)
    assert step.prepare(FP) is Preparation.RESUME
    finished(step, tmp_path, FP, {"text": ["first"]})
    assert step.prepare(FP) is Preparation.FINISHED and step.holds_finished(FP)
    assert not step.holds_finished(OTHER)
    # Another fingerprint: the finished folder moves to _backups, whole.
    assert step.prepare(OTHER) is Preparation.FRESH
    assert not step.path.exists() and (step.backup_path(FP) / "step.json").exists()
    assert step.holds_finished(FP) and not step.holds_finished(OTHER)
    finished(step, tmp_path, OTHER, {"text": ["second"]})
    # Back to the first: the second is backed up, the first restored, checked.
    assert step.prepare(FP) is Preparation.RESTORED
    assert step.load_dataset()["text"] == ["first"] and (step.backup_path(OTHER) / "step.json").exists()
    assert not step.backup_path(FP).exists()
    assert step.prepare(OTHER) is Preparation.RESTORED and step.load_dataset()["text"] == ["second"]
    assert step.prepare(FP, verify=False) is Preparation.RESTORED and step.load_dataset()["text"] == ["first"]


def test_an_unfinished_backup_is_resumed_and_an_unclaimed_folder_cleared(output, tmp_path):
    step = output.step("tweets")
    step.start(FP)
    (step.path / "partial.txt").write_text("half")
    assert step.prepare(OTHER) is Preparation.FRESH  # the unfinished FP run moves to _backups
    assert (step.backup_path(FP) / "partial.txt").exists()
    assert step.prepare(FP) is Preparation.RESUME and (step.path / "partial.txt").read_text() == "half"
    # A folder no run claims (no step.json, no _in_progress.json) is cleared.
    (step.path / "_in_progress.json").unlink()
    assert step.prepare(OTHER) is Preparation.FRESH and not step.path.exists()


def test_a_restored_output_that_was_changed_is_refused(output, tmp_path):
    step = output.step("tweets")
    finished(step, tmp_path, FP)
    assert step.prepare(OTHER) is Preparation.FRESH
    arrow = next((step.backup_path(FP) / "_dataset").glob("*.arrow"))
    arrow.write_bytes(arrow.read_bytes() + b"x")
    with pytest.raises(IntegrityError):
        step.prepare(FP)
    assert step.prepare(FP, verify=False) is Preparation.FINISHED


def test_a_sharded_step_keeps_its_shards_in_place(output, tmp_path):
    step = output.step("tweets")
    finished(step, tmp_path, FP)
    (step.path / "x-notes.txt").write_text("kept with its step")  # a file, sorted after step.json
    shard = step.shard("0000")
    finished(shard, tmp_path, OTHER)
    assert step.prepare(OTHER) is Preparation.FRESH
    assert sorted(path.name for path in step.path.iterdir()) == ["_shards"]
    assert shard.step_json()["fingerprint"] == OTHER  # untouched
    moved = sorted(path.name for path in step.backup_path(FP).iterdir())
    assert moved == ["_dataset", "step.json", "x-notes.txt"]
    assert (step.backup_path(FP) / "x-notes.txt").read_text() == "kept with its step"
    assert step.prepare(FP) is Preparation.RESTORED
    restored = sorted(path.name for path in step.path.iterdir())
    assert restored == ["_dataset", "_shards", "step.json", "x-notes.txt"]
    assert (step.path / "x-notes.txt").read_text() == "kept with its step"
    assert not step.backup_path(FP).exists()
    # A sharded folder that no run claims: its own entries go, its shards stay.
    step.step_json_path.unlink()
    (step.path / "loose.txt").write_text("x")
    assert step.prepare(OTHER) is Preparation.FRESH
    assert sorted(path.name for path in step.path.iterdir()) == ["_shards"]


# -- a remote output folder ------------------------------------------------------------------


def test_a_remote_commit_keeps_the_workers_copy_and_checks_downloads(remote, tmp_path):
    step = remote.step("tweets")
    record = finished(step, tmp_path)
    kept = remote.local_root / ".downloads" / "tweets" / VERSION / "_dataset"
    assert kept.is_dir()  # the worker kept its own copy of what it uploaded: nothing to download
    local = step.local_output("_dataset")
    assert local == kept
    assert local.is_relative_to(remote.local_root) and VERSION in local.parts
    assert step.load_dataset()["text"] == ["a", "b"]
    assert step.prepare(FP) is Preparation.FINISHED
    # A second worker downloads it once, checked.
    other = OutputFolder(remote.url, local_folder=str(tmp_path / "worker-2")).step("tweets")
    assert other.load_dataset(record | {"manifest": step.step_json()["manifest"]})["text"] == ["a", "b"]
    assert other.local_output("_dataset").is_relative_to(tmp_path / "worker-2")


# -- writing rows ------------------------------------------------------------------------------


def test_write_dataset_from_each_kind_of_rows(output, tmp_path):
    import datasets

    int32 = datasets.Features({"n": datasets.Value("int32")})
    for index, rows in enumerate(
        [
            datasets.Dataset.from_dict({"n": [1, 2]}, features=int32),
            {"n": [1, 2]},
            iter([{"n": 1}, {"n": 2}]),
        ]
    ):
        seen = []
        staged = tmp_path / f"w{index}"
        summary = output.write_dataset(staged, rows, features=int32, observers=[seen.append])
        written = datasets.load_from_disk(str(staged / "_dataset"))
        assert summary.num_rows == 2 and written["n"] == [1, 2] and written.features == int32
        assert seen  # every row went past the observers
        again = {"n": [1, 2]} if index == 1 else written
        split = output.write_dataset(tmp_path / f"s{index}", again, num_shards=2)
        assert split.num_rows == 2 and len(list((tmp_path / f"s{index}" / "_dataset").glob("*.arrow"))) == 2

    seen = []
    rows = iter([{"n": i} for i in range(6)])
    split = output.write_dataset(
        tmp_path / "split", rows, features=int32, num_shards=2, observers=[seen.append]
    )
    written = datasets.load_from_disk(str(tmp_path / "split" / "_dataset"))
    assert split.num_rows == 6 and written.features == int32 and seen
    assert len(list((tmp_path / "split" / "_dataset").glob("*.arrow"))) == 2
    assert sorted(path.name for path in (tmp_path / "split").iterdir()) == ["_dataset"]  # no scratch left
    processes = output.write_dataset(tmp_path / "procs", iter([{"n": i} for i in range(4)]), num_proc=2)
    assert processes.num_rows == 4 and len(list((tmp_path / "procs" / "_dataset").glob("*.arrow"))) == 2
    empty = output.write_dataset(tmp_path / "empty", iter([]), columns=["n"])
    assert empty.num_rows == 0
    assert datasets.load_from_disk(str(tmp_path / "empty" / "_dataset")).column_names == ["n"]
    output.write_dataset(tmp_path / "empty-split", iter([]), columns=["n"], num_shards=1)
    assert datasets.load_from_disk(str(tmp_path / "empty-split" / "_dataset")).column_names == ["n"]


# -- written for the survivors of the second run ------------------------------------------------


def test_the_storage_options_reach_the_object_store(tmp_path):
    output = OutputFolder(
        f"memory://opts-{uuid.uuid4().hex}/out", storage_options={"anon": True}, local_folder=str(tmp_path)
    )
    assert output.root.storage_options == {"anon": True}


def test_an_unwritable_object_store_is_refused_naming_the_step(tmp_path):
    output = OutputFolder("http://127.0.0.1:9/out", local_folder=str(tmp_path / "worker"))
    with pytest.raises(OutputFolderError) as raised:
        output.check_writable("tweets")  # nothing listens on port 9: the probe cannot be written
    message = str(raised.value)
    assert message.startswith("Step 'tweets': the output folder http://127.0.0.1:9/out cannot be written (")
    assert message.endswith("or storage_options=) allow writing to it.")


def test_a_remote_output_is_checked_against_the_record_given(remote, tmp_path):
    step = remote.step("tweets")
    finished(step, tmp_path, FP, {"text": ["old"]})
    old = step.step_json()
    finished(step, tmp_path, OTHER, {"text": ["new", "rows"]})  # same data version, other files
    assert step.load_dataset()["text"] == ["new", "rows"]
    with pytest.raises(IntegrityError) as raised:
        step.load_dataset(old)
    assert step.path.path in str(raised.value)


def test_rows_are_streamed_in_batches_of_1000_by_default(output, tmp_path):
    import pyarrow as pa

    output.write_dataset(tmp_path / "batches", iter([{"n": i} for i in range(2500)]))
    (arrow,) = (tmp_path / "batches" / "_dataset").glob("*.arrow")
    with pa.memory_map(str(arrow)) as source:
        reader = pa.ipc.open_stream(source)
        assert [batch.num_rows for batch in reader] == [1000, 1000, 500]


def test_a_partition_folder_is_under_the_steps_partitions(output, tmp_path):
    plain = output.step("tweets").partition("2026-12-01")
    assert plain.output is output and plain.name == "tweets/_partitions/2026-12-01"
    assert plain.path == tmp_path / "out" / "tweets" / "_partitions" / "2026-12-01"
    odd = output.step("tweets").partition("Fr/../x")  # a key is never a path as it is
    assert odd.name.startswith("tweets/_partitions/_fr-x_") and odd.path.parent == plain.path.parent
