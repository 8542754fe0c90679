"""The docs' runnable blocks (docs/**/*.md), run as a reader would run them.

A fenced ``python`` block right after a line ``<!-- runnable -->`` is runnable. For each
page that has some (one test a page), its blocks run in the page's order in one fresh
temporary folder: block N is written to ``block_N.py`` and run as ``python block_N.py``
(this venv's python, its ``bin/`` first on ``PATH`` so ``dagster`` / ``dreamer`` resolve),
with ``OPENAI_API_KEY=sk-docs``, ``OPENAI_BASE_URL`` pointing at a loopback
:class:`~dreamer_dagster.testing.FakeOpenAIServer` (reset before each page),
``DAGSTER_HOME=<folder>/dagster_home``, ``HF_HUB_OFFLINE=1`` and
``TOKENIZERS_PARALLELISM=false``. A block passes when it exits 0 within 120 s; a later
block may use the files an earlier one wrote (a ``definitions.py``). A failure names the
page, the block's number and first line, and shows the tail of its stdout and stderr.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from dreamer_dagster.testing import FakeOpenAIServer

DOCS = Path(__file__).resolve().parents[1] / "docs"
MARKER = "<!-- runnable -->"
TIMEOUT_S = 120
TAIL = 3000


@dataclass(frozen=True)
class Block:
    page: str  # relative to docs/
    number: int  # 1-based, in the page's order
    line: int  # the fence's line in the page (1-based)
    code: str


def runnable_blocks(text: str, page: str) -> list[Block]:
    """The runnable blocks of one page: each ```python fence right after the marker line
    (indented fences, inside an admonition or a list, are taken with their indentation removed)."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        if lines[i].strip() == MARKER and i + 1 < len(lines):
            fence = lines[i + 1]
            indent = len(fence) - len(fence.lstrip())
            opener = fence.strip()
            if not opener.startswith("```python"):
                raise ValueError(
                    f"docs/{page}:{i + 1}: {MARKER} must be followed by a ```python fence, got {fence!r}"
                )
            body: list[str] = []
            j = i + 2
            while j < len(lines) and lines[j].strip() != "```":
                body.append(lines[j][indent:])
                j += 1
            if j == len(lines):
                raise ValueError(f"docs/{page}:{i + 2}: the runnable block is never closed")
            blocks.append(Block(page, len(blocks) + 1, i + 2, "\n".join(body) + "\n"))
            i = j
        i += 1
    return blocks


def pages_with_blocks() -> dict[str, list[Block]]:
    pages = {}
    for path in sorted(DOCS.rglob("*.md")):
        page = path.relative_to(DOCS).as_posix()
        blocks = runnable_blocks(path.read_text(encoding="utf-8"), page)
        if blocks:
            pages[page] = blocks
    return pages


PAGES = pages_with_blocks()


@pytest.fixture(scope="module")
def server():
    with FakeOpenAIServer() as server:
        yield server


def block_env(folder: Path, server: FakeOpenAIServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DREAMER_", "OPENAI_", "DAGSTER_"))}
    bin_dir = str(Path(sys.executable).parent)
    env.update(
        PATH=bin_dir + os.pathsep + env.get("PATH", ""),
        OPENAI_API_KEY="sk-docs",
        OPENAI_BASE_URL=server.base_url,
        DAGSTER_HOME=str(folder / "dagster_home"),
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
    )
    return env


def tail(text: str) -> str:
    return text if len(text) <= TAIL else "..." + text[-TAIL:]


def run_block(block: Block, folder: Path, env: dict[str, str]) -> str | None:
    """Run one block; None when it passed, else the failure report."""
    script = folder / f"block_{block.number}.py"
    script.write_text(block.code, encoding="utf-8")
    first = block.code.strip().splitlines()[0] if block.code.strip() else "(empty)"
    where = f"docs/{block.page}, runnable block {block.number} (line {block.line}: {first!r})"
    try:
        done = subprocess.run(
            [sys.executable, script.name],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
        return f"{where} ran past {TIMEOUT_S} s.\n--- stdout ---\n{tail(out)}\n--- stderr ---\n{tail(err)}"
    if done.returncode != 0:
        return (
            f"{where} exited {done.returncode}.\n--- stdout ---\n{tail(done.stdout)}"
            f"\n--- stderr ---\n{tail(done.stderr)}"
        )
    return None


def test_the_runner_finds_the_get_started_blocks():
    """The marker is found where the docs use it (a parser that finds nothing would pass everything)."""
    assert "get-started/first-pipeline.md" in PAGES and "get-started/running.md" in PAGES, sorted(PAGES)


def test_a_marker_without_a_python_fence_is_an_error():
    with pytest.raises(ValueError, match="must be followed by a ```python fence"):
        runnable_blocks(f"{MARKER}\n```bash\nls\n```\n", "x.md")
    blocks = runnable_blocks(f"text\n{MARKER}\n```python\nprint(1)\n```\n\n```python\nnot run\n```\n", "x.md")
    assert [b.code for b in blocks] == ["print(1)\n"]


FAKE_PACKAGE = '''
__all__ = ["Bare", "Told", "bare", "told", "VERSION"]
VERSION = "1"


class Base:
    """Documented base."""


class Bare(Base):
    pass


class Told(Base):
    """Says what it does."""


def bare():
    pass


def told():
    """Says what it does."""
'''


def test_the_docstring_hook_names_each_public_item_without_one(tmp_path, monkeypatch):
    """docs/hooks/public_docstrings.py, whose warnings fail ``mkdocs build --strict``: a class
    does not inherit its base's docstring, a constant needs none."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "public_docstrings", DOCS / "hooks" / "public_docstrings.py"
    )
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    (tmp_path / "docs_hook_fake").mkdir()
    (tmp_path / "docs_hook_fake" / "__init__.py").write_text(FAKE_PACKAGE)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert hook.missing_docstrings(("docs_hook_fake",)) == ["docs_hook_fake.Bare", "docs_hook_fake.bare"]
    assert hook.missing_docstrings() == [], "a public name of dreamer_dagster has no docstring"
    # ...and each public package has its reference page.
    assert hook.packages_without_a_page(DOCS) == []
    (tmp_path / "reference" / "api").mkdir(parents=True)
    (tmp_path / "reference" / "api" / "a.md").write_text("# A\n\n::: docs_hook_fake\n    options: {}\n")
    assert hook.packages_without_a_page(tmp_path, ("docs_hook_fake", "other")) == ["other"]


def test_docstrings_read_as_markdown_on_the_site():
    """docs/hooks/rst_markup.py: reST roles and literals become Markdown code spans."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("rst_markup", DOCS / "hooks" / "rst_markup.py")
    markup = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(markup)
    text = "Uses :class:`~dreamer_dagster.llms.OpenAI` and :func:`stale_schedule` on ``x``.\n\nAn example::\n"
    assert markup.to_markdown(text) == "Uses `OpenAI` and `stale_schedule` on `x`.\n\nAn example:\n"


def test_the_readme_is_short_and_its_links_reach_the_docs():
    """README.md is what a newcomer reads first (at most 200 lines); its relative links
    (into docs/, which mkdocs does not check) open files that exist, on GitHub too."""
    readme = DOCS.parent / "README.md"
    text = readme.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    targets = re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", text)
    local = [t for t in targets if "://" not in t]
    assert any(t.startswith("docs/") for t in local)
    assert [t for t in local if not (readme.parent / t).exists()] == []


@pytest.mark.parametrize("page", sorted(PAGES))
def test_runnable_blocks(page: str, server: FakeOpenAIServer, tmp_path: Path):
    server.reset()
    (tmp_path / "dagster_home").mkdir()
    env = block_env(tmp_path, server)
    for block in PAGES[page]:
        failure = run_block(block, tmp_path, env)
        if failure is not None:
            pytest.fail(failure, pytrace=False)
