"""The compatibility run: DataDreamer 0.46's own step tests against this project.

``run_suite()`` builds a throwaway tree (``datadreamer/`` = the alias layer, with the
wheel's ``tests/`` inside it and ``fixtures.py`` as their conftest), runs the eight files
in ONE pytest process (script mode: ``DREAMER_RUN=1``), and reads its junit XML into
``Figures``: per file, passed / applicable (not-applicable tests are skipped).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["FILES", "RECORDED", "Figures", "read_recorded", "run_suite", "write_recorded"]

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
RECORDED = HERE / "recorded.json"
FILES = (
    "steps/test_step_operations.py",
    "steps/prompt/test_prompt.py",
    "steps/test_data_sources.py",
    "steps/test_step_export.py",
    "steps/test_step_output.py",
    "test_datadreamer.py",
    "steps/test_step.py",
    "steps/tasks/test_tasks.py",
)
_INI = "[pytest]\nfilterwarnings =\n    ignore::DeprecationWarning\n"


@dataclass
class Figures:
    """Per file: ``[passed, applicable, not_applicable]`` (a skipped test is not applicable);
    ``failed``: failing node id -> its message."""

    per_file: dict[str, list[int]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> int:
        return sum(counts[0] for counts in self.per_file.values())

    @property
    def applicable(self) -> int:
        return sum(counts[1] for counts in self.per_file.values())

    def as_json(self) -> dict:
        return {"passed": self.passed, "applicable": self.applicable, "per_file": self.per_file}


def _build_tree(root: Path, source: Path) -> None:
    shutil.copytree(HERE / "alias" / "datadreamer", root / "datadreamer")
    tests = root / "datadreamer" / "tests"
    shutil.copytree(
        source / "datadreamer" / "tests", tests, ignore=shutil.ignore_patterns("conftest.py", "__pycache__")
    )
    shutil.copy(HERE / "fixtures.py", tests / "conftest.py")
    (root / "pytest.ini").write_text(_INI)


def _file_of(classname: str) -> str:
    parts = classname.split(".")[2:]  # datadreamer.tests.steps.test_x.TestClass
    module = [part for part in parts if not part[:1].isupper()]
    return "/".join(module) + ".py"


def _read_junit(path: Path) -> Figures:
    figures = Figures(per_file={name: [0, 0, 0] for name in FILES})
    for case in ET.parse(path).getroot().iter("testcase"):
        name = _file_of(case.get("classname", ""))
        counts = figures.per_file.setdefault(name, [0, 0, 0])
        skipped = case.find("skipped")
        if skipped is not None:  # not_applicable.py's skips, and DataDreamer's own (interactive)
            counts[2] += 1
            continue
        counts[1] += 1
        problems = [case.find(tag) for tag in ("failure", "error")]
        problem = next((element for element in problems if element is not None), None)
        if problem is None:
            counts[0] += 1
        else:
            node = f"{name}::{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
            figures.failed[node] = (problem.get("message") or "").strip()[:300]
    return figures


def _scratch() -> str | None:
    """/dev/shm where it is a writable tmpfs with room (SQLite's syncs cost nothing there)."""
    shm = Path("/dev/shm")
    try:
        if os.access(shm, os.W_OK) and shutil.disk_usage(shm).free >= 2 * 2**30:
            return str(shm)
    except OSError:
        pass
    return None


def run_suite(
    source: Path,
    timeout_s: int = 1500,
    per_test_s: int = 60,
    files: tuple[str, ...] = FILES,
    pytest_args: tuple[str, ...] = (),
) -> tuple[Figures, str]:
    """Run the eight files (or ``files``) in one pytest process; the figures and pytest's
    output tail. ``pytest_args`` (``-k EXPR``...) narrow a run while working on a cause."""
    root = Path(tempfile.mkdtemp(prefix="dreamer-datadreamer-compat-", dir=_scratch()))
    try:
        _build_tree(root, source)
        home = root / "dagster_home"
        home.mkdir()
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(root), str(REPO)]),
            "DREAMER_RUN": "1",
            "DAGSTER_HOME": str(home),
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "DREAMER_COMPAT_TIMEOUT": str(per_test_s),
        }
        xml = root / "junit.xml"
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-c",
            str(root / "pytest.ini"),
        ]
        command += [
            "--continue-on-collection-errors",
            "--rootdir",
            str(root),
            "--junitxml",
            str(xml),
            "-o",
            "junit_family=xunit2",
        ]
        command += list(pytest_args)
        command += [str(root / "datadreamer" / "tests" / name) for name in files]
        done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=timeout_s)
        output = (done.stdout + done.stderr)[-4000:]
        if not xml.exists():
            raise RuntimeError(
                f"the compatibility run wrote no junit XML (exit {done.returncode}):\n{output}"
            )
        return _read_junit(xml), output
    finally:
        shutil.rmtree(root, ignore_errors=True)


def read_recorded() -> dict:
    """The figure recorded in the repository (``recorded.json``)."""
    return json.loads(RECORDED.read_text())


def write_recorded(figures: Figures) -> None:
    RECORDED.write_text(json.dumps({**figures.as_json(), "failed": sorted(figures.failed)}, indent=1) + "\n")


def main(argv: list[str]) -> None:
    """``python -m tests.datadreamer_compat.run [FILE...] [-- PYTEST_ARGS...]``: run some of
    the files (default: all eight) and print the figure and each failure; records nothing."""
    from tests.support.datadreamer_wheel import datadreamer_source

    cut = argv.index("--") if "--" in argv else len(argv)
    files, extra = argv[:cut], argv[cut + 1 :]
    found, tail = run_suite(datadreamer_source(), files=tuple(files) or FILES, pytest_args=tuple(extra))
    for node, message in sorted(found.failed.items()):
        print(f"FAILED {node}: {message[:200]}")
    for name, counts in found.per_file.items():
        if counts[1] or counts[2]:
            print(f"{name}: {counts[0]} / {counts[1]} passed, {counts[2]} not applicable")
    print(f"all: {found.passed} / {found.applicable}")


if __name__ == "__main__":
    main(sys.argv[1:])
