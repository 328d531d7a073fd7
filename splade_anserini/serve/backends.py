"""What a served index searches with: the Numba index (memory-mapped, shared read-only by every request
thread) or Anserini's ``SimpleImpactSearcher`` on a Lucene impact index (called from one thread
attached to the JVM once, and detached before it ends, as pyjnius requires).

Both answer ``search(vector, k) -> [(docid, score)]`` ranked as ``splade-anserini search`` ranks (score
descending, docid ascending), and ``impacts(docids, tokens) -> {docid: {token: impact}}``: the
documents' integer impacts read from the index itself (Numba: the postings arrays; Lucene: the term
frequencies of the ``contents`` field, which an impact index stores as the impacts), so that a hit's
score is explained by the index that scored it.
"""
from __future__ import annotations

import asyncio
import bisect
import os
import queue
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from splade_anserini.conversion.trec import Hits

BACKENDS = ("numba", "lucene")
#: Anserini's field of the document's (impact) tokens.
CONTENTS = "contents"


def detect_backend(index: str | os.PathLike) -> str | None:
    """``numba`` (``header.json``), ``lucene`` (a ``segments_N`` file) or ``None``."""
    path = Path(index)
    if (path / "header.json").is_file():
        return "numba"
    if any(path.glob("segments_*")):
        return "lucene"
    return None


class NumbaBackend:
    """The Numba index, memory-mapped: its kernels release the GIL and keep per-thread scratch, so
    request threads search it at once without a lock."""

    name = "numba"
    serial = False

    def __init__(self, index: str | os.PathLike):
        from splade_anserini.index.numba_index import NumbaIndex

        self.index = NumbaIndex.load(os.fspath(index), mmap=True)
        self.n_docs = self.index.n_docs

    def search(self, vector: Mapping[str, int], k: int) -> Hits:
        return [(d, float(s)) for d, s in self.index.search(vector, k)]

    def impacts(self, docids: Sequence[str], tokens: Sequence[str]) -> dict[str, dict[str, int]]:
        """Each document's impact for each token (0 omitted), from the postings arrays."""
        idx, out = self.index, {d: {} for d in docids}
        internal = {d: bisect.bisect_left(idx.docids, d) for d in docids}  # internal ids are the docids' sorted order
        mask = (1 << idx.block_bits) - 1
        for token in tokens:
            t = idx._term_index.get(token)
            if t is None:
                continue
            for docid, i in internal.items():
                block, local = i >> idx.block_bits, i & mask
                lo, hi = int(idx.offsets[t, block]), int(idx.offsets[t, block + 1])
                at = lo + int(np.searchsorted(idx.docs[lo:hi], local))
                if at < hi and int(idx.docs[at]) == local:
                    out[docid][token] = int(idx.impacts[at])
        return out

    async def run(self, fn: Callable, *args):
        """``fn(*args)`` on a worker thread of the event loop's pool."""
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(fn, *args)

    def close(self) -> None:
        pass


class JavaThreads:
    """A fixed pool of threads for JVM calls: each is attached on its first call and detaches itself
    (``jnius.detach``) when :meth:`close` stops it, so the JVM never holds a dead thread."""

    def __init__(self, n: int):
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._work, name=f"lucene-{i}", daemon=True) for i in range(max(1, n))]
        for thread in self._threads:
            thread.start()

    def _work(self) -> None:
        try:
            while (job := self._jobs.get()) is not None:
                future, fn, args = job
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(fn(*args))
                    except BaseException as exc:  # noqa: BLE001 - handed to the caller
                        future.set_exception(exc)
        finally:
            import jnius

            jnius.detach()

    def submit(self, fn: Callable, *args) -> Future:
        future: Future = Future()
        self._jobs.put((future, fn, args))
        return future

    def close(self, timeout: float = 10.0) -> None:
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join(timeout)


class LuceneBackend:
    """Anserini's ``SimpleImpactSearcher`` (every query token kept, as ``search`` does) and an
    ``IndexReader`` for the impacts, called from one thread attached to the JVM. One, because pyjnius
    binds a Java method to its object when the attribute is read, on a method object its class shares:
    Python threads calling Java at once can call a method on another thread's object (measured: a
    ``ConcurrentModificationException`` in ``SimpleImpactSearcher.search`` a few times in 3,000
    searches from 16 threads, each building its own query map). Query encoding, the costly part of a
    request, stays on the request threads."""

    name = "lucene"
    serial = True

    def __init__(self, index: str | os.PathLike):
        from splade_anserini.search.impact_searcher import ImpactSearcher

        self.pool = JavaThreads(1)
        self.searcher = self.pool.submit(ImpactSearcher, index).result()
        self.n_docs = self.pool.submit(self._open_reader, os.fspath(index)).result()

    def _open_reader(self, index: str) -> int:
        from splade_anserini import java

        self._utils = java.autoclass("io.anserini.index.IndexReaderUtils")
        self._reader = self._utils.getReader(index)
        self._terms = java.autoclass("org.apache.lucene.index.MultiTerms").getTerms(self._reader, CONTENTS)
        self._BytesRef = java.autoclass("org.apache.lucene.util.BytesRef")
        self._freqs = int(java.autoclass("org.apache.lucene.index.PostingsEnum").FREQS)
        return int(self._reader.numDocs())

    def search(self, vector: Mapping[str, int], k: int) -> Hits:
        return self.searcher.search(vector, k)

    def impacts(self, docids: Sequence[str], tokens: Sequence[str]) -> dict[str, dict[str, int]]:
        """Each document's impact for each token: the term's frequency in the document."""
        out: dict[str, dict[str, int]] = {d: {} for d in docids}
        lucene = sorted((int(self._utils.convertDocidToLuceneDocid(self._reader, d)), d) for d in docids)
        lucene = [(i, d) for i, d in lucene if i >= 0]
        terms = self._terms.iterator() if self._terms is not None else None
        for token in tokens if terms is not None else ():
            if not terms.seekExact(self._BytesRef(token.encode("utf-8"))):
                continue
            postings = terms.postings(None, self._freqs)
            for internal, docid in lucene:  # ascending: one forward pass over the postings
                at = postings.docID() if postings.docID() >= internal else postings.advance(internal)
                if at == internal:
                    out[docid][token] = int(postings.freq())
                elif at == 2147483647:  # NO_MORE_DOCS
                    break
        return out

    async def run(self, fn: Callable, *args):
        """``fn(*args)`` on a thread attached to the JVM."""
        return await asyncio.wrap_future(self.pool.submit(fn, *args))

    def close(self) -> None:
        """Close the searcher and stop the thread (once; later calls do nothing)."""
        pool, self.pool = self.pool, None
        if pool is None:
            return
        try:
            pool.submit(self.searcher.close).result(timeout=10)
        finally:
            pool.close()


def open_backend(kind: str, index: str | os.PathLike):
    """The backend ``kind`` over ``index``."""
    return NumbaBackend(index) if kind == "numba" else LuceneBackend(index)
