"""Workloads of the latency harness (``bench/latency.py``): the machine's memory bandwidth, SciFact and
synthetic collections with their Numba index and queries, cached under the work directory."""
from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench import synthetic
from splade_anserini.index.numba_index import NumbaIndex


# -- the machine ----------------------------------------------------------------------------------
def _sum_kernel():
    from numba import njit

    @njit(cache=True, nogil=True)
    def total(a):
        s = np.uint64(0)
        for i in range(a.shape[0]):
            s += a[i]
        return s

    return total


def memory_bandwidth(mib: int = 1024, repeat: int = 5) -> dict[str, float]:
    """Single-thread read bandwidth (a vectorized sum over ``mib`` MiB) and copy bandwidth, GB/s."""
    n = (mib << 20) // 8
    a = np.ones(n, dtype=np.uint64)
    total = _sum_kernel()
    total(a[:1024])
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        total(a)
        best = min(best, time.perf_counter() - t)
    read = a.nbytes / best / 1e9
    b = np.empty_like(a)
    best_copy = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        np.copyto(b, a)
        best_copy = min(best_copy, time.perf_counter() - t)
    del a, b
    return {"read_gbs": read, "copy_gbs": 2 * n * 8 / best_copy / 1e9}



def warm_numba() -> None:
    """Compile (or load from cache) every Numba kernel, so build times exclude compilation."""
    tiny = NumbaIndex.from_vectors([("a", {"x": 1, "y": 2}), ("b", {"x": 3})])
    NumbaIndex.from_csc(np.array([0, 2, 3]), np.array([0, 1, 0], np.int32), np.array([1, 3, 2], np.uint16),
                        ["x", "y"], ["a", "b"])
    tiny.search({"x": 1}, 2)
    tiny.batch_search([{"x": 1}, {"y": 1}], 2, threads=2)
    tiny.to_csc()
    synthetic.CscCollection(*tiny.to_csc(), vocab=tiny.vocab, n_docs=tiny.n_docs).to_csr()



# -- workloads ------------------------------------------------------------------------------------
@dataclass
class Workload:
    name: str
    n_docs: int
    numba_dir: Path
    jsonvector: Path
    queries: list[dict[str, int]]
    texts: list[str] | None = None
    numba_build: dict = field(default_factory=dict)
    workdir: Path = Path(".")


def dir_size(path: Path) -> int:
    """Bytes on disk of a file or of every file under a directory."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def timed_json(path: Path, build) -> dict:
    """Run ``build()`` once (timed) and cache ``{"seconds": ...}`` plus what it returns in ``path``."""
    if path.is_file():
        return json.loads(path.read_text())
    start = time.perf_counter()
    extra = build() or {}
    meta = {"seconds": time.perf_counter() - start, **extra}
    path.write_text(json.dumps(meta))
    return meta


def scifact_vectors(work: Path, model: str = "splade-tiny") -> Path:
    """SciFact corpus as splade-tiny JsonVectorCollection (the encoding helper's CLI when present)."""
    from splade_anserini.data import data_root

    out = work / "scifact" / "vectors"
    if out.is_dir() and any(out.glob("*.jsonl*")):
        return out
    corpus = data_root() / "scifact" / "corpus.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    if importlib.util.find_spec("splade_anserini.encode.corpus") is not None:
        subprocess.run([sys.executable, "-m", "splade_anserini.encode_corpus", "--corpus", str(corpus),
                        "--output", str(out), "--model", model, "--no-contents", "--no-progress"], check=True)
        return out
    print("[scifact] splade_anserini.encode.corpus not found; encoding with SpladeEncoder", file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    from splade_anserini.conversion.jsonvector import VectorDoc, write_jsonvector
    from splade_anserini.conversion.quantize import guard_empty
    from splade_anserini.data import read_corpus
    from splade_anserini.encode.splade import SpladeEncoder

    enc = SpladeEncoder(model)
    docs = list(read_corpus(corpus))
    vecs = enc.encode_documents([d.text for d in docs], batch_size=32)
    write_jsonvector(out / "part-000.jsonl",
                     (VectorDoc(d.docid, guard_empty(enc.to_impacts(v))[0]) for d, v in zip(docs, vecs)))
    return out


def scifact_queries(work: Path, split: str = "test", model: str = "splade-tiny") -> tuple[list[str], list[dict]]:
    """(texts, quantized query vectors) of the SciFact ``split`` queries, cached."""
    from splade_anserini.data import data_root, read_topics

    cache = work / "scifact" / f"queries.{split}.json"
    topics = read_topics(data_root() / "scifact" / f"queries.{split}.tsv")
    if cache.is_file():
        vectors = json.loads(cache.read_text())
    else:
        from splade_anserini.encode.splade import SpladeEncoder

        enc = SpladeEncoder(model)
        vecs = enc.encode_queries(list(topics.values()))
        vectors = {q: enc.to_impacts(v) for q, v in zip(topics, vecs)}
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(vectors))
    return list(topics.values()), [vectors[q] for q in topics]


def scifact_workload(work: Path) -> Workload:
    vectors = scifact_vectors(work)
    numba_dir = work / "scifact" / "numba"

    def build():
        if numba_dir.exists():
            shutil.rmtree(numba_dir)
        NumbaIndex.from_jsonvector(vectors).save(numba_dir)
        return {"source": "JsonVectorCollection"}

    meta = timed_json(work / "scifact" / "numba.build.json", build)
    texts, queries = scifact_queries(work)
    index = NumbaIndex.load(numba_dir)
    return Workload("scifact", index.n_docs, numba_dir, vectors, queries, texts, meta, work / "scifact")


def synthetic_workload(work: Path, n_docs: int, n_queries: int) -> Workload:
    base = work / f"synthetic-{n_docs}"
    base.mkdir(parents=True, exist_ok=True)
    csc_dir, numba_dir, json_dir = base / "csc", base / "numba", base / "vectors"
    stats = None

    def get_stats():
        nonlocal stats
        if stats is None:
            source = NumbaIndex.load(scifact_workload(work).numba_dir)
            _, q_test = scifact_queries(work, "test")
            _, q_train = scifact_queries(work, "train")
            stats = synthetic.source_stats(source, q_test + q_train)
        return stats

    if not (csc_dir / "meta.json").is_file():
        t = time.perf_counter()
        coll = synthetic.generate_collection(get_stats(), n_docs, seed=n_docs)
        coll.save(csc_dir)
        print(f"[synthetic-{n_docs}] generated {coll.nnz:,} postings in {time.perf_counter() - t:.1f} s",
              file=sys.stderr)
        del coll
    qfile = base / "queries.json"
    if qfile.is_file():
        queries = json.loads(qfile.read_text())
    else:
        queries = synthetic.generate_queries(get_stats(), n_queries, seed=7)
        qfile.write_text(json.dumps(queries))
    queries = queries[:n_queries]

    def build_numba():
        coll = synthetic.CscCollection.load(csc_dir)
        if numba_dir.exists():
            shutil.rmtree(numba_dir)
        NumbaIndex.from_csc(coll.col_ptr, coll.rows, coll.vals, coll.vocab, coll.docids).save(numba_dir)
        return {"source": "CSC arrays"}

    meta = timed_json(base / "numba.build.json", build_numba)
    return Workload(f"synthetic-{n_docs}", n_docs, numba_dir, json_dir, queries, None, meta, base)


def ensure_jsonvector(w: Workload) -> Path:
    if w.jsonvector.is_dir() and any(w.jsonvector.glob("*.jsonl")):
        return w.jsonvector
    coll = synthetic.CscCollection.load(w.workdir / "csc")
    t = time.perf_counter()
    synthetic.write_jsonvector(coll, w.jsonvector, shards=4)
    print(f"[{w.name}] wrote JsonVectorCollection in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    return w.jsonvector

