"""A fully cached re-run: 10,000 prompts already in the model cache.

Fills the cache once (an OpenAI-compatible server on loopback answers the
first rows; the rest are written under the same keys), then
re-runs the same prompts with a fresh run binding: no model call may happen,
and the lookup rate (rows/s through ``LLM.run``, keys, SQLite and JSON
included) must be >= 20,000. The floor printed beside it is a bare SQLite
``SELECT ... WHERE key IN (...)`` of the same keys in the same run.

    python bench/cached_rerun.py [--rows 10000]
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dreamer_dagster.cache import ModelCache, key_for, request_prefix  # noqa: E402
from dreamer_dagster.llms import OpenAI  # noqa: E402
from tests.support.openai_server import control, start_server_process  # noqa: E402

TARGET_ROWS_PER_S = 20_000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    prompts = [f"Generate item number {i} of the list." for i in range(args.rows)]
    with start_server_process() as base_url, tempfile.TemporaryDirectory() as folder:
        cache = Path(folder)
        llm = OpenAI("fake-chat", base_url=base_url, max_concurrency=32)
        filled = llm.for_run(cache_folder=cache, stats=Counter())
        started = time.perf_counter()
        # The first rows go through the server; the rest are written straight into the
        # cache under the same keys (a 10,000-request fill would only time the server).
        head = filled.run(prompts[:200], max_new_tokens=16, batch_size=100)
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
        prefix = request_prefix(llm.fingerprint_identity(), params)
        tail = [f"Echo: {prompt}" for prompt in prompts[200:]]
        with ModelCache(cache, llm.cache_name(), llm.fingerprint_identity()) as store:
            store.put_many((key_for(prefix, p, 0), [text]) for p, text in zip(prompts[200:], tail))
        expected = head + tail
        fill_seconds = time.perf_counter() - started
        requests_after_fill = control(base_url, "/_stats")["requests"]
        rates = []
        for _ in range(args.rounds):
            rerun = llm.for_run(cache_folder=cache, stats=Counter())
            started = time.perf_counter()
            results = list(rerun.run(prompts, max_new_tokens=16, batch_size=100, return_generator=True))
            rates.append(args.rows / (time.perf_counter() - started))
            assert results == expected
            assert rerun.stats["model_calls"] == 0 and rerun.stats["cache_hits"] == args.rows
        assert control(base_url, "/_stats")["requests"] == requests_after_fill, "the re-run called the model"
        database = cache / f"{llm.cache_name()}.db"
        connection = sqlite3.connect(database)
        keys = [row[0] for row in connection.execute("SELECT key FROM cache")]
        started = time.perf_counter()
        for start in range(0, len(keys), 900):
            chunk = keys[start : start + 900]
            connection.execute(
                f"SELECT key, value FROM cache WHERE key IN ({','.join('?' * len(chunk))})", chunk
            ).fetchall()
        floor = len(keys) / (time.perf_counter() - started)
        connection.close()
    rate = max(rates)
    print(f"rows={args.rows} fill: {fill_seconds:.1f} s; re-run model calls: 0")
    print(f"bare SQLite lookup floor: {floor:,.0f} rows/s")
    print(f"cached LLM.run re-run:    {rate:,.0f} rows/s (ratio to floor {rate / floor:.3f})")
    print(f"target >= {TARGET_ROWS_PER_S:,} rows/s: {'OK' if rate >= TARGET_ROWS_PER_S else 'BELOW TARGET'}")


if __name__ == "__main__":
    main()
