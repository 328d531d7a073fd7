"""Peer libraries the latency harness times (``bench/latency.py``) on our postings: splade-index, bm25s,
PISA (through ``pyterrier_pisa``'s binding) and Seismic."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import synthetic
from bench.latency_backends import Backend
from bench.latency_workloads import Workload, dir_size, timed_json
from splade_anserini.index.numba_index import NumbaIndex


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

        meta = timed_json(w.workdir / "pisa.build.json", build)
        self._prepare(path)
        self.queries = [(i, {t: float(v) for t, v in q.items()}) for i, q in enumerate(w.queries)]
        self.build_info = {"seconds": meta["seconds"], "bytes": dir_size(path),
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

        meta = timed_json(w.workdir / "seismic.build.json", build)
        self.index = seismic.SeismicIndex.load(str(path / "index.index.seismic"))
        stype = seismic.get_seismic_string()
        self.queries = [(np.array(list(q), dtype=stype), np.array(list(q.values()), dtype=np.float32))
                        for q in w.queries]
        self.query_cut, self.heap_factor = query_cut, heap_factor
        self.build_info = {"seconds": meta["seconds"], "bytes": dir_size(path),
                           "note": f"n_postings={n_postings}, query_cut={query_cut}, heap_factor={heap_factor}"}

    def search(self, i, k):
        comps, vals = self.queries[i]
        res = self.index.search("q", comps, vals, k, self.query_cut, self.heap_factor)
        return [r[2] for r in res], [int(round(r[1])) for r in res]

    def batch(self, k, threads):
        ids = np.array([str(i) for i in range(len(self.queries))], dtype=self.seismic.get_seismic_string())
        self.index.batch_search(ids, [c for c, _ in self.queries], [v for _, v in self.queries], k,
                                self.query_cut, self.heap_factor, num_threads=threads)

