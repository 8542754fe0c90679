"""EmbeddingRetriever search: FAISS against the NumPy exact search, at 10,000 and 100,000 texts.

Random unit vectors of all-MiniLM-L6-v2's size (384 dimensions) stand in for
embedded texts (the embedding itself is the embedder's cost, the same for every
search). For each index size it times, in one run: the NumPy exact top-k (the
floor: ``exact_top_k``, what the retriever does without faiss), FAISS's exact
``IndexFlatIP`` (what it does with faiss-cpu installed and ``index_type=None``),
building the index included, and prints its speed as a ratio to the floor with
its recall@k against the exact answer. ``--index-type HNSW32`` (any FAISS
factory string) adds an approximate index; on random vectors, which have no
neighbourhood structure, its recall says little about real embeddings.
Target: the exact index finds exactly the floor's neighbours (recall 1.000);
exits non-zero when it does not.

    python bench/retriever_search.py [--sizes 10000 100000] [--queries 1000] [--k 5] [--index-type HNSW32]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dreamer_dagster.embedders import default_embedder  # noqa: E402
from dreamer_dagster.retrievers import EmbeddingRetriever  # noqa: E402
from dreamer_dagster.retrievers.embedding_retriever import exact_top_k  # noqa: E402

DIMS = 384


def unit_vectors(rng: np.random.Generator, count: int) -> np.ndarray:
    vectors = rng.standard_normal((count, DIMS)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def timed_search(
    index_type: str | None, matrix: np.ndarray, queries: np.ndarray, k: int
) -> tuple[float, list]:
    retriever = EmbeddingRetriever(["-"] * len(matrix), default_embedder(), index_type=index_type)
    retriever._index = matrix  # the embedded texts
    started = time.perf_counter()
    _, found = retriever.search(queries, k)
    return time.perf_counter() - started, found


def recall(found: list, truth: list) -> float:
    hits = sum(len(set(a) & set(b)) for a, b in zip(found, truth))
    return hits / sum(len(b) for b in truth)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--index-type", action="append", default=[], help="a FAISS factory string to add")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    queries = unit_vectors(rng, args.queries)
    exact_recalls = []
    for size in args.sizes:
        matrix = unit_vectors(rng, size)
        started = time.perf_counter()
        _, truth = exact_top_k(matrix, queries, args.k)
        floor = time.perf_counter() - started
        print(f"{size:,} texts, {args.queries:,} queries, k={args.k}")
        print(f"  numpy exact (floor)     {floor:7.3f} s   1.00x   recall 1.000")
        for label, index_type in [("faiss IndexFlatIP", None)] + [(f"faiss {t}", t) for t in args.index_type]:
            seconds, found = timed_search(index_type, matrix, queries, args.k)
            print(
                f"  {label:<22}  {seconds:7.3f} s   {floor / seconds:4.2f}x   recall {recall(found, truth):.3f}"
            )
            if index_type is None:
                exact_recalls.append(recall(found, truth))
    ok = all(value == 1.0 for value in exact_recalls)
    print(f"exact index recall 1.000 at every size (target): {'OK' if ok else 'MISSED'}")
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
