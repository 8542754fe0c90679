"""``dreamer verify -f definitions.py``: an output folder checked against its declarations,
with no model run. Each kind of drift is made by hand on a real materialized folder."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import datasets

from dreamer_dagster.cli import load_definitions, main
from tests.support.openai_server import FakeOpenAIServer
from tests.support.waiting import HANG_S

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]

DEFINITIONS = textwrap.dedent(
    """
    from dreamer_dagster import Pipeline
    from dreamer_dagster.llms import OpenAI
    from dreamer_dagster.steps import DataSource, ProcessWithPrompt

    llm = OpenAI("fake-chat", base_url={base_url!r})

    with Pipeline({output!r}) as pipeline:
        source = DataSource("Inputs", {{"text": ["one", "two", "three"]}})
        upper = source.map(lambda row: {{"text": row["text"].upper()}}, name="Upper", lazy=False)
        processed = ProcessWithPrompt(
            "{processed}",
            inputs={{"inputs": upper.output["text"]}},
            args={{"llm": llm, "instruction": {instruction!r}}},
        )

    defs = pipeline.definitions()
    """
)


def write(
    folder: Path, server: FakeOpenAIServer, instruction: str = "Shorten it.", processed: str = "Processed"
):
    path = folder / "definitions.py"
    path.write_text(
        DEFINITIONS.format(
            base_url=server.base_url,
            output=str(folder / "output"),
            instruction=instruction,
            processed=processed,
        )
    )
    return path


def materialize_file(path: Path, instance: dg.DagsterInstance) -> None:
    defs = load_definitions(path)
    dg.materialize(list(defs.assets), instance=instance, resources=dict(defs.resources))


def verify(path: Path, capsys) -> tuple[int, str]:
    code = main(["verify", "-f", str(path)])
    return code, capsys.readouterr().out


def line_of(out: str, key: str) -> str:
    [line] = [line for line in out.splitlines() if f" {key} " in f" {line} "]
    return line


def test_verify_passes_a_fresh_folder_then_reports_each_drift(tmp_path, instance, capsys):
    with FakeOpenAIServer() as server:
        path = write(tmp_path, server)
        code, out = verify(path, capsys)
        assert code == 0, out  # nothing materialized: reported, not drift
        assert line_of(out, "processed").startswith("MISSING")

        materialize_file(path, instance)
        calls = server.request_count
        code, out = verify(path, capsys)
        assert code == 0, out
        assert [line.split()[0] for line in out.splitlines()[1:4]] == ["OK", "OK", "OK"]
        assert "3 rows" in line_of(out, "processed")
        assert server.request_count == calls  # no model call

        output = tmp_path / "output"
        # 1. a _dataset whose rows were changed by hand
        edited = datasets.Dataset.from_dict({"text": ["ONE", "TWO", "THREE!"]})
        shutil.rmtree(output / "upper" / "_dataset")
        edited.save_to_disk(str(output / "upper" / "_dataset"))
        # 2. a data card that lost an upstream step
        record = json.loads((output / "processed" / "step.json").read_text())
        del record["data_card"]["Upper"]
        (output / "processed" / "step.json").write_text(json.dumps(record))
        code, out = verify(path, capsys)
        assert code == 1
        assert line_of(out, "upper").startswith("DRIFT") and "_dataset changed after it was written" in out
        assert line_of(out, "processed").startswith("DRIFT")
        assert "does not list the upstream steps ['Upper']" in out
        assert line_of(out, "inputs").startswith("OK")

        # 3. a _dataset deleted by hand
        shutil.rmtree(output / "inputs" / "_dataset")
        code, out = verify(path, capsys)
        assert code == 1 and "inputs/_dataset is missing" in line_of(out, "inputs")

    # 4. a changed declaration (and a renamed step: its old folder is left behind), by the CLI
    with FakeOpenAIServer() as server:
        path = write(tmp_path, server, instruction="Lengthen it.", processed="Processed Again")
        result = subprocess.run(
            [str(BIN / "dreamer"), "verify", "-f", str(path)],
            capture_output=True,
            text=True,
            timeout=HANG_S,
            env={"PYTHONPATH": str(REPO), "PATH": str(BIN)},
        )
        assert result.returncode == 1, result.stdout + result.stderr
        assert line_of(result.stdout, "processed_again").startswith("MISSING")
        assert line_of(result.stdout, "processed").startswith("UNDECLARED")
        assert "drift found" in result.stdout

        path = write(tmp_path, server, instruction="Lengthen it.")
        code, out = verify(path, capsys)
        assert code == 1
        assert "declared (the declaration changed since it ran: materialize it)" in line_of(out, "processed")


def test_verify_names_a_missing_file_and_exits_2(tmp_path, capsys):
    assert main(["verify", "-f", str(tmp_path / "nope.py")]) == 2
    assert "No definitions file" in capsys.readouterr().err
