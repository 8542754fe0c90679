"""``make mutants``: mutation testing (mutmut) of the modules that decide what is
trusted on disk, what is cached and what is paid for.

Each module runs in its own private copy under ``.mutants/<module>/`` (the
package, the tests and a ``pyproject.toml`` with that module's ``[tool.mutmut]``
section), so mutmut never writes into the working tree and each module gets its
own focused test selection; mutmut then runs, for each mutant, only the tests of
that selection that call the mutated function. One worker (``--max-children 1``).

    python scripts/mutants.py [module...] [--resume | --survivors]

Without an option every module starts afresh. ``--resume`` keeps earlier results
(mutants of unchanged functions are not rerun); ``--survivors`` reruns only the
mutants that survived the last run, against the tests as they are now (after
adding a test: has it killed them?), and the mutants of functions changed since.
Prints the kill rate per module and in total, writes ``.mutants/results.json`` and each module's surviving mutants
(with their diffs) to ``.mutants/<module>/survivors.txt``. Survivors judged
equivalent are listed, with the reason, in ``docs/mutants.md``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["MODULES", "main", "run_module"]

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / ".mutants"

#: module -> (its file, the tests that kill its mutants, fastest first).
MODULES: dict[str, tuple[str, tuple[str, ...]]] = {
    "checks": ("dreamer_dagster/checks.py", ("tests/test_mutants_checks.py", "tests/test_checks.py")),
    "cost": ("dreamer_dagster/cost.py", ("tests/test_mutants_cost.py", "tests/test_cost_and_budget.py")),
    "pricing": (
        "dreamer_dagster/llms/pricing.py",
        ("tests/test_mutants_cost.py", "tests/test_cost_and_budget.py"),
    ),
    "fingerprint": (
        "dreamer_dagster/fingerprint.py",
        (
            "tests/test_mutants_fingerprint.py",
            "tests/test_fingerprint.py",
            "tests/test_fingerprint_properties.py",
            "tests/test_file_hash_cache.py",
        ),
    ),
    "cache": ("dreamer_dagster/cache.py", ("tests/test_mutants_cache.py", "tests/test_cache.py")),
    "output_folder": (
        "dreamer_dagster/output_folder.py",
        (
            "tests/test_mutants_output_folder.py",
            "tests/test_mutants_step_reuse.py",
            "tests/test_trust_integrity.py",
        ),
    ),
    # The reuse / back-up / restore rules, split out of output_folder.py.
    "step_reuse": (
        "dreamer_dagster/step_reuse.py",
        (
            "tests/test_mutants_step_reuse.py",
            "tests/test_mutants_output_folder.py",
            "tests/test_trust_integrity.py",
        ),
    ),
    "step_lock": ("dreamer_dagster/step_lock.py", ("tests/test_mutants_step_lock.py",)),
}

#: Killed: a test failed (1), pytest broke (3), or the mutant ran out of time.
_KILLED = {"killed", "timeout"}

#: The work copy's root conftest: mutmut runs a mutant's tests with ``-x`` in the order it
#: lists them; the fastest first (as timed in its stats run) lets a killed mutant die early.
_CONFTEST = '''"""Written by scripts/mutants.py (make mutants): fastest tests first."""


def pytest_collection_modifyitems(config, items):
    try:
        from mutmut.state import state
    except ImportError:
        return
    durations = state().duration_by_test
    items.sort(key=lambda item: ("test_mutants_" not in item.nodeid, durations.get(item.nodeid, 0.0)))
'''


def _status(exit_code: int | None) -> str:
    from mutmut.stats import status_by_exit_code

    return status_by_exit_code[exit_code]


def _prepare(name: str, mode: str) -> Path:
    """The module's private copy: package, tests, and pyproject.toml with its mutmut section.

    ``resume`` / ``survivors`` copy the package and the tests again over the last copy: tests
    written since then may import modules the old copy lacks (output_folder.py split into
    layout.py, step_reuse.py...), and with the old package the clean run fails before any
    mutant runs. mutmut regenerates the mutated file only if it changed (by mtime; copy2
    keeps it), so the survivors keep their names."""
    path, tests = MODULES[name]
    work = WORK / name
    if mode == "fresh" and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis")
    for folder in ("dreamer_dagster", "tests"):
        shutil.copytree(REPO / folder, work / folder, ignore=ignore, dirs_exist_ok=True)
    for folder in ("dreamer_dagster", "tests"):  # a module moved or removed since the last run
        _drop_stale(work / folder, REPO / folder)
        _drop_stale(work / "mutants" / folder, REPO / folder)
    if mode == "survivors":  # the tests changed: which test calls which function is measured again
        (work / "mutants" / "mutmut-stats.json").unlink(missing_ok=True)
    present = [test for test in tests if (REPO / test).exists()]
    section = "\n".join(
        [
            "",
            "[tool.mutmut]",
            'source_paths = ["dreamer_dagster"]',
            f"only_mutate = [{json.dumps(path)}]",
            f"pytest_add_cli_args_test_selection = {json.dumps(present)}",
            'pytest_add_cli_args = ["-p", "no:cacheprovider", "-W", "ignore"]',
            'also_copy = ["conftest.py"]',
            # A mutant that hangs (a lock never taken) is stopped after 5 x (its tests' time
            # + 5 s): mutmut's 15 x (time + 1 s) lets each such mutant cost minutes; the 5 s
            # keeps a slow-but-right run on a loaded machine from passing for a kill.
            "timeout_multiplier = 5.0",
            "timeout_constant = 5.0",
            "",
        ]
    )
    (work / "pyproject.toml").write_text((REPO / "pyproject.toml").read_text() + section)
    (work / "conftest.py").write_text(_CONFTEST)
    # On PYTHONPATH from the start: a folder that is missing when Python starts is never searched.
    (work / "mutants").mkdir(exist_ok=True)
    return work


def _drop_stale(copy: Path, source: Path) -> None:
    """Remove from ``copy`` the files ``source`` no longer has (``--resume`` / ``--survivors``
    copy over an earlier copy, and mutmut never copies a file that is already there): a module
    split or renamed since then would otherwise be imported in its old form."""
    if not copy.is_dir():
        return
    for file in sorted(copy.rglob("*"), reverse=True):
        relative = file.relative_to(copy)
        if "__pycache__" in relative.parts or file.suffix == ".meta" or (source / relative).exists():
            continue
        if file.is_dir():
            shutil.rmtree(file, ignore_errors=True)
        else:
            file.unlink()


def _codes(work: Path, path: str) -> dict[str, int | None]:
    meta = work / "mutants" / f"{path}.meta"
    return json.loads(meta.read_text())["exit_code_by_key"] if meta.exists() else {}


def _diffs(work: Path, path: str, statuses: dict[str, str]) -> str:
    """Each surviving mutant as ``<file>:<line> <name> (<status>)`` and its changed lines."""
    from difflib import unified_diff

    import libcst as cst
    from mutmut.mutation.diff_apply import read_mutant_function, read_original_function

    module = cst.parse_module((work / "mutants" / path).read_text())
    source = (work / path).read_text().splitlines()
    blocks = []
    for name, status in statuses.items():
        original, mutant = (
            cst.Module([read(module, name)]).code.strip()
            for read in (read_original_function, read_mutant_function)
        )
        changed = [
            line
            for line in unified_diff(original.split("\n"), mutant.split("\n"), lineterm="", n=0)
            if line[:1] in "+-" and line[:3] not in ("---", "+++")
        ]
        removed = next((line[1:].strip() for line in changed if line.startswith("-")), "")
        where = next((i + 1 for i, text in enumerate(source) if removed and text.strip() == removed), 0)
        blocks.append(f"{path}:{where} {name.rsplit('.', 1)[-1]} ({status})\n" + "\n".join(changed))
    return "\n\n".join(blocks) + "\n"


def run_module(name: str, mode: str = "fresh") -> dict:
    """Run mutmut over one module (``mode``: fresh, resume or survivors); its counts,
    survivors and seconds."""
    path, _ = MODULES[name]
    named = [key for key, code in _codes(WORK / name, path).items() if _status(code) not in _KILLED]
    if mode == "survivors" and not named:
        mode = "fresh"  # no earlier run to go on from
    work = _prepare(name, mode)
    env = dict(os.environ, PYTHONPATH=str(work / "mutants"))  # subprocesses import the mutated copy
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    started = time.perf_counter()
    with open(work / "run.log", "w") as log:
        command = [sys.executable, "-m", "mutmut", "run", "--max-children", "1"]
        code = subprocess.run(
            [*command, *(named if mode == "survivors" else [])],
            cwd=work,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        ).returncode
        if mode == "survivors" and code == 0 and None in _codes(work, path).values():
            # The module changed since the last run: mutmut made new mutants of the changed
            # functions; run those too (without names, mutmut runs only mutants not yet run).
            code = subprocess.run(command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    seconds = time.perf_counter() - started
    codes = _codes(work, path)
    counts: dict[str, int] = {}
    for exit_code in codes.values():
        status = _status(exit_code)
        counts[status] = counts.get(status, 0) + 1
    survivors = sorted(key for key, exit_code in codes.items() if _status(exit_code) not in _KILLED)
    (work / "survivors.txt").write_text(_diffs(work, path, {key: _status(codes[key]) for key in survivors}))
    killed = sum(counts.get(status, 0) for status in _KILLED)
    return {
        "module": path,
        "mutants": len(codes),
        "killed": killed,
        "counts": counts,
        "survivors": survivors,
        "seconds": round(seconds),
        "exit_code": code,
    }


def main(argv: list[str]) -> int:
    mode = "resume" if "--resume" in argv else "survivors" if "--survivors" in argv else "fresh"
    names = [arg for arg in argv if not arg.startswith("--")] or list(MODULES)
    unknown = sorted(set(names) - set(MODULES))
    if unknown:
        print(f"unknown module(s) {unknown}; choose from {sorted(MODULES)}", file=sys.stderr)
        return 2
    WORK.mkdir(exist_ok=True)
    results_file = WORK / "results.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    for name in names:
        print(f"== {name} ({MODULES[name][0]})", flush=True)
        result = run_module(name, mode)
        results[name] = result
        results_file.write_text(json.dumps(results, indent=2))
        rate = 100 * result["killed"] / result["mutants"] if result["mutants"] else 0.0
        print(
            f"-- {name}: {result['killed']}/{result['mutants']} killed ({rate:.1f} %), "
            f"{result['counts']}, {result['seconds']} s; survivors in .mutants/{name}/survivors.txt",
            flush=True,
        )
    print("\n== summary (killed includes timeouts)")
    total = killed = seconds = 0
    for name, result in results.items():
        rate = 100 * result["killed"] / result["mutants"] if result["mutants"] else 0.0
        print(
            f"{name:<14} {result['killed']:>5}/{result['mutants']:<5} {rate:5.1f} %  {result['seconds']:>6} s"
        )
        total, killed, seconds = (
            total + result["mutants"],
            killed + result["killed"],
            seconds + result["seconds"],
        )
    print(f"{'total':<14} {killed:>5}/{total:<5} {100 * killed / max(total, 1):5.1f} %  {seconds:>6} s")
    return 0 if all(r["exit_code"] == 0 for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
