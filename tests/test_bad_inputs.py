"""The bad-input table: each case is an input, where it fails (declaration or run), the
message it must contain, and the state afterwards. The same table is in docs/errors.md
(``test_docs_table_matches`` keeps the two equal; ``python -m tests.test_bad_inputs``
prints it).

Run cases use real Dagster on a temporary output folder and the loopback OpenAI server;
"calls" counts the requests the failing run made to it. Unless a case says otherwise,
the failing step is left with no finished folder, no work folder, and a model cache
that lost nothing."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from dreamer_dagster import dreamer_definitions
from dreamer_dagster.errors import is_retryable
from dreamer_dagster.llms import HFTransformers, OpenAI
from dreamer_dagster.steps import (
    DataFromAttributedPrompt,
    DataFromPrompt,
    DataSource,
    FilterWithPrompt,
    JSONDataSource,
    ProcessWithPrompt,
    Prompt,
)
from dreamer_dagster.trainers import TrainHFClassifier, TrainHFFineTune
from dreamer_dagster.verify import verify_definitions
from tests.support.openai_server import FakeOpenAIServer

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "errors.md"
ROWS = 6


class Env:
    """What a case builds with: a temp folder, the output folder, the loopback server."""

    def __init__(self, tmp_path: Path, request: pytest.FixtureRequest, server: FakeOpenAIServer):
        self.tmp = tmp_path
        self.output = tmp_path / "output"
        self.request = request
        self.server = server
        self.cleanups: list[Callable[[], None]] = []
        self.notes: dict[str, Any] = {}

    @property
    def instance(self) -> dg.DagsterInstance:
        """The test's Dagster instance, made on first use: a declaration case never builds one."""
        return self.request.getfixturevalue("instance")

    def llm(self, **kwargs: Any) -> OpenAI:
        return OpenAI("fake-chat", base_url=self.server.base_url, **kwargs)

    def source(self, name: str = "Inputs", rows: int = ROWS, prefix: str = "text") -> DataSource:
        return DataSource(name, {"text": [f"{prefix} {i}" for i in range(rows)]})

    def process(self, inputs: Any, name: str = "Processed", **args: Any) -> ProcessWithPrompt:
        # Each bad input is judged on its first attempt: step retries (a model step retries
        # transient failures, such as an unreachable server) are tested in test_retries.py.
        return ProcessWithPrompt(
            name,
            inputs={"inputs": inputs.output["text"] if isinstance(inputs, DataSource) else inputs},
            args={"llm": args.pop("llm", None) or self.llm(), "instruction": "Shorten it.", **args},
            retry_policy=False,
        )

    def materialize(self, steps: list, only: list | None = None, output: Path | None = None) -> Any:
        defs = dreamer_definitions(list(steps), output_folder=str(output or self.output))
        selection = [step.asset_key for step in only] if only is not None else None
        return dg.materialize(
            list(defs.assets), instance=self.instance, resources=dict(defs.resources), selection=selection
        )

    def finished(self, step: Any, output: Path | None = None) -> bool:
        return ((output or self.output) / step.folder / "step.json").exists()

    def cache_files(self) -> list[Path]:
        return sorted((self.output / ".cache").glob("*.db"))

    def cache_rows(self) -> int:
        total = 0
        for path in self.cache_files():
            uri = f"file:{path}?mode=ro"
            with (
                contextlib.suppress(sqlite3.DatabaseError),
                contextlib.closing(sqlite3.connect(uri, uri=True)) as db,
            ):
                total += db.execute("SELECT COUNT(*) FROM cache").fetchone()[0]  # a damaged file counts 0
        return total

    def checkpoint_caches(self) -> None:
        """Fold each cache's WAL into its file, so the file alone holds every answer."""
        for path in self.cache_files():
            with contextlib.closing(sqlite3.connect(path)) as connection:
                connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def mount_tmpfs(self, path: Path, options: str) -> None:
        path.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True
        )
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip()}); needs root")
        self.cleanups.append(lambda: subprocess.run(["umount", "-l", str(path)], check=False))

    def chattr(self, path: Path) -> None:
        result = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot lock a folder with chattr +i here ({result.stderr.strip()})")
        self.cleanups.append(lambda: subprocess.run(["chattr", "-i", str(path)], check=False))


@dataclass
class Case:
    id: str
    input: str
    where: str  # "declaration", "run", or "run (no failure)"
    message: str  # what the error (or the run's log / verify) must contain
    state: str  # the state afterwards, as docs/errors.md says it
    build: Callable[[Env], Any]  # declares; returns the steps (the failing one last)
    calls: int | None = 0  # requests the failing run may make (None: not checked)
    prepare: Callable[[Env, list], None] | None = None  # after the upstream steps ran
    check: Callable[[Env, list], None] | None = None  # more state checks
    arm: Callable[[Env], None] | None = None  # just before the failing run (server faults)
    upstream_first: bool = True
    cache_bytes_kept: bool = False
    xfail: str | None = None
    fixtures: tuple[str, ...] = ()


# -- user functions -------------------------------------------------------------------------


def raise_at_row_3(generation: str) -> str:
    if "text 3" in generation:
        raise ValueError("cannot parse this answer")
    return generation.upper()


def upper(generation: str) -> str:
    return generation.upper()


def filter_raising_at_row_2(generation: str) -> bool:
    if "text 2" in generation:
        raise KeyError("score")
    return True


def generator_raising_at_row_2():
    yield {"text": "one"}
    yield {"text": "two"}
    raise OSError("the feed closed")


def check_rerun_pays_only_the_unanswered(env: Env, steps: list) -> None:
    """The failed run's answers are in the cache: a fixed re-run pays only for what was
    never answered (both runs together: at most prompts + max_concurrency)."""
    failed = env.server.request_count
    source = steps[0]
    fixed = env.process(source, llm=env.llm(max_concurrency=2), post_process=upper)
    env.server.reset()
    env.materialize([fixed], only=[fixed])
    assert failed + env.server.request_count <= ROWS + 2
    assert env.finished(fixed)


def check_no_staging(env: Env, steps: list) -> None:
    staging = env.output / ".staging"
    assert not staging.exists() or not [p for p in staging.iterdir() if p.name.startswith(steps[-1].key)]


# -- cache files ------------------------------------------------------------------------------


def second_process(env: Env) -> list:
    source = env.source()
    return [source, env.process(source, name="Processed Again", instruction="Lengthen it.")]


def fill_then(damage: Callable[[Path], None]) -> Callable[[Env, list], None]:
    def prepare(env: Env, steps: list) -> None:
        env.materialize([env.process(steps[0])])  # the same LLM: fills its cache
        env.checkpoint_caches()
        [path] = env.cache_files()
        for companion in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            companion.unlink(missing_ok=True)
        damage(path)
        env.notes["cache_sha"] = hashlib.sha256(path.read_bytes()).hexdigest()
        env.notes["cache_path"] = path

    return prepare


def check_cache_unchanged(env: Env, steps: list) -> None:
    path = env.notes["cache_path"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == env.notes["cache_sha"]
    assert not list(path.parent.glob("*.corrupt*"))


def not_a_database(path: Path) -> None:
    path.write_bytes(b"these bytes are not an SQLite database\n" * 100)


def truncated(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def garbage_pages(path: Path) -> None:
    with open(path, "r+b") as handle:
        handle.seek(0)
        handle.write(b"\x00" * 100 + os.urandom(3000))


def newer_schema(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("UPDATE meta SET value = '99' WHERE name = 'schema_version'")
        connection.commit()


# -- step folders -----------------------------------------------------------------------------


def finished_then(edit: Callable[[Path], None]) -> Callable[[Env, list], None]:
    def prepare(env: Env, steps: list) -> None:
        env.materialize(steps)
        edit(env.output / steps[-1].folder)
        env.server.reset()

    return prepare


def drop_data_version(folder: Path) -> None:
    record = json.loads((folder / "step.json").read_text())
    del record["data_version"]
    (folder / "step.json").write_text(json.dumps(record))


def truncate_step_json(folder: Path) -> None:
    text = (folder / "step.json").read_text()
    (folder / "step.json").write_text(text[: len(text) // 2])


def delete_dataset(folder: Path) -> None:
    shutil.rmtree(folder / "_dataset")


def check_finished_again(env: Env, steps: list) -> None:
    assert env.finished(steps[-1])
    import datasets

    assert datasets.load_from_disk(str(env.output / steps[-1].folder / "_dataset")).num_rows == ROWS


def delete_cache_mid_run(env: Env) -> list:
    """Rows 0-5 answer at once, rows 6-9 half a second later; post_process deletes the
    cache file at row 3, while rows 6-9 are still in flight."""
    cache_folder = str(env.output / ".cache")

    def delete_at_row_3(generation: str) -> str:
        if "item 3" in generation:
            for path in Path(cache_folder).glob("*.db*"):
                path.unlink()
        return generation

    texts = [f"item {i}" + (" [[sleep:0.5]]" if i >= 6 else "") for i in range(10)]
    source = DataSource("Inputs", {"text": texts})
    return [source, env.process(source, post_process=delete_at_row_3)]


def check_cache_made_again(env: Env, steps: list) -> None:
    assert env.finished(steps[-1]) and env.server.request_count == 10
    # the answers received after the deletion (rows 6-9 at least) are in the new cache file...
    kept = env.cache_rows()
    assert 4 <= kept < 10
    # ...so a re-run (folder removed) pays only for those lost with the deleted file
    shutil.rmtree(env.output / steps[-1].folder)
    env.server.reset()
    env.materialize(steps, only=[steps[-1]])
    assert env.server.request_count == 10 - kept


def other_output_folder(env: Env) -> list:
    source = env.source()
    step = env.process(source)
    env.materialize([step])  # both steps finished in ./output
    env.notes["other"] = env.tmp / "other_output"
    return [source, step]


def renamed(env: Env) -> list:
    source = env.source()
    env.materialize([env.process(source)])
    env.server.reset()
    return [source, env.process(source, name="Processed Renamed")]


def check_renamed(env: Env, steps: list) -> None:
    assert env.finished(steps[-1]) and (env.output / "processed" / "step.json").exists()
    report = verify_definitions(dreamer_definitions(steps, output_folder=str(env.output)))
    [old] = [f for f in report.findings if f.key == "processed"]
    assert old.status == "undeclared" and not report.drifted


# -- output folder on a filesystem that refuses writes ---------------------------------------


def read_only_output(env: Env) -> list:
    env.output = env.tmp / "ro"
    env.mount_tmpfs(env.output, "ro,size=1m")
    return [env.source()]


def locked_output(env: Env) -> list:
    first = env.source()
    env.materialize([first])
    env.chattr(env.output)
    return [env.source(name="More Inputs")]


def full_disk(env: Env) -> list:
    env.output = env.tmp / "small"
    env.mount_tmpfs(env.output, "size=2m")

    def big_rows():
        for i in range(400):
            yield {"text": f"{i} " + "x" * 10_000}

    return [DataSource("Big Rows", big_rows, columns=["text"])]


def check_full_disk(env: Env, steps: list) -> None:
    check_no_staging(env, steps)
    assert not list((env.output / steps[-1].folder).glob("_dataset"))


# -- models -----------------------------------------------------------------------------------


def adapter_for_another_base(env: Env) -> list:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    tiny = env.notes["tiny_llama"]
    adapter = env.tmp / "adapter"
    model = AutoModelForCausalLM.from_pretrained(str(tiny))
    get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"])).save_pretrained(str(adapter))
    other = env.tmp / "wider_llama"
    config = LlamaConfig.from_pretrained(str(tiny))
    config.hidden_size, config.intermediate_size = 32, 64
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(str(other))
    for name in os.listdir(tiny):
        if "token" in name or name.endswith(".jinja"):
            shutil.copy(tiny / name, other / name)
    source = env.source()
    llm = HFTransformers(str(other), adapter_name=str(adapter))
    return [source, Prompt("Generated", inputs={"prompts": source.output["text"]}, args={"llm": llm})]


def failing_chat_template(env: Env) -> list:
    folder = env.tmp / "templated"
    shutil.copytree(env.notes["tiny_llama"], folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["chat_template"] = (
        "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
        "{% endif %}{% for m in messages %}{{ m['content'] }}{% endfor %}"
    )
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    (folder / "chat_template.jinja").unlink(missing_ok=True)
    source = env.source()
    llm = HFTransformers(str(folder), system_prompt="Be brief.")
    return [source, Prompt("Generated", inputs={"prompts": source.output["text"]}, args={"llm": llm})]


def tiny_over_context(env: Env) -> list:
    source = env.source()
    llm = HFTransformers(str(env.notes["tiny_llama"]))
    return [
        source,
        Prompt(
            "Generated", inputs={"prompts": source.output["text"]}, args={"llm": llm, "max_new_tokens": 1000}
        ),
    ]


def api_status(status: int) -> Case:
    def build(env: Env) -> list:
        source = env.source()
        return [source, env.process(source, llm=env.llm(max_concurrency=2))]

    def check(env: Env, steps: list) -> None:
        assert env.server.statuses[status] == env.server.request_count <= 2  # never retried
        assert not is_retryable(env.notes["error"])  # so Dagster's retry policy skips it too

    return Case(
        f"http-{status}",
        f"the API answers {status}",
        "run",
        f"HTTP {status}",
        "fails at once, no retry (non-retryable); ≤ max_concurrency calls",
        build,
        calls=None,
        arm=lambda env: env.server.fail_next(status, 1000),
        check=check,
    )


def trainer(kind: type, data: DataSource, labels: DataSource | None = None, **train: Any) -> Any:
    labels = labels or data
    return kind("Trainer", model_name="some/model").train(
        train_input=data.output["text"], train_output=labels.output["text"], **train
    )


def tiny_source(name: str, values: list) -> DataSource:
    return DataSource(name, {"text": values})


# -- the table --------------------------------------------------------------------------------

D, R, OK = "declaration", "run", "run (no failure)"
NOTHING = "nothing declared; nothing written"
NO_FOLDER = "no finished folder; cache intact; 0 calls"

CASES = [
    # declaration errors (nothing runs, nothing is written)
    Case(
        "name-empty", "a step named ''", D, "argument 'name'", NOTHING, lambda e: DataSource("", {"a": [1]})
    ),
    Case(
        "arg-typo",
        "`temprature=0.5` on a prompt step",
        D,
        "Did you mean 'temperature'?",
        NOTHING,
        lambda e: e.process(e.source(), temprature=0.5),
    ),
    Case(
        "llm-kwarg-unknown",
        "`max_tokens=5` (an LLM kwarg that does not exist)",
        D,
        "Did you mean 'max_new_tokens'?",
        NOTHING,
        lambda e: e.process(e.source(), max_tokens=5),
    ),
    Case(
        "arg-missing",
        "ProcessWithPrompt without `instruction`",
        D,
        "argument \"args['instruction']\": this argument is required",
        NOTHING,
        lambda e: ProcessWithPrompt("P", inputs={"inputs": e.source().output["text"]}, args={"llm": e.llm()}),
    ),
    Case(
        "input-missing",
        "ProcessWithPrompt without `inputs`",
        D,
        "argument \"inputs['inputs']\": this input is required",
        NOTHING,
        lambda e: ProcessWithPrompt("P", args={"llm": e.llm(), "instruction": "Go."}),
    ),
    Case(
        "input-unknown",
        "an input name the step does not take",
        D,
        "unknown input",
        NOTHING,
        lambda e: Prompt("P", inputs={"texts": e.source().output["text"]}, args={"llm": e.llm()}),
    ),
    Case(
        "input-not-a-column",
        "a list where a column reference goes",
        D,
        "is not a column reference",
        NOTHING,
        lambda e: Prompt("P", inputs={"prompts": ["a", "b"]}, args={"llm": e.llm()}),
    ),
    Case(
        "column-unknown",
        "`step.output['nope']`",
        D,
        "has no output column 'nope'",
        NOTHING,
        lambda e: e.source().output["nope"],
    ),
    Case(
        "outputs-unknown",
        "`outputs={'answers': ...}` naming no output",
        D,
        "unknown output 'answers'",
        NOTHING,
        lambda e: Prompt(
            "P",
            inputs={"prompts": e.source().output["text"]},
            args={"llm": e.llm()},
            outputs={"answers": "a"},
        ),
    ),
    Case(
        "outputs-duplicate",
        "two outputs renamed to one name",
        D,
        "two output columns would be named ['x']",
        NOTHING,
        lambda e: Prompt(
            "P",
            inputs={"prompts": e.source().output["text"]},
            args={"llm": e.llm()},
            outputs={"prompts": "x", "generations": "x"},
        ),
    ),
    Case(
        "llm-not-an-llm",
        "`llm='gpt-4o'` (a string)",
        D,
        "must be an LLM",
        NOTHING,
        lambda e: Prompt("P", inputs={"prompts": e.source().output["text"]}, args={"llm": "gpt-4o"}),
    ),
    Case(
        "n-below-1", "`n=0`", D, "argument 'n': must be >= 1", NOTHING, lambda e: e.process(e.source(), n=0)
    ),
    Case(
        "batch-size-0",
        "`batch_size=0`",
        D,
        "argument 'batch_size': must be >= 1",
        NOTHING,
        lambda e: e.process(e.source(), batch_size=0),
    ),
    Case(
        "temperature-negative",
        "`temperature=-1`",
        D,
        "argument 'temperature': must be >= 0, got -1. Fix:",
        NOTHING,
        lambda e: e.process(e.source(), temperature=-1),
    ),
    Case(
        "top-p-above-1",
        "`top_p=1.5`",
        D,
        "argument 'top_p': must be in [0, 1], got 1.5. Fix:",
        NOTHING,
        lambda e: e.process(e.source(), top_p=1.5),
    ),
    # bounds: no provider takes these (dreamer_dagster/llms/generation_limits.py)
    Case(
        "n-over-ceiling",
        "`n=10**9` on DataFromPrompt (more rows than the 100,000,000 ceiling)",
        D,
        "argument 'n': must be <= 100,000,000",
        NOTHING,
        lambda e: DataFromPrompt("Many", args={"llm": e.llm(), "instruction": "Go.", "n": 10**9}),
    ),
    Case(
        "max-new-tokens-over-ceiling",
        "`max_new_tokens=10**12` (over 10,000,000: longer than any model's context)",
        D,
        "argument 'max_new_tokens': must be <= 10,000,000",
        NOTHING,
        lambda e: e.process(e.source(), max_new_tokens=10**12),
    ),
    Case(
        "batch-size-over-ceiling",
        "`batch_size=10**7` (over 1,000,000)",
        D,
        "argument 'batch_size': must be <= 1,000,000",
        NOTHING,
        lambda e: e.process(e.source(), batch_size=10**7),
    ),
    Case(
        "temperature-nan",
        "`temperature=float('nan')`",
        D,
        "argument 'temperature': must be a finite number, got nan",
        NOTHING,
        lambda e: e.process(e.source(), temperature=float("nan")),
    ),
    Case(
        "top-p-infinite",
        "`top_p=float('inf')`",
        D,
        "argument 'top_p': must be a finite number, got inf",
        NOTHING,
        lambda e: e.process(e.source(), top_p=float("inf")),
    ),
    Case(
        "llm-run-temperature-nan",
        "`llm.run(prompts, temperature=float('nan'))` (a direct call)",
        D,
        "OpenAI.run(): temperature must be a finite number, got nan",
        "nothing sent",
        lambda e: e.llm().run(["Hi."], temperature=float("nan")),
    ),
    Case(
        "name-too-long",
        "a step name of 300 characters (its folder name would pass 255 bytes)",
        D,
        "argument 'name': the name makes the asset key and folder name",
        NOTHING,
        lambda e: DataSource("Step " * 60, {"a": [1]}),
    ),
    Case(
        "stop-wrong-type",
        "`stop=3`",
        D,
        "argument 'stop': must be a string or a list of strings",
        NOTHING,
        lambda e: e.process(e.source(), stop=3),
    ),
    Case(
        "post-process-not-callable",
        "`post_process='upper'`",
        D,
        "argument 'post_process': must be a function",
        NOTHING,
        lambda e: e.process(e.source(), post_process="upper"),
    ),
    Case(
        "max-failed-rows-bad",
        "`max_failed_rows=1.5`",
        D,
        "argument 'max_failed_rows': a share of the rows must be in [0, 1)",
        NOTHING,
        lambda e: e.process(e.source(), max_failed_rows=1.5),
    ),
    Case(
        "response-format-wrong-type",
        "`response_format='json'`",
        D,
        "argument 'response_format': response_format must be a JSON schema dict or a pydantic model",
        NOTHING,
        lambda e: e.process(e.source(), response_format="json"),
    ),
    Case(
        "response-format-invalid-schema",
        "`response_format={'type': 'nonsense'}` (not a valid JSON schema)",
        D,
        "argument 'response_format'",
        NOTHING,
        lambda e: e.process(e.source(), response_format={"type": "nonsense"}),
    ),
    Case(
        "max-new-tokens-over-context",
        "`max_new_tokens=10000` for gpt-4 (8,192-token context)",
        D,
        "argument 'max_new_tokens': 10000 is more than OpenAI 'gpt-4' can generate",
        NOTHING,
        lambda e: e.process(e.source(), llm=OpenAI("gpt-4"), max_new_tokens=10000),
    ),
    Case(
        "value-without-fingerprint",
        "an arg holding an `object()`",
        D,
        "has no stable fingerprint",
        NOTHING,
        lambda e: e.process(e.source(), logit_bias={1: object()}),
    ),
    Case(
        "duplicate-name",
        "two different steps named 'Inputs' given to `dreamer_definitions` (in a `Pipeline` the second is 'Inputs #2')",
        D,
        "another step, 'Inputs', has the same asset key 'inputs'",
        NOTHING,
        lambda e: _pipeline_with_two_inputs(e),
    ),
    Case(
        "output-folder-is-a-file",
        "`output_folder=` a path that is a file",
        D,
        "is a file, not a folder",
        "nothing declared; the file untouched",
        lambda e: _file_as_output_folder(e),
    ),
    Case(
        "data-file-missing",
        "`JSONDataSource(data_files='missing.json')`",
        D,
        "argument 'data_files': the data file",
        NOTHING,
        lambda e: JSONDataSource("Rows", data_files=str(e.tmp / "missing.json")),
    ),
    Case(
        "data-folder-missing",
        "`JSONDataSource(data_folder='missing/')`",
        D,
        "argument 'data_folder': the folder",
        NOTHING,
        lambda e: JSONDataSource("Rows", data_folder=str(e.tmp / "missing")),
    ),
    Case(
        "data-glob-no-match",
        "`data_files='*.json'` matching no file",
        D,
        "matches no file",
        NOTHING,
        lambda e: JSONDataSource("Rows", data_files=str(e.tmp / "*.json")),
    ),
    Case(
        "data-file-empty",
        "an empty data file",
        D,
        "is empty",
        NOTHING,
        lambda e: JSONDataSource("Rows", data_files=_write(e.tmp / "empty.json", "")),
    ),
    Case(
        "data-columns-uneven",
        "`DataSource` columns of different lengths",
        D,
        "the columns have different lengths",
        NOTHING,
        lambda e: DataSource("D", {"a": [1, 2], "b": [1]}),
    ),
    Case(
        "data-wrong-kind",
        "`DataSource('D', 42)`",
        D,
        "argument 'data': got int",
        NOTHING,
        lambda e: DataSource("D", 42),
    ),
    Case(
        "map-not-callable",
        "`step.map('upper')`",
        D,
        "argument 'function': must be a function",
        NOTHING,
        lambda e: e.source().map("upper"),
    ),
    Case(
        "take-negative",
        "`step.take(-1)`",
        D,
        "argument 'n': must be an integer >= 0",
        NOTHING,
        lambda e: e.source().take(-1),
    ),
    Case(
        "sort-unknown-column",
        "`step.sort('nope')`",
        D,
        "has no column 'nope'",
        NOTHING,
        lambda e: e.source().sort("nope"),
    ),
    Case(
        "model-folder-missing",
        "`HFTransformers('./no/such/model')`",
        D,
        "model_name='./no/such/model' is a local path, and there is no folder",
        NOTHING,
        lambda e: HFTransformers("./no/such/model"),
    ),
    Case(
        "adapter-missing",
        "`HFTransformers(..., adapter_name='./no/adapter')`",
        D,
        "adapter_name='./no/adapter' is a local path, and there is no folder",
        NOTHING,
        lambda e: HFTransformers("some/model", adapter_name="./no/adapter"),
    ),
    Case(
        "trainer-model-folder-missing",
        "`TrainHFFineTune(model_name='./no/model')`",
        D,
        "argument 'model_name': './no/model' is a local path",
        NOTHING,
        lambda e: TrainHFFineTune("T", model_name="./no/model"),
    ),
    Case(
        "trainer-validation-labels-missing",
        "validation rows but no validation labels",
        D,
        "give all of ['validation_input', 'validation_output'] or none of them",
        NOTHING,
        lambda e: trainer(TrainHFFineTune, e.source(), validation_input=e.source().output["text"]),
    ),
    Case(
        "trainer-peft-config-wrong-type",
        "`peft_config=42`",
        D,
        "argument 'peft_config': got int",
        NOTHING,
        lambda e: TrainHFFineTune("T", model_name="some/model", peft_config=42),
    ),
    Case(
        "trainer-trained-twice",
        "`trainer.train(...)` called twice",
        D,
        "train() was already called",
        NOTHING,
        lambda e: _train_twice(e),
    ),
    Case(
        "trainer-used-before-train",
        "`trainer.model_path` before `.train(...)`",
        D,
        "has no model_path yet",
        NOTHING,
        lambda e: TrainHFFineTune("T", model_name="some/model").model_path,
    ),
    # run-time errors
    Case(
        "post-process-raises",
        "`post_process` raising on row 3",
        R,
        "argument 'post_process': the function raised at row 3: ValueError: cannot parse this answer",
        "no finished folder; every answer received is cached: the fixed re-run pays only the rest "
        "(both runs ≤ prompts + max_concurrency)",
        lambda e: [s := e.source(), e.process(s, llm=e.llm(max_concurrency=2), post_process=raise_at_row_3)],
        calls=None,
        check=check_rerun_pays_only_the_unanswered,
    ),
    Case(
        "filter-func-raises",
        "`FilterWithPrompt(filter_func=...)` raising on row 2",
        R,
        "argument 'filter_func': the function raised at row 2: KeyError",
        "no finished folder; answers cached",
        lambda e: [
            s := e.source(),
            FilterWithPrompt(
                "Kept",
                inputs={"inputs": s.output["text"]},
                args={"llm": e.llm(), "instruction": "Keep?", "filter_func": filter_raising_at_row_2},
            ),
        ],
        calls=None,
    ),
    Case(
        "map-function-raises",
        "a `map` function raising on row 2",
        R,
        "argument 'function': the function raised at row 2: ZeroDivisionError",
        "no finished folder; no work folder",
        lambda e: [
            s := e.source(),
            s.map(lambda row: {"n": 1 / (row["text"] != "text 2")}, name="Mapped", lazy=False),
        ],
        check=check_no_staging,
    ),
    Case(
        "filter-function-raises",
        "a batched `filter` function raising in the batch of rows 2-3",
        R,
        "argument 'function': the function raised at row 2: IndexError",
        "no finished folder",
        lambda e: [
            s := e.source(),
            s.filter(
                lambda batch: [[][0] if "text 3" in batch["text"] else True] * 2,
                batched=True,
                batch_size=2,
                lazy=False,
            ),
        ],
    ),
    Case(
        "data-generator-raises",
        "a `DataSource` generator raising after 2 rows",
        R,
        "argument 'data': the function raised at row 2: OSError: the feed closed",
        "no finished folder",
        lambda e: [DataSource("Fed", generator_raising_at_row_2, columns=["text"])],
    ),
    Case(
        "input-empty",
        "a prompt step over an input with no rows",
        R,
        "has no rows, so there is nothing to prompt",
        NO_FOLDER,
        lambda e: [s := e.source(rows=0), e.process(s)],
    ),
    Case(
        "input-column-none",
        "a prompt input column holding None (a failed row upstream)",
        R,
        "row 1 is None (a failed row upstream?), not text",
        NO_FOLDER,
        lambda e: [s := tiny_source("Inputs", ["a", None, "c"]), e.process(s)],
    ),
    Case(
        "input-column-wrong-type",
        "a prompt input column of lists",
        R,
        "row 0 is a list, not text",
        NO_FOLDER,
        lambda e: [s := tiny_source("Inputs", [["a"], ["b"]]), e.process(s)],
    ),
    Case(
        "input-lengths-differ",
        "trainer inputs from steps of 3 and 2 rows",
        R,
        "the train columns have different lengths",
        "no _model; nothing trained",
        lambda e: [
            a := tiny_source("A", ["a", "b", "c"]),
            b := tiny_source("B", ["x", "y"]),
            trainer(TrainHFFineTune, a, b),
        ],
    ),
    Case(
        "trainer-zero-rows",
        "a trainer with zero training rows",
        R,
        "have no rows, so there is nothing to train on",
        "no _model; nothing trained",
        lambda e: [a := tiny_source("A", []), trainer(TrainHFFineTune, a)],
    ),
    Case(
        "trainer-empty-validation",
        "a trainer whose validation split has no rows",
        R,
        "have no rows, so there is nothing to evaluate on",
        "no _model; nothing trained",
        lambda e: [
            a := tiny_source("A", ["a", "b"]),
            v := tiny_source("V", []),
            trainer(
                TrainHFFineTune, a, validation_input=v.output["text"], validation_output=v.output["text"]
            ),
        ],
    ),
    Case(
        "classifier-one-class",
        "`TrainHFClassifier` labels with one class",
        R,
        "the labels hold 1 class (['pos']); a classifier needs at least 2",
        "no _model; nothing trained",
        lambda e: [
            a := tiny_source("A", ["good", "great"]),
            b := tiny_source("Labels", ["pos", "pos"]),
            trainer(TrainHFClassifier, a, b),
        ],
    ),
    Case(
        "data-file-wrong-format",
        "CSV text in a `.json` data file",
        R,
        "could not be read as JSON",
        "no finished folder",
        lambda e: [JSONDataSource("Rows", data_files=_write(e.tmp / "rows.json", "a,b\n1,2\n"))],
    ),
    Case(
        "data-file-changed",
        "a data file edited after the definitions were loaded",
        R,
        "changed after the step was declared",
        "no finished folder (the output would not match the fingerprint)",
        lambda e: [JSONDataSource("Rows", data_files=_write(e.tmp / "rows.json", '[{"a": 1}]'))],
        prepare=lambda e, steps: _write(e.tmp / "rows.json", '[{"a": 2}]'),
        upstream_first=False,
    ),
    Case(
        "deferred-fails",
        "a deferred value `colors.output['colors'][5]` on a 1-row column",
        R,
        "the deferred value Colors.output['colors'][5] failed at run time: IndexError",
        NO_FOLDER,
        lambda e: [
            c := DataSource("Colors", {"colors": ["red"]}),
            DataFromAttributedPrompt(
                "Attributed",
                args={
                    "llm": e.llm(),
                    "n": 1,
                    "instruction": "Write about {color}.",
                    "attributes": {"color": [c.output["colors"][5]]},
                },
            ),
        ],
    ),
    Case(
        "api-key-missing",
        "`OpenAI('gpt-4o-mini')` with no `OPENAI_API_KEY`",
        R,
        "no API key. Fix: set the OPENAI_API_KEY environment variable",
        NO_FOLDER,
        lambda e: [s := e.source(), e.process(s, llm=OpenAI("gpt-4o-mini"))],
        prepare=lambda e, steps: _unset_key(e),
    ),
    Case(
        "base-url-unreachable",
        "`base_url` where nothing listens",
        R,
        "at http://127.0.0.1:9/v1 cannot be reached: the connection was refused",
        "fails at once, never retried (a wrong base_url); no finished folder",
        lambda e: [
            s := e.source(),
            e.process(
                s, llm=OpenAI("m", base_url="http://127.0.0.1:9/v1", max_retries=1, retry_initial_delay=0.01)
            ),
        ],
        check=lambda e, steps: None,
    ),
    *[api_status(status) for status in (400, 401, 403, 404, 422)],
    Case(
        "adapter-for-another-base",
        "an adapter trained on another base model",
        R,
        "does not fit this model; it was made for",
        "no finished folder",
        adapter_for_another_base,
        fixtures=("tiny_llama",),
    ),
    Case(
        "chat-template-fails",
        "a tokenizer chat template that raises on a system prompt",
        R,
        "the tokenizer's chat template failed to render",
        "no finished folder; 0 generations",
        failing_chat_template,
        fixtures=("tiny_llama",),
    ),
    Case(
        "max-new-tokens-over-model-context",
        "`max_new_tokens=1000` on a 256-token local model",
        R,
        "more than the model's context length of 256 tokens",
        "no finished folder; 0 generations",
        tiny_over_context,
        fixtures=("tiny_llama",),
    ),
    Case(
        "cache-not-a-database",
        "a model cache file that is not SQLite",
        R,
        "cannot be used: file is not a database",
        "no finished folder; 0 calls; the cache file byte for byte as it was",
        second_process,
        prepare=fill_then(not_a_database),
        check=check_cache_unchanged,
    ),
    Case(
        "cache-truncated",
        "a model cache file cut in half",
        R,
        "cannot be used: database disk image is malformed",
        "no finished folder; 0 calls; the cache file byte for byte as it was",
        second_process,
        prepare=fill_then(truncated),
        check=check_cache_unchanged,
    ),
    Case(
        "cache-garbage",
        "a model cache file whose first pages are garbage",
        R,
        "cannot be used",
        "no finished folder; 0 calls; the cache file byte for byte as it was",
        second_process,
        prepare=fill_then(garbage_pages),
        check=check_cache_unchanged,
    ),
    Case(
        "cache-newer-schema",
        "a model cache file written by a newer schema",
        R,
        "was written by a newer dreamer_dagster (cache schema 99",
        "no finished folder; 0 calls; the cache file byte for byte as it was",
        second_process,
        prepare=fill_then(newer_schema),
        check=check_cache_unchanged,
    ),
    Case(
        "output-read-only",
        "an output folder on a read-only filesystem",
        R,
        "is on a read-only filesystem",
        "nothing written",
        read_only_output,
        upstream_first=False,
    ),
    Case(
        "output-locked",
        "an output folder locked with `chattr +i`",
        R,
        "is locked or not writable by this user",
        "the finished steps untouched; nothing written",
        locked_output,
        upstream_first=False,
        check=lambda e, steps: None,
    ),
    Case(
        "disk-full",
        "a 2 MB output filesystem and a 4 MB step",
        R,
        "is full",
        "no finished folder; the work folder removed (its space freed)",
        full_disk,
        upstream_first=False,
        check=check_full_disk,
    ),
    Case(
        "output-folder-changed",
        "the output folder changed between two runs (only the downstream step run)",
        R,
        "has no finished output",
        "the old folder untouched; no finished folder in the new one",
        other_output_folder,
        upstream_first=False,
    ),
    Case(
        "step-json-edited",
        "a hand-edited step.json (data_version removed)",
        OK,
        "has no data_version (hand-edited?)",
        "runs again from the cache: 0 calls; finished again",
        lambda e: [s := e.source(), e.process(s)],
        prepare=finished_then(drop_data_version),
        upstream_first=False,
        check=check_finished_again,
    ),
    Case(
        "step-json-truncated",
        "a truncated step.json",
        OK,
        "does not parse as a JSON object",
        "runs again from the cache: 0 calls; finished again",
        lambda e: [s := e.source(), e.process(s)],
        prepare=finished_then(truncate_step_json),
        upstream_first=False,
        check=check_finished_again,
    ),
    Case(
        "dataset-deleted",
        "a `_dataset` folder deleted by hand",
        OK,
        "_dataset is missing (deleted by hand?)",
        "runs again from the cache: 0 calls; finished again",
        lambda e: [s := e.source(), e.process(s)],
        prepare=finished_then(delete_dataset),
        upstream_first=False,
        check=check_finished_again,
    ),
    Case(
        "cache-deleted-mid-run",
        "the model cache file deleted while the step runs",
        OK,
        "was deleted or replaced while a run was using it",
        "finishes; the file is made again and keeps every later answer (a re-run pays only for "
        "those lost with it)",
        delete_cache_mid_run,
        calls=10,
        check=check_cache_made_again,
    ),
    Case(
        "step-renamed",
        "a step renamed after it ran",
        OK,
        "",
        "new folder made from the cache (0 calls); the old one left as is, reported by `dreamer verify`",
        renamed,
        upstream_first=False,
        check=check_renamed,
    ),
]


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def _pipeline_with_two_inputs(env: Env) -> None:
    dreamer_definitions([env.source(), env.source(prefix="other")], output_folder=str(env.output))


def _file_as_output_folder(env: Env) -> None:
    path = env.tmp / "output.txt"
    path.write_text("not a folder")
    dreamer_definitions([env.source()], output_folder=str(path))


def _train_twice(env: Env) -> None:
    data = env.source()
    tuned = trainer(TrainHFFineTune, data)
    tuned.train(train_input=data.output["text"], train_output=data.output["text"])


def _unset_key(env: Env) -> None:
    saved = os.environ.pop("OPENAI_API_KEY", None)
    if saved is not None:
        env.cleanups.append(lambda: os.environ.__setitem__("OPENAI_API_KEY", saved))


# -- running the table ------------------------------------------------------------------------


def _chain(error: BaseException | None):
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or getattr(error, "user_exception", None) or error.__context__


def _params() -> list:
    params = []
    for case in CASES:
        marks = [pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else []
        params.append(pytest.param(case, id=case.id, marks=marks))
    return params


@pytest.mark.parametrize("case", _params())
def test_bad_input(case: Case, tmp_path: Path, request: pytest.FixtureRequest):
    with FakeOpenAIServer() as server:
        env = Env(tmp_path, request, server)
        for name in case.fixtures:
            env.notes[name] = request.getfixturevalue(name)
        try:
            _run_case(case, env, request)
        finally:
            for cleanup in reversed(env.cleanups):
                cleanup()


def _run_case(case: Case, env: Env, request: pytest.FixtureRequest) -> None:
    if case.where == D:
        with pytest.raises(Exception) as failure:
            case.build(env)
        assert case.message in str(failure.value)
        assert not env.output.exists()
        return
    steps = case.build(env)
    failing = steps[-1]
    if case.upstream_first and len(steps) > 1:
        env.materialize(steps[:-1])
    if case.prepare is not None:
        case.prepare(env, steps)
    env.server.reset()
    if case.arm is not None:
        case.arm(env)
    rows_before = env.cache_rows() if env.output.exists() else 0
    output = env.notes.get("other")
    if case.where == OK:
        caplog = request.getfixturevalue("caplog")
        result = env.materialize(steps, only=[failing], output=output)
        assert result.success
        text = "\n".join(
            str(entry.user_message) for entry in env.instance.all_logs(result.run_id) if entry.user_message
        )
        text += "\n" + caplog.text
        assert case.message in text
    else:
        with pytest.raises(Exception) as failure:
            env.materialize(steps, only=[failing], output=output)
        env.notes["error"] = failure.value
        text = "\n".join(f"{type(e).__name__}: {e}" for e in _chain(failure.value))
        assert case.message in text, text[-3000:]
        assert not env.finished(failing, output), "a failed step must leave no finished folder"
        check_no_staging(env, steps)
    if case.calls is not None:
        assert env.server.request_count == case.calls
    if env.output.exists() and case.id not in {"cache-deleted-mid-run"}:
        assert env.cache_rows() >= rows_before  # no cached answer lost
    if case.check is not None:
        case.check(env, steps)


# -- the same table in docs/errors.md ---------------------------------------------------------

BEGIN, END = "<!-- bad-input table: begin -->", "<!-- bad-input table: end -->"


def markdown_table() -> str:
    lines = [
        "| # | input | where it fails | the message contains | state afterwards |",
        "|---|---|---|---|---|",
    ]
    for number, case in enumerate(CASES, start=1):
        note = f" *(pending: {case.xfail})*" if case.xfail else ""
        message = case.message.replace("|", "\\|") or "—"
        lines.append(f"| {number} | {case.input}{note} | {case.where} | `{message}` | {case.state} |")
    return "\n".join(lines)


def test_docs_table_matches():
    text = DOCS.read_text()
    table = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert table == markdown_table(), "docs/errors.md is out of date: python -m tests.test_bad_inputs"
    assert len(CASES) >= 40


if __name__ == "__main__":
    text = DOCS.read_text() if DOCS.exists() else f"{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    DOCS.write_text(f"{head}{BEGIN}\n{markdown_table()}\n{END}{tail}")
    print(f"wrote {len(CASES)} cases to {DOCS}", file=sys.stderr)
