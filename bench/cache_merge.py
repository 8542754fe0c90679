"""The model cache on many workers: merging 4 per-worker caches, then a fully cached re-run.

Four workers (each its own local folder, as on four machines) each write 50,000 answers
to their own SQLite cache and publish them to a shared output folder (`publish_calls`:
the pending calls exported to a new SQLite file and uploaded). A fifth, fresh worker then
opens the cache: it downloads the four files and merges them (`INSERT OR IGNORE`). Printed:
the publishing and merging seconds, then a fully cached re-run of all 200,000 prompts
through `LLM.run` on the merged cache (rows/s; target >= 20,000, the single-machine
cached re-run target), beside a bare SQLite lookup floor of the same keys in the same run.

    python bench/cache_merge.py [--entries 50000] [--workers 4] [--store file|s3]

`--store s3` publishes through the loopback S3 server (moto, a subprocess); `file` (the
default) through a shared disk folder. Exits non-zero below the target.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dreamer_dagster.cache import ModelCache, key_for, publish_calls, request_prefix  # noqa: E402
from dreamer_dagster.llms import OpenAI  # noqa: E402
from dreamer_dagster.output_folder import OutputFolder  # noqa: E402

TARGET_ROWS_PER_S = 20_000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--store", choices=["file", "s3"], default="file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.store == "s3":
            from tests.support.s3 import MotoServer

            with MotoServer() as server:
                os.environ.update(server.env)
                return run(args, f"s3://{server.make_bucket()}/output", Path(tmp))
        return run(args, (Path(tmp) / "shared").as_uri(), Path(tmp))


def run(args: argparse.Namespace, output: str, tmp: Path) -> None:
    llm = OpenAI("fake-chat", base_url="http://127.0.0.1:9/v1")  # never called: all cached
    params = llm._generation_params(
        max_new_tokens=16,
        temperature=1.0,
        top_p=0.0,
        n=1,
        stop=None,
        repetition_penalty=None,
        logit_bias=None,
        seed=None,
        response_format=None,
    )
    identity = llm.fingerprint_identity()
    prefix = request_prefix(identity, params)
    total = args.entries * args.workers
    prompts = [f"Generate item number {i} of the list." for i in range(total)]

    publish_seconds = []
    for worker in range(args.workers):
        folder = OutputFolder(output, local_folder=str(tmp / f"worker-{worker}"))
        part = prompts[worker * args.entries : (worker + 1) * args.entries]
        with ModelCache(folder.cache_path, llm.cache_name(), identity) as cache:
            cache.put_many((key_for(prefix, p, 0), [f"Echo: {p}"]) for p in part)
        started = time.perf_counter()
        published = folder.publish_cache()
        publish_seconds.append(time.perf_counter() - started)
        assert published == args.entries, published

    fresh = OutputFolder(output, local_folder=str(tmp / "fresh-worker"))
    started = time.perf_counter()
    with ModelCache(fresh.cache_path, llm.cache_name(), identity) as merged:
        merge_seconds = time.perf_counter() - started
        assert len(merged) == total
    assert publish_calls(fresh.cache_path) == 0  # merged calls are not published again

    rerun = llm.for_run(cache_folder=fresh.cache_path, stats=Counter())
    started = time.perf_counter()
    results = list(rerun.run(prompts, max_new_tokens=16, batch_size=100, return_generator=True))
    rate = total / (time.perf_counter() - started)
    assert results[-1] == f"Echo: {prompts[-1]}"
    assert rerun.stats["model_calls"] == 0 and rerun.stats["cache_hits"] == total

    connection = sqlite3.connect(fresh.cache_path / f"{llm.cache_name()}.db")
    keys = [key_for(prefix, p, 0) for p in prompts]
    started = time.perf_counter()
    for start in range(0, len(keys), 900):
        chunk = keys[start : start + 900]
        connection.execute(
            f"SELECT key, value FROM cache WHERE key IN ({','.join('?' * len(chunk))})", chunk
        ).fetchall()
    floor = total / (time.perf_counter() - started)
    connection.close()

    print(f"store={args.store} workers={args.workers} entries/worker={args.entries:,}")
    print(f"publish (export + upload), per worker: {', '.join(f'{s:.2f}' for s in publish_seconds)} s")
    print(f"merge of {args.workers} caches ({total:,} entries) on a fresh worker: {merge_seconds:.2f} s")
    print(f"bare SQLite lookup floor: {floor:,.0f} rows/s")
    print(f"cached re-run from the merged cache: {rate:,.0f} rows/s (ratio to floor {rate / floor:.3f})")
    ok = rate >= TARGET_ROWS_PER_S
    print(f"target >= {TARGET_ROWS_PER_S:,} rows/s: {'OK' if ok else 'BELOW TARGET'}")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
