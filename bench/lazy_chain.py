"""A lazy ``map`` -> ``filter`` -> ``Prompt`` chain against the same chain with ``lazy=False``.

A data source of N distinct ~200-byte texts (materialized first, in a process of its
own), then ``map`` (adds a suffix), ``filter`` (keeps every other row) and a ``Prompt``
on ``FakeLLM`` (offline answers through the SQLite model cache), materialized through
Dagster with the real IO manager. Each variant runs in a fresh process on an output
folder of its own, after a small warm-up chain (imports, SQLite, the Arrow writer), and
reports its peak RSS. Printed: whether the lazy chain wrote any intermediate dataset
(its map and filter folders must hold a recipe only), the rows the prompt step got
(same in both), and the peak-memory ratio lazy / eager: target <= 1.10. Exits non-zero
when a target is missed.

    python bench/lazy_chain.py [--rows 200000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_RATIO = 1.10
WARM_UP_ROWS = 200


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def declare(rows: int, lazy: bool) -> tuple:
    """The source, map, filter and Prompt steps of the chain."""
    from dreamer_dagster.steps import DataSource, Prompt
    from dreamer_dagster.testing import FakeLLM

    def texts():
        import hashlib

        for i in range(rows):
            yield {"text": f"Text {i}: {hashlib.sha256(str(i).encode()).hexdigest() * 3}"}

    source = DataSource(f"Texts {rows}", data=texts, columns=["text"], progress_interval=None)
    mapped = source.map(
        lambda row: {"text": row["text"] + " (mapped)"}, lazy=lazy, auto_progress=False, name=f"Mapped {rows}"
    )
    kept = mapped.filter(
        lambda row: int(row["text"].split(" ")[1].rstrip(":")) % 2 == 0,
        lazy=lazy,
        auto_progress=False,
        name=f"Kept {rows}",
    )
    prompt = Prompt(
        f"Answers {rows}",
        inputs={"prompts": kept.output["text"]},
        args={"llm": FakeLLM(), "max_new_tokens": 8},
        progress_interval=None,
    )
    return source, mapped, kept, prompt


def child(mode: str, lazy: bool, rows: int, output: str) -> None:
    """One measurement (or the source's preparation) in this fresh process; prints JSON."""
    import dagster as dg

    from dreamer_dagster import dreamer_definitions

    instance = dg.DagsterInstance.ephemeral()
    source, mapped, kept, prompt = declare(rows, lazy)
    defs = dreamer_definitions([prompt], output_folder=output)
    if mode == "prepare":
        assert dg.materialize([source.asset], resources=defs.resources, instance=instance).success
        return
    warm = declare(WARM_UP_ROWS, lazy)
    warm_defs = dreamer_definitions([warm[-1]], output_folder=output)
    assert dg.materialize([s.asset for s in warm], resources=warm_defs.resources, instance=instance).success
    floor = peak_rss_mb()
    started = time.perf_counter()
    result = dg.materialize(
        [source.asset, mapped.asset, kept.asset, prompt.asset],
        selection=[mapped.asset_key, kept.asset_key, prompt.asset_key],
        resources=defs.resources,
        instance=instance,
    )
    elapsed = time.perf_counter() - started
    assert result.success
    [event] = result.asset_materializations_for_node(prompt.key)
    written = {
        step.name: (Path(output) / step.folder / "_dataset").is_dir() for step in (mapped, kept, prompt)
    }
    print(
        json.dumps(
            {
                "rows": event.metadata["dagster/row_count"].value,
                "floor_mb": floor,
                "peak_mb": peak_rss_mb(),
                "seconds": elapsed,
                "datasets_written": written,
            }
        )
    )


def run_child(mode: str, lazy: bool, rows: int, output: str) -> dict | None:
    command = [sys.executable, __file__, "--child", mode, str(int(lazy)), str(rows), output]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stderr[-4000:])
        raise SystemExit(f"the {mode} run (lazy={lazy}) for {rows} rows failed")
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, lazy, rows, output = args.child
        child(mode, lazy == "1", int(rows), output)
        return

    measured = {}
    with tempfile.TemporaryDirectory() as folder:
        for lazy in (True, False):
            output = str(Path(folder) / f"output-{'lazy' if lazy else 'eager'}")
            run_child("prepare", lazy, args.rows, output)
            measured[lazy] = run_child("measure", lazy, args.rows, output)
    for lazy in (True, False):
        m = measured[lazy]
        print(
            f"lazy={lazy!s:<5} {args.rows:,} rows -> {m['rows']:,} prompts: {m['seconds']:.1f} s; peak RSS "
            f"{m['peak_mb']:.0f} MB (after warm-up {m['floor_mb']:.0f} MB); _dataset written: "
            + ", ".join(f"{name}: {'yes' if yes else 'no'}" for name, yes in m["datasets_written"].items())
        )
    lazy, eager = measured[True], measured[False]
    intermediate = [name for name, yes in list(lazy["datasets_written"].items())[:2] if yes]
    same_rows = lazy["rows"] == eager["rows"]
    ratio = lazy["peak_mb"] / eager["peak_mb"]
    print(
        "intermediate datasets written by the lazy chain: "
        + (", ".join(intermediate) if intermediate else "none")
    )
    print(f"prompt rows equal in both chains: {same_rows}")
    print(
        f"peak RSS ratio lazy / eager: {ratio:.3f} (target <= {TARGET_RATIO}) "
        f"{'OK' if ratio <= TARGET_RATIO else 'ABOVE TARGET'}"
    )
    if intermediate or not same_rows or ratio > TARGET_RATIO:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
