"""Fault injection for ``python -m splade_anserini.index``: killed (SIGKILL) at random moments, then the
same command again gives the index of an uninterrupted run and leaves nothing behind, on both backends."""
from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT
from splade_anserini.conversion.jsonvector import VectorDoc, read_jsonvector, write_jsonvector
from splade_anserini.conversion.quantize import guard_empty

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def vectors(data_dir, encoder, tmp_path_factory) -> Path:
    """splade-tiny vectors of 100 SciFact documents in two files."""
    from splade_anserini.data import read_corpus

    docs = [d for _, d in zip(range(100), read_corpus(data_dir / "scifact" / "corpus.jsonl"))]
    vecs = encoder.encode_documents([d.text[:200] for d in docs], batch_size=32)
    folder = tmp_path_factory.mktemp("vectors") / "vectors"
    folder.mkdir()
    for k, part in enumerate((slice(0, 50), slice(50, None))):
        write_jsonvector(folder / f"part-{k:05d}.jsonl", (VectorDoc(d.docid, guard_empty(encoder.to_impacts(v))[0])
                                                          for d, v in zip(docs[part], vecs[part])))
    return folder


def command(vectors: Path, index: Path, backend: str) -> list[str]:
    return [sys.executable, "-m", "splade_anserini.index", "--input", str(vectors), "--index", str(index),
            "--backend", backend, "--threads", "2", "--overwrite"]


def run(cmd) -> float:
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return time.monotonic() - start


def lucene_contents(index: Path, queries: list[dict[str, int]]) -> list:
    """Every query's full ranking (all documents that score): equal iff the postings are."""
    from splade_anserini.evaluate.parity import lucene_hits

    found = lucene_hits(index, {str(i): q for i, q in enumerate(queries)}, k=1000)
    return [found[str(i)] for i in range(len(queries))]


def numba_bytes(index: Path) -> dict[str, bytes]:
    """The index's files; its marker without the folder identity it records (each build: a new folder)."""
    from splade_anserini import outputs

    def content(p: Path) -> bytes:
        return (repr(sorted((k, v) for k, v in outputs.read_meta(p).items() if k != "folder")).encode()
                if p.name == outputs.MARKER else p.read_bytes())

    return {p.name: content(p) for p in sorted(index.iterdir())}


@pytest.mark.parametrize("backend", ["numba", pytest.param("lucene", marks=pytest.mark.jvm)])
def test_killed_index_build_then_the_same_command(backend, vectors, tmp_path):
    reference = tmp_path / "reference"
    seconds = run(command(vectors, reference, backend))
    queries = [dict(list(d.vector.items())[:8]) for d in list(read_jsonvector(vectors))[::10]]
    expected = lucene_contents(reference, queries) if backend == "lucene" else numba_bytes(reference)
    rng = random.Random(f"kill-{backend}")
    target = tmp_path / "out" / "index"
    target.parent.mkdir()
    for attempt, (lo, hi) in enumerate(((0.1, 0.5), (0.5, 1.0), (0.8, 1.1))):
        delay = seconds * rng.uniform(lo, hi)
        proc = subprocess.Popen(command(vectors, target, backend), cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.kill()
        proc.wait()
        run(command(vectors, target, backend))  # the same command again
        got = lucene_contents(target, queries) if backend == "lucene" else numba_bytes(target)
        if backend == "lucene":
            assert got == expected, f"attempt {attempt}: killed after {delay:.1f} s"
        else:
            assert got.keys() == expected.keys() and got == expected, f"attempt {attempt}: killed after {delay:.1f} s"
        assert sorted(p.name for p in target.parent.iterdir()) == ["index"], f"leftovers after attempt {attempt}"
