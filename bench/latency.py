"""Latency harness: every backend on the same index and queries, in one run, next to the memory bound.

    python bench/latency.py                                   # SciFact + synthetic 10k, 100k, 1M; all backends
    python bench/latency.py --sizes 10000 --backends numba,lucene      # quick smoke
    python bench/latency.py --collections scifact --out runs/latency-scifact.md

Collections: ``scifact`` (5,183 docs, ``splade-tiny`` vectors, the 300 test queries) and
``synthetic-N`` (SciFact's term, document-length, impact and query statistics scaled to N documents,
see ``bench/synthetic.py``). Everything built is cached under ``--work`` (default ``work/bench``,
git-ignored) with its build time, so a re-run measures search only.

Backends (exact unless noted):

* ``numba``: :class:`splade_anserini.index.numba_index.NumbaIndex.search`, one query at a time (returns
  ``(docid, score)`` lists); ``numba-batch``: ``batch_search`` (throughput, reported on the numba
  row); ``numba-ids``: ``search_ids`` / ``batch_search_ids`` (arrays of internal ids and scores,
  the output level of the splade-index and bm25s kernels);
* ``lucene``: Pyserini ``LuceneImpactSearcher.search`` on the Anserini impact index (query vectors
  pre-encoded: the encoder returns the cached dict; ``min_idf=-inf``); timing stops when Pyserini
  returns its hit objects;
* ``splade-index``: the ``splade_index`` numba kernel on our impact matrix (float32);
* ``pisa-maxscore`` / ``pisa-bmw``: PISA (``pyterrier_pisa``'s binding, quantized scorer, called
  directly: PyTerrier's Java side is not used) on an index written from our postings;
* ``seismic``: Seismic (approximate; recall against the exact top-k is reported);
* ``bm25s``: bm25s' numba BM25 core on our impact matrix. It sums the impacts of the query terms
  *without* query weights: a timing reference only, its scores are not ours.

Measured per backend: single-thread latency p50/p90/p99 over the queries (a query's latency is the
fastest of ``--passes`` passes, so time slices lost to other processes on a shared machine do not
count), with query encoding excluded and, on SciFact, included (our ``SpladeEncoder`` per query);
batch throughput with 1 and 2 threads (fastest of ``--batch-passes`` runs); index build time and
size on disk. Every exact backend's results are compared with Numba's ("identical": same
(docid, score) lists; "same scores": same score lists, ties possibly ordered otherwise).

The physical bound: the single-thread read bandwidth (a 1 GiB array summed, best of 5, measured
next to each collection) and, per query, the bytes of postings an exact algorithm must read (every
posting of the query's terms, at the Numba index's 4 bytes a posting); "bound" is the median over
queries of bytes / bandwidth. (Numba's dense rows read one byte a document for the most frequent
terms, so it reads somewhat less than that: printed as well.)
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import synthetic  # bench/synthetic.py: run as ``python bench/latency.py``, bench/ is on sys.path

from splade_anserini.index.numba_index import NumbaIndex

ROOT = Path(__file__).resolve().parent.parent

ALL_BACKENDS = ("numba", "numba-batch", "numba-ids", "lucene", "splade-index", "pisa-maxscore", "pisa-bmw", "seismic", "bm25s")
EXACT = {"numba", "numba-batch", "numba-ids", "lucene", "splade-index", "pisa-maxscore", "pisa-bmw"}


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


def _dir_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _timed_json(path: Path, build) -> dict:
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

    meta = _timed_json(work / "scifact" / "numba.build.json", build)
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

    meta = _timed_json(base / "numba.build.json", build_numba)
    return Workload(f"synthetic-{n_docs}", n_docs, numba_dir, json_dir, queries, None, meta, base)


def ensure_jsonvector(w: Workload) -> Path:
    if w.jsonvector.is_dir() and any(w.jsonvector.glob("*.jsonl")):
        return w.jsonvector
    coll = synthetic.CscCollection.load(w.workdir / "csc")
    t = time.perf_counter()
    synthetic.write_jsonvector(coll, w.jsonvector, shards=4)
    print(f"[{w.name}] wrote JsonVectorCollection in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    return w.jsonvector


# -- backends -------------------------------------------------------------------------------------
class Backend:
    name = "?"
    exact = True
    build_info: dict = {}

    def search(self, i: int, k: int):
        """Top-k of query ``i`` as the backend's API returns it (timed); :meth:`unpack` turns it into
        (docids, scores) in rank order outside the timing."""
        raise NotImplementedError

    @staticmethod
    def unpack(result):
        return result

    def batch(self, k: int, threads: int) -> None:
        raise NotImplementedError

    def search_text(self, i: int, k: int):
        raise NotImplementedError

    def close(self) -> None:
        pass


class NumbaBackend(Backend):
    name = "numba"

    def __init__(self, w: Workload, encoder=None):
        self.index = NumbaIndex.load(w.numba_dir)  # memory-mapped: page cache, not process memory
        for array in (self.index.docs, self.index.impacts, self.index.dense, self.index.offsets):
            np.asarray(array).sum()  # fault the pages in before timing
        self.queries = w.queries
        self.texts = w.texts
        self.encoder = encoder
        self.build_info = {"seconds": w.numba_build.get("seconds"), "bytes": _dir_size(w.numba_dir),
                           "note": f"from {w.numba_build.get('source', '?')}"}

    def search(self, i, k):
        return self.index.search(self.queries[i], k)  # the public API: [(docid, score), ...]

    @staticmethod
    def unpack(hits):
        return [d for d, _ in hits], [s for _, s in hits]

    def search_text(self, i, k):
        vec = self.encoder.to_impacts(self.encoder.encode_queries([self.texts[i]])[0])
        return self.index.search(vec, k)

    def batch(self, k, threads):
        self.index.batch_search(self.queries, k, threads)


class NumbaIdsBackend(NumbaBackend):
    """The array-level API (``search_ids`` / ``batch_search_ids``): internal ids and scores, no Python
    tuples; the output level of the splade-index and bm25s kernels."""

    name = "numba-ids"

    def __init__(self, w: Workload, encoder=None):
        super().__init__(w, encoder)
        self.encoded = [self.index.encode_query(q) for q in self.queries]
        self.build_info = dict(self.build_info, note="arrays out (search_ids / batch_search_ids)")

    def search(self, i, k):
        ids, scores = self.index.search_ids(*self.encoded[i], k=k)
        return self.index._docid_array[ids].tolist(), scores.tolist()

    @staticmethod
    def unpack(result):
        return result

    def batch(self, k, threads):
        self.index.batch_search_ids(self.encoded, k, threads)


def build_lucene(w: Workload) -> tuple[Path, dict]:
    index_dir = w.workdir / "lucene"
    if not (w.workdir / "lucene.build.json").is_file():
        vectors = ensure_jsonvector(w)  # not timed: the input of every backend's build

    def build():
        from splade_anserini.index.build import build_lucene_index

        if index_dir.exists():
            shutil.rmtree(index_dir)
        report = build_lucene_index(vectors, index_dir, threads=2, memory_buffer_mb=1024)
        return {"indexed": report.indexed}

    meta = _timed_json(w.workdir / "lucene.build.json", build)
    return index_dir, meta


class LuceneBackend(Backend):
    name = "lucene"

    def __init__(self, w: Workload, encoder=None):
        from splade_anserini import java
        from splade_anserini.search.query_encoder import PreEncodedQueries, QueryVectorizer

        index_dir, meta = build_lucene(w)
        lucene = java.pyserini_lucene()
        self.keys = [str(i) for i in range(len(w.queries))]
        self.searcher = lucene.LuceneImpactSearcher(str(index_dir), PreEncodedQueries(dict(zip(self.keys, w.queries))),
                                                    min_idf=float("-inf"))
        self.text_searcher = None
        if encoder is not None and w.texts is not None:
            self.text_searcher = lucene.LuceneImpactSearcher(str(index_dir), QueryVectorizer(encoder=encoder),
                                                             min_idf=float("-inf"))
        self.texts = w.texts
        self.build_info = {"seconds": meta["seconds"], "bytes": _dir_size(index_dir), "note": "Anserini, 2 threads"}

    def search(self, i, k):
        return self.searcher.search(self.keys[i], k)

    @staticmethod
    def unpack(hits):
        return [h.docid for h in hits], [int(round(h.score)) for h in hits]

    def search_text(self, i, k):
        return self.text_searcher.search(self.texts[i], k)

    def batch(self, k, threads):
        self.searcher.batch_search(self.keys, self.keys, k=k, threads=threads)

    def close(self):
        for s in (self.searcher, self.text_searcher):
            if s is not None:
                s.close()


def _matrix(w: Workload):
    """(col_ptr, internal rows int32, impacts, docid array, vocab index) of the workload's Numba index."""
    index = NumbaIndex.load(w.numba_dir)
    col_ptr, rows, vals = index.to_csc()
    return index, col_ptr, rows, vals


class SpladeIndexBackend(Backend):
    name = "splade-index"

    def __init__(self, w: Workload):
        from splade_index.numba.retrieve_utils import _retrieve_numba_functional

        t = time.perf_counter()
        index, col_ptr, rows, vals = _matrix(w)
        self.scores = {"data": vals.astype(np.float32), "indices": rows, "indptr": col_ptr,
                       "num_docs": index.n_docs}
        seconds = time.perf_counter() - t
        self.retrieve = _retrieve_numba_functional
        self.docids = np.array(index.docids, dtype=object)
        self.encoded = [index.encode_query(q) for q in w.queries]
        nbytes = sum(a.nbytes for a in (self.scores["data"], rows, col_ptr))
        self.build_info = {"seconds": seconds, "bytes": nbytes, "note": "in memory, from our CSC"}

    def _run(self, idx, k, threads):
        ids = [self.encoded[i][0].astype(np.int32) for i in idx]
        ws = [self.encoded[i][1].astype(np.float32) for i in idx]
        return self.retrieve(ids, ws, self.scores, k=k, n_threads=threads, show_progress=False)

    def search(self, i, k):
        docs, scores = self._run([i], k, 1)
        keep = scores[0] > 0
        return self.docids[docs[0][keep]].tolist(), scores[0][keep].astype(np.int64).tolist()

    def batch(self, k, threads):
        self._run(range(len(self.encoded)), k, threads)


class Bm25sBackend(Backend):
    name = "bm25s"
    exact = False

    def __init__(self, w: Workload):
        from bm25s.numba.retrieve_utils import _retrieve_internal_jitted_parallel, _retrieve_internal_jitted_serial

        index, col_ptr, rows, vals = _matrix(w)
        self.serial, self.parallel = _retrieve_internal_jitted_serial, _retrieve_internal_jitted_parallel
        self.data, self.indices, self.indptr, self.n = vals.astype(np.float32), rows, col_ptr, index.n_docs
        self.docids = np.array(index.docids, dtype=object)
        self.encoded = [index.encode_query(q)[0].astype(np.int32) for q in w.queries]
        self.build_info = {"seconds": None, "bytes": self.data.nbytes + rows.nbytes + col_ptr.nbytes,
                           "note": "unweighted sum (timing only)"}

    def _args(self, idx, k):
        toks = [self.encoded[i] for i in idx]
        ptr = np.cumsum([0] + [len(t) for t in toks]).astype(np.int32)
        flat = np.concatenate(toks) if toks else np.empty(0, np.int32)
        return dict(query_tokens_ids_flat=flat, query_pointers=ptr, k=k, sorted=True, dtype=np.dtype("float32"),
                    int_dtype=np.dtype("int32"), data=self.data, indptr=self.indptr, indices=self.indices,
                    num_docs=self.n, nonoccurrence_array=None, weight_mask=None)

    def search(self, i, k):
        scores, docs = self.serial(**self._args([i], k))
        return self.docids[docs[0]].tolist(), scores[0].tolist()

    def batch(self, k, threads):
        import numba

        prev = numba.get_num_threads()
        numba.set_num_threads(threads)
        try:
            fn = self.serial if threads == 1 else self.parallel
            fn(**self._args(range(len(self.encoded)), k))
        finally:
            numba.set_num_threads(prev)


@contextlib.contextmanager
def _quiet_fds():
    """Silence a native library's progress output on stdout/stderr (PISA prints a line per percent)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


def write_pisa_index(index: NumbaIndex, path: Path) -> None:
    """Write PISA's uncompressed binary collection (``inv.docs/freqs/sizes``) and lexicons from our postings."""
    from pyterrier_pisa import _pisathon

    path.mkdir(parents=True, exist_ok=True)
    col_ptr, rows, vals = index.to_csc()
    df = np.diff(col_ptr)
    keep = np.flatnonzero(df > 0)
    order = keep[np.argsort(np.array([index.vocab[t] for t in keep], dtype=object), kind="stable")]
    with open(path / "inv.docs", "wb") as fd, open(path / "inv.freqs", "wb") as ff:
        fd.write(np.array([1, index.n_docs], dtype=np.uint32).tobytes())
        for t in order:
            lo, hi = col_ptr[t], col_ptr[t + 1]
            head = np.array([hi - lo], dtype=np.uint32).tobytes()
            fd.write(head)
            fd.write(rows[lo:hi].astype(np.uint32).tobytes())
            ff.write(head)
            ff.write(vals[lo:hi].astype(np.uint32).tobytes())
    lens = np.bincount(rows, weights=vals, minlength=index.n_docs)  # document lengths: sum of impacts
    with open(path / "inv.sizes", "wb") as fs:
        fs.write(np.array([index.n_docs], dtype=np.uint32).tobytes())
        fs.write(np.minimum(lens, 2**32 - 1).astype(np.uint32).tobytes())
    (path / "fwd.documents").write_text("".join(d + "\n" for d in index.docids))
    (path / "fwd.terms").write_text("".join(index.vocab[t] + "\n" for t in order))
    _pisathon.build_binlex(str(path / "fwd.documents"), str(path / "fwd.doclex"))
    _pisathon.build_binlex(str(path / "fwd.terms"), str(path / "fwd.termlex"))
    (path / "pt_meta.json").write_text(json.dumps({"type": "sparse_index", "format": "pisa",
                                                    "package_hint": "pyterrier-pisa", "stemmer": "none"}))


class PisaBackend(Backend):
    def __init__(self, w: Workload, algorithm: str):
        import warnings

        warnings.filterwarnings("ignore")
        import pyterrier_pisa
        from pyterrier_pisa import _pisathon

        self.name = {"maxscore": "pisa-maxscore", "block_max_wand": "pisa-bmw"}[algorithm]
        self.algorithm = algorithm
        path = w.workdir / "pisa"

        def build():
            if path.exists():
                shutil.rmtree(path)
            write_pisa_index(NumbaIndex.load(w.numba_dir), path)
            t = time.perf_counter()
            self._prepare(path)
            return {"prepare_seconds": time.perf_counter() - t}

        meta = _timed_json(w.workdir / "pisa.build.json", build)
        self._prepare(path)
        self.queries = [(i, {t: float(v) for t, v in q.items()}) for i, q in enumerate(w.queries)]
        self.build_info = {"seconds": meta["seconds"], "bytes": _dir_size(path),
                           "note": "block_simdbp, written from our postings"}
        self.pisathon = _pisathon
        self._pt = pyterrier_pisa

    def _prepare(self, path):
        from pyterrier_pisa import _pisathon

        self.ctxt = _pisathon.RetrievalContext()
        with tempfile.TemporaryDirectory() as d, _quiet_fds():
            stops = Path(d) / "stops.txt"
            stops.write_text("")
            _pisathon.prepare_index(self.ctxt, str(path), "block_simdbp", "quantized", "", quantize=0,
                                    stop_fname=str(stops))

    def _run(self, inp, k, threads):
        n = len(inp) * k
        qidx, docnos = np.empty(n, dtype=np.int32), np.empty(n, dtype=object)
        ranks, scores = np.empty(n, dtype=np.int32), np.empty(n, dtype=np.float32)
        size = self.pisathon.retrieve(self.ctxt, self.algorithm, inp, k=k, threads=threads, query_weighted=1,
                                      pretokenised=True, result_qidxs=qidx, result_docnos=docnos,
                                      result_ranks=ranks, result_scores=scores)
        return docnos[:size], scores[:size]

    def search(self, i, k):
        docnos, scores = self._run([self.queries[i]], k, 1)
        return docnos.tolist(), [int(round(s)) for s in scores.tolist()]

    def batch(self, k, threads):
        self._run(self.queries, k, threads)


class SeismicBackend(Backend):
    name = "seismic"
    exact = False

    def __init__(self, w: Workload, query_cut: int = 20, heap_factor: float = 0.8):
        import seismic

        self.seismic = seismic
        path = w.workdir / "seismic"
        n_postings = max(1000, min(4000, w.n_docs // 4))

        def build():
            index = NumbaIndex.load(w.numba_dir, mmap=False)
            coll = synthetic.CscCollection(*index.to_csc(), vocab=index.vocab, n_docs=index.n_docs)
            indptr, cols, data = coll.to_csr()
            stype = seismic.get_seismic_string()
            vocab = np.array(index.vocab, dtype=stype)
            ds = seismic.SeismicDataset()
            for d in range(index.n_docs):
                lo, hi = indptr[d], indptr[d + 1]
                if hi > lo:
                    ds.add_document(index.docids[d], vocab[cols[lo:hi]], data[lo:hi].astype(np.float32))
            with _quiet_fds():
                built = seismic.SeismicIndex.build_from_dataset(ds, n_postings=n_postings, centroid_fraction=0.1,
                                                                summary_energy=0.4, num_threads=2)
            path.mkdir(parents=True, exist_ok=True)
            with _quiet_fds():
                built.save(str(path / "index"))
            return {"n_postings": n_postings}

        meta = _timed_json(w.workdir / "seismic.build.json", build)
        self.index = seismic.SeismicIndex.load(str(path / "index.index.seismic"))
        stype = seismic.get_seismic_string()
        self.queries = [(np.array(list(q), dtype=stype), np.array(list(q.values()), dtype=np.float32))
                        for q in w.queries]
        self.query_cut, self.heap_factor = query_cut, heap_factor
        self.build_info = {"seconds": meta["seconds"], "bytes": _dir_size(path),
                           "note": f"n_postings={n_postings}, query_cut={query_cut}, heap_factor={heap_factor}"}

    def search(self, i, k):
        comps, vals = self.queries[i]
        res = self.index.search("q", comps, vals, k, self.query_cut, self.heap_factor)
        return [r[2] for r in res], [int(round(r[1])) for r in res]

    def batch(self, k, threads):
        ids = np.array([str(i) for i in range(len(self.queries))], dtype=self.seismic.get_seismic_string())
        self.index.batch_search(ids, [c for c, _ in self.queries], [v for _, v in self.queries], k,
                                self.query_cut, self.heap_factor, num_threads=threads)


# -- measuring ------------------------------------------------------------------------------------
def percentiles(values: list[float]) -> dict[str, float]:
    a = np.asarray(values) * 1e3
    return {"p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
            "p99": float(np.percentile(a, 99)), "mean": float(a.mean())}


def time_single(fn, n: int, warmup: int, passes: int = 3) -> tuple[list[float], list]:
    """Per-query latency: the minimum over ``passes`` passes through the queries (in order), which
    removes most of the noise of a shared machine (time slices lost to other processes) while every
    pass still reads each query's postings cold from memory on a large collection."""
    for i in range(min(warmup, n)):
        fn(i)
    times, results = [float("inf")] * n, [None] * n
    for p in range(passes):
        for i in range(n):
            t = time.perf_counter()
            r = fn(i)
            times[i] = min(times[i], time.perf_counter() - t)
            if p == 0:
                results[i] = r
    return times, results


def time_batch(backend: Backend, k: int, threads: int, n: int, passes: int = 3) -> float:
    """Queries per second of the whole batch: the best of ``passes`` timed runs after a warm-up run."""
    backend.batch(k, threads)  # warm-up (and JIT)
    best = float("inf")
    for _ in range(passes):
        start = time.perf_counter()
        backend.batch(k, threads)
        best = min(best, time.perf_counter() - start)
    return n / best


def compare(exact: list, other: list, k: int) -> dict[str, float]:
    """Agreement with the exact Numba results: identical lists, identical score lists, recall@k."""
    same = same_scores = 0
    recall = []
    for (d0, s0), (d1, s1) in zip(exact, other):
        same += d0 == d1 and s0 == s1
        same_scores += list(s0) == [int(round(s)) for s in s1]
        if d0:
            recall.append(len(set(d0) & set(d1)) / len(d0))
    n = max(1, len(exact))
    return {"identical": same / n, "same_scores": same_scores / n, "recall": float(np.mean(recall)) if recall else 1.0}


def warm_numba() -> None:
    """Compile (or load from cache) every Numba kernel, so build times exclude compilation."""
    tiny = NumbaIndex.from_vectors([("a", {"x": 1, "y": 2}), ("b", {"x": 3})])
    NumbaIndex.from_csc(np.array([0, 2, 3]), np.array([0, 1, 0], np.int32), np.array([1, 3, 2], np.uint16),
                        ["x", "y"], ["a", "b"])
    tiny.search({"x": 1}, 2)
    tiny.batch_search([{"x": 1}, {"y": 1}], 2, threads=2)
    tiny.to_csc()
    synthetic.CscCollection(*tiny.to_csc(), vocab=tiny.vocab, n_docs=tiny.n_docs).to_csr()


def make_backend(name: str, w: Workload, encoder):
    if name in ("numba", "numba-batch"):
        b = NumbaBackend(w, encoder)
        b.name = name
        return b
    if name == "numba-ids":
        return NumbaIdsBackend(w)
    if name == "lucene":
        return LuceneBackend(w, encoder)
    if name == "splade-index":
        return SpladeIndexBackend(w)
    if name == "pisa-maxscore":
        return PisaBackend(w, "maxscore")
    if name == "pisa-bmw":
        return PisaBackend(w, "block_max_wand")
    if name == "seismic":
        return SeismicBackend(w)
    if name == "bm25s":
        return Bm25sBackend(w)
    raise ValueError(f"unknown backend {name!r} (known: {', '.join(ALL_BACKENDS)})")


def postings_bytes(index: NumbaIndex, queries: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Per query: bytes of its terms' posting lists (at the index's bytes a posting), and the bytes the
    Numba kernel actually reads (dense rows at one byte a document, the other lists as postings)."""
    df = np.diff(np.asarray(index.offsets)[:, [0, -1]], axis=1)[:, 0]
    dense = np.asarray(index.dense_row) >= 0
    lists, read = [], []
    for q in queries:
        t = index.encode_query(q)[0]
        lists.append(int(df[t].sum()) * index.bytes_per_posting)
        read.append(int(df[t][~dense[t]].sum()) * index.bytes_per_posting + int(dense[t].sum()) * index.n_docs)
    return np.array(lists), np.array(read)


def run_workload(w: Workload, backends: list[str], k: int, bandwidth: float, encoder, threads_list=(1, 2),
                 warmup: int = 20, passes: int = 3, batch_passes: int = 3) -> list[dict]:
    index = NumbaIndex.load(w.numba_dir)
    n = len(w.queries)
    bytes_q, read_q = postings_bytes(index, w.queries)
    bound_ms = float(np.median(bytes_q)) / (bandwidth * 1e9) * 1e3
    load = os.getloadavg()[0]
    print(f"\n[{w.name}] {index.n_docs:,} docs, {index.n_postings:,} postings, {n} queries, median "
          f"{np.median(bytes_q) / 1e6:.2f} MB of postings a query -> bound {bound_ms:.3f} ms (the Numba kernel "
          f"reads {np.median(read_q) / 1e6:.2f} MB); load average {load:.1f}", file=sys.stderr)
    exact_results = None
    rows = []
    for name in backends:
        gc.collect()
        try:
            b = make_backend(name, w, encoder)
        except Exception as exc:  # noqa: BLE001 - a missing optional peer must not stop the run
            print(f"[{w.name}] {name}: skipped ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})",
                  file=sys.stderr)
            continue
        row = {"collection": w.name, "n_docs": index.n_docs, "backend": name, "k": k, "queries": n,
               "bound_ms": bound_ms, "postings_mb": float(np.median(bytes_q)) / 1e6,
               "numba_read_mb": float(np.median(read_q)) / 1e6, "load": os.getloadavg()[0],
               "build_s": b.build_info.get("seconds"), "size_mb": (b.build_info.get("bytes") or 0) / 1e6,
               "note": b.build_info.get("note", "")}
        try:
            if name != "numba-batch":
                times, results = time_single(lambda i: b.search(i, k), n, warmup, passes)
                results = [b.unpack(r) for r in results]
                row.update({f"single_{key}": v for key, v in percentiles(times).items()})
                if name == "numba":
                    exact_results = results
                elif exact_results is not None:
                    row.update(compare(exact_results, results, k))
                if w.texts is not None and encoder is not None and name in ("numba", "lucene"):
                    times_enc, _ = time_single(lambda i: b.search_text(i, k), n, 5, passes)
                    row.update({f"encoded_{key}": v for key, v in percentiles(times_enc).items()})
            if name != "numba":
                for th in threads_list:
                    row[f"qps_{th}"] = time_batch(b, k, th, n, batch_passes)
            print(f"[{w.name}] {name}: p50 {row.get('single_p50', float('nan')):.3f} ms, "
                  + ", ".join(f"{th} thr {row.get(f'qps_{th}', float('nan')):.0f} q/s" for th in threads_list),
                  file=sys.stderr)
        except Exception as exc:  # noqa: BLE001
            print(f"[{w.name}] {name}: failed ({type(exc).__name__}: {exc})", file=sys.stderr)
            row["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            b.close()
        b = None  # release the backend's memory before the next one is built
        rows.append(row)
    # numba-batch's throughput is the numba row's
    for r in rows:
        if r["backend"] == "numba-batch":
            for other in rows:
                if other["backend"] == "numba":
                    other.update({key: r[key] for key in r if key.startswith("qps_")})
    return [r for r in rows if r["backend"] != "numba-batch" or "numba" not in {x["backend"] for x in rows}]


def _fmt(v, spec=".2f"):
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "-"
    return format(v, spec)


def table(rows: list[dict]) -> str:
    head = ("| collection | docs | backend | p50 ms | p90 ms | p99 ms | p50 ms incl. encoding | QPS 1 thr | "
            "QPS 2 thr | bound ms | p50/bound | vs numba | build s | size MB | note |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        p50 = r.get("single_p50")
        agree = "-"
        if "identical" in r:
            agree = (f"identical {r['identical']:.0%}" if r["backend"] in EXACT
                     else f"recall@{r['k']} {r['recall']:.3f}")
            if r["backend"] in EXACT and r["identical"] < 1:
                agree += f", same scores {r['same_scores']:.0%}"
        lines.append("| " + " | ".join([
            r["collection"], f"{r['n_docs']:,}", r["backend"], _fmt(p50, ".3f"), _fmt(r.get("single_p90"), ".3f"),
            _fmt(r.get("single_p99"), ".3f"), _fmt(r.get("encoded_p50"), ".3f"), _fmt(r.get("qps_1"), ".0f"),
            _fmt(r.get("qps_2"), ".0f"), _fmt(r["bound_ms"], ".3f"),
            _fmt(p50 / r["bound_ms"] if p50 and r["bound_ms"] else None, ".1f"), agree,
            _fmt(r.get("build_s"), ".1f"), _fmt(r.get("size_mb"), ".1f"), r.get("note", "") + (
                f" ERROR {r['error']}" if "error" in r else "")]) + " |")
    if rows:
        seen = {}
        for r in rows:
            seen.setdefault(r["collection"], r)
        lines.append("")
        lines.append("bound = median over queries of (bytes of the query terms' posting lists) / (single-thread read "
                     "bandwidth measured next to the run); latency = fastest of the timed passes, per query. "
                     + "; ".join(f"{c}: {r['postings_mb']:.2f} MB of postings a query (Numba reads "
                                 f"{r['numba_read_mb']:.2f} MB), {r['bandwidth_gbs']:.1f} GB/s, load {r['load']:.1f}"
                                 for c, r in seen.items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--collections", default="scifact,synthetic", help="scifact, synthetic (comma-separated)")
    p.add_argument("--sizes", default="10000,100000,1000000", help="synthetic collection sizes")
    p.add_argument("--backends", default=",".join(ALL_BACKENDS))
    p.add_argument("--k", type=int, default=1000)
    p.add_argument("--queries", type=int, default=300, help="queries per collection (SciFact test has 300)")
    p.add_argument("--threads", default="1,2", help="thread counts for the batch throughput")
    p.add_argument("--no-encoding", action="store_true", help="skip the latency with query encoding included")
    p.add_argument("--work", default=str(ROOT / "work" / "bench"))
    p.add_argument("--passes", type=int, default=3, help="timed passes; a query's latency is its fastest pass")
    p.add_argument("--batch-passes", type=int, default=3, help="timed batch runs; throughput of the fastest")
    p.add_argument("--seismic-max-docs", type=int, default=10_000,
                   help="skip Seismic above this collection size (its index build is slow here)")
    p.add_argument("--out", default=None, help="write the markdown table (and a .json beside it) here")
    args = p.parse_args(argv)

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    for b in backends:
        if b not in ALL_BACKENDS:
            p.error(f"unknown backend {b!r} (known: {', '.join(ALL_BACKENDS)})")
    # numba first (the reference the others are compared with), Lucene last (its JVM keeps its heap)
    backends = sorted(backends, key=lambda b: (b != "numba", b == "lucene"))
    os.environ.setdefault("SPLADE_ANSERINI_JVM_HEAP", "4g")
    threads_list = tuple(int(t) for t in args.threads.split(","))
    warm_numba()
    collections = [c.strip() for c in args.collections.split(",") if c.strip()]
    encoder = None
    if "scifact" in collections and not args.no_encoding:
        import torch

        from splade_anserini.encode.splade import SpladeEncoder

        torch.set_num_threads(1)  # single-threaded latency; and no OpenMP stragglers on a busy machine
        encoder = SpladeEncoder("splade-tiny")
    rows: list[dict] = []
    for c in collections:
        if c == "scifact":
            workloads = [scifact_workload(work)]
        elif c == "synthetic":
            workloads = [synthetic_workload(work, int(s), args.queries) for s in args.sizes.split(",") if s]
        else:
            p.error(f"unknown collection {c!r}")
        for w in workloads:
            w.queries = w.queries[:args.queries]
            if w.texts is not None:
                w.texts = w.texts[:args.queries]
            chosen = [b for b in backends if b != "seismic" or w.n_docs <= args.seismic_max_docs]
            gc.collect()
            bandwidth = memory_bandwidth()  # measured next to each workload: the machine may be shared
            print(f"memory bandwidth: read {bandwidth['read_gbs']:.1f} GB/s, copy {bandwidth['copy_gbs']:.1f} GB/s",
                  file=sys.stderr)
            for row in run_workload(w, chosen, args.k, bandwidth["read_gbs"], encoder, threads_list,
                                    warmup=min(20, len(w.queries)), passes=args.passes,
                                    batch_passes=args.batch_passes):
                row["bandwidth_gbs"] = bandwidth["read_gbs"]
                rows.append(row)
    md = table(rows)
    print(md)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(md + "\n")
        out.with_suffix(".json").write_text(json.dumps({"argv": sys.argv[1:], "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
