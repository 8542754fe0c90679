"""``make bench``: every benchmark script in this folder, one after another (but
``peers.py``, which ``make bench-peers`` runs).

Each runs in its own process and prints its figures against the floor it
measured in the same run; this prints how long each took, a summary, and
exits non-zero when any script missed its target (or failed).

    python bench/_run_all.py [names...]
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: Run by their own make target: ``peers.py`` builds side environments (``make bench-peers``).
APART = {"peers.py"}


def main() -> None:
    wanted = set(sys.argv[1:])
    scripts = sorted(p for p in HERE.glob("*.py") if not p.name.startswith("_") and p.name not in APART)
    scripts = [p for p in scripts if not wanted or p.stem in wanted]
    results = []
    started = time.perf_counter()
    for script in scripts:
        print(f"== {script.name}", flush=True)
        begun = time.perf_counter()
        code = subprocess.run([sys.executable, str(script)], cwd=HERE.parent).returncode
        results.append((script.name, code, time.perf_counter() - begun))
        verdict = "met its targets" if code == 0 else f"MISSED (exit {code})"
        print(f"-- {script.name}: {verdict}", flush=True)
    total = time.perf_counter() - started
    print("\n== summary")
    for name, code, seconds in results:
        print(f"{name:<24} {'ok    ' if code == 0 else 'MISSED'} {seconds:7.0f} s")
    print(f"{'total':<24} {'':6} {total:7.0f} s (target < 900 s)")
    if any(code for _, code, _ in results):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
