"""Embedding index: build and query time, peak memory and recall@k of FAISS against exact search.

    python benchmarks/bench_index.py [--sizes 100000,1000000] [--dim 64] [--queries 1000]
                                     [--k 10] [--indexes exact,flat,hnsw,ivf,...]
                                     [--distance euclidean] [--threads N] [--quick]
                                     [--out results/benchmarks/index.txt]

Data: random unit vectors (gallery of each ``--sizes``, ``--queries`` others as queries; fixed
seed), which is enough for speed and memory; recall on random vectors is a hard case for
approximate indexes (no clusters to exploit), so real embeddings should do at least as well.
Indexes (``oneshot.applications.EmbeddingIndex``): ``exact`` (the default backend: numpy and
TensorFlow, block by block), and FAISS ``flat`` (exact), ``hnsw`` (default M=32,
efConstruction=40, efSearch=64) and ``ivf`` (default nlist = sqrt(N), nprobe=16). Parameters
follow a colon, joined by ``+``: ``hnsw:ef_search=128+M=16``, ``ivf:nprobe=64`` (names of
``oneshot.applications.FAISS_PARAMS``). Default: ``exact,flat,hnsw,hnsw:ef_search=128,ivf,
ivf:nprobe=64``; the exact backend always runs first (the recall reference).

Each row runs in a fresh process (this script with a hidden option) that makes the data, then
resets Linux's peak-RSS mark (``/proc/self/clear_refs`` <- 5) and measures:

- ``build s``: ``index.add(gallery)`` (checks, copy; FAISS: training and insertion).
- ``query s``: one ``index.search(queries, k)`` of all queries; ``per query ms`` = query s / Q.
- ``1-query ms``: median latency of a single-query search (20 calls after one warm-up).
- ``extra MB``: peak RSS during build and queries minus RSS before (what the index adds: its
  own copy of the gallery, FAISS's copy or graph, and the search's working memory);
  ``peak MB``: peak RSS of the whole process (TensorFlow, the data and the index).
- ``recall@k``: mean share of each query's k exact neighbours (the ``exact`` row's) that the
  index returns (1.000 for exact methods, up to ties).

``--threads N`` sets TensorFlow's and FAISS's (OpenMP) threads; 0 keeps their defaults (all
cores). ``--quick`` (smoke test): 5,000 vectors, 100 queries. The machine may be shared: the
header records the load. Output committed as ``results/benchmarks/index.txt``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))  # measure.py
from measure import (  # noqa: E402
    finish_fresh,
    header,
    median_seconds,
    reset_peak,
    rss_kb,
    set_threads,
    start_fresh,
    write_table,
)

INDEXES = ("exact", "flat", "hnsw", "ivf")
DEFAULT_SPECS = "exact,flat,hnsw,hnsw:ef_search=128,ivf,ivf:nprobe=64"
SEED = 0


def unit_vectors(n: int, dim: int, seed: int):
    """``n`` random unit vectors (float32, made in blocks: no float64 copy of the whole)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 65536):
        block = rng.standard_normal((min(65536, n - start), dim), dtype=np.float32)
        out[start : start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def parse_spec(spec: str) -> tuple[str, dict[str, int]]:
    """``"ivf:nprobe=64+nlist=500"`` -> ``("ivf", {"nprobe": 64, "nlist": 500})``."""
    kind, _, rest = spec.partition(":")
    params = {}
    for item in filter(None, rest.split("+")):
        name, _, value = item.partition("=")
        if not value.isdigit():
            raise ValueError(
                f"Invalid value for `--indexes`. Expected KIND[:NAME=INT+...]. Received: {spec!r}"
            )
        params[name] = int(value)
    if kind not in INDEXES or (kind in ("exact", "flat") and params):
        raise ValueError(
            f"Invalid value for `--indexes`. Expected some of {INDEXES} (parameters for hnsw "
            f"and ivf only). Received: {spec!r}"
        )
    return kind, params


def make_index(spec: str, size: int, distance: str):
    from oneshot.applications import EmbeddingIndex

    kind, params = parse_spec(spec)
    if kind == "exact":
        return EmbeddingIndex(distance)
    if kind == "ivf":
        params = {"nlist": max(1, min(int(size**0.5), size // 39)), **params}
    return EmbeddingIndex(distance, backend="faiss", faiss_index=kind, faiss_params=params)


def probe(spec: str, size: int, args: argparse.Namespace, neighbours: str) -> dict:
    """(Fresh process.) Build and query one index; save its neighbours to ``neighbours``."""
    import numpy as np

    if args.threads > 0 and spec != "exact":
        import faiss

        faiss.omp_set_num_threads(args.threads)
    gallery = unit_vectors(size, args.dim, SEED)
    queries = unit_vectors(args.queries, args.dim, SEED + 1)
    warm = make_index("exact" if spec == "exact" else "flat", 0, args.distance)  # start TF/FAISS
    warm.add(unit_vectors(max(4 * args.k, 64), args.dim, SEED + 2))
    warm.search(queries[:2], args.k)
    index = make_index(spec, size, args.distance)
    base = reset_peak()
    start = time.perf_counter()
    index.add(gallery)
    build = time.perf_counter() - start
    start = time.perf_counter()
    result = index.search(queries, args.k)
    query = time.perf_counter() - start
    single = median_seconds(lambda: index.search(queries[:1], args.k), repeats=20)
    peak = rss_kb("VmHWM")
    np.save(neighbours, result.indices)
    return {
        "build_s": build,
        "query_s": query,
        "single_ms": 1000 * single,
        "peak_mb": peak / 1024,
        "extra_mb": (peak - base) / 1024,
    }


def recall(found, exact) -> float:
    """Mean share of each row of ``exact`` present in the same row of ``found``."""
    hits = sum(len(set(a.tolist()) & set(b.tolist())) for a, b in zip(found, exact, strict=True))
    return hits / exact.size


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="Each (size, index) row runs in a fresh process; see the module docstring.",
    )
    parser.add_argument("--sizes", default="100000,1000000", help="gallery sizes, comma-separated")
    parser.add_argument("--dim", type=int, default=64, help="embedding width")
    parser.add_argument("--queries", type=int, default=1000, help="queries per search")
    parser.add_argument("--k", type=int, default=10, help="neighbours per query (recall@k)")
    parser.add_argument(
        "--indexes",
        default=DEFAULT_SPECS,
        help=f"comma-separated KIND[:NAME=INT+...], KIND one of {','.join(INDEXES)}; "
        "e.g. exact,hnsw:ef_search=128,ivf:nprobe=64",
    )
    parser.add_argument("--distance", default="euclidean", help="euclidean or cosine")
    parser.add_argument("--threads", type=int, default=0, help="TF and FAISS threads (0: all)")
    parser.add_argument("--out", default="results/benchmarks/index.txt", help="table file")
    parser.add_argument(
        "--quick", action="store_true", help="smoke test: 5,000 vectors, 100 queries"
    )
    parser.add_argument("--_probe", help=argparse.SUPPRESS)  # fresh process: SIZE:NPY:SPEC
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.queries = "5000", 100
    return args


def check_args(args: argparse.Namespace) -> tuple[list[int], list[str]]:
    sizes = [int(s) for s in args.sizes.split(",") if s]
    kinds = [i for i in args.indexes.split(",") if i]
    for spec in kinds:
        parse_spec(spec)
    if not kinds:
        raise ValueError(f"Invalid value for `--indexes`. Expected some of {INDEXES}. Received: ''")
    if args.distance not in ("euclidean", "cosine"):
        raise ValueError(
            "Invalid value for `--distance`. Expected euclidean or cosine. "
            f"Received: {args.distance!r}"
        )
    if not sizes or min(sizes) < args.k or args.k < 1 or args.queries < 1 or args.dim < 1:
        raise ValueError(
            "Invalid sizes. Expected --sizes >= --k >= 1, --queries >= 1, --dim >= 1. "
            f"Received: sizes={sizes}, k={args.k}, queries={args.queries}, dim={args.dim}"
        )
    return sizes, kinds


def main(argv: list[str] | None = None) -> str:
    """Run the benchmark; write and return the text table."""
    import numpy as np

    args = parse_args(argv)
    set_threads(args.threads)
    if args._probe:
        size, neighbours, spec = args._probe.split(":", 2)
        print(json.dumps(probe(spec, int(size), args, neighbours)))
        return ""
    sizes, kinds = check_args(args)
    started = time.perf_counter()
    common = ["--dim", str(args.dim), "--queries", str(args.queries), "--k", str(args.k)]
    common += ["--distance", args.distance, "--threads", str(args.threads)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            exact = None
            for n, kind in enumerate(["exact", *[i for i in kinds if i != "exact"]]):
                npy = str(Path(tmp) / f"{n}-{size}.npy")  # exact first: the reference
                m = finish_fresh(
                    start_fresh(__file__, ["--_probe", f"{size}:{npy}:{kind}", *common])
                )
                found = np.load(npy)
                exact = found if exact is None else exact
                m["recall"] = recall(found, exact)
                if kind in kinds:
                    rows.append((size, kind, m))
                    print(f"  {size:>9,d} {kind:18s} build {m['build_s']:.2f} s, query "
                          f"{m['query_s']:.2f} s, recall {m['recall']:.3f}", flush=True)  # fmt: skip
    command = sys.argv[1:] if argv is None else argv
    lines = [
        *header("bench_index.py", command, time.perf_counter() - started),
        f"# random unit vectors, D = {args.dim}, {args.queries} queries, k = {args.k}, "
        f"{args.distance}; FAISS threads {args.threads or 'default'}; fresh process per row; "
        f"recall@{args.k} against the exact backend",
        "# defaults: hnsw M=32 ef_construction=40 ef_search=64; ivf nlist = sqrt(N) nprobe=16",
        "",
        f"{'size':>9s} {'index':18s} {'build s':>8s} {'query s':>8s} {'per query ms':>12s} "
        f"{'1-query ms':>10s} {'extra MB':>9s} {'peak MB':>8s} {f'recall@{args.k}':>9s}",
    ]
    for size, kind, m in rows:
        lines.append(
            f"{size:>9,d} {kind:18s} {m['build_s']:8.2f} {m['query_s']:8.3f} "
            f"{1000 * m['query_s'] / args.queries:12.3f} {m['single_ms']:10.2f} "
            f"{m['extra_mb']:9.1f} {m['peak_mb']:8.1f} {m['recall']:9.3f}"
        )
    return write_table("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
