"""Shared fixtures: the real data under ../shared/data and the splade-tiny encoder (loaded once)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from splade_anserini.data import DATA_ENV, data_root

ROOT = Path(__file__).resolve().parent.parent
# Named datasets are found relative to the current directory: pin the root for tests that change it.
os.environ.setdefault(DATA_ENV, str(data_root()))
# A shell that starts the suite in the background ignores Ctrl-C in it, and ignoring is inherited by every
# child process: the tests that press Ctrl-C on a child need the children to start with the default.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Modules whose subject is the package's own logic (file formats, outputs and their records, locks, resumption,
# readers, fusion, the Numba kernels, the docs' tables): nothing in them changes with the Pyserini, transformers or torch
# generation, so CI's second leg (Python 3.12, pyserini 2.x) leaves them out, as it does single tests marked one_leg.
ONE_LEG_MODULES = frozenset({
    "test_adapt", "test_adapt_results", "test_docs_render", "test_evaluate", "test_export_ciff", "test_export_milvus",
    "test_export_opensearch", "test_fusion", "test_hybrid_teacher", "test_index_faults", "test_numba_index",
    "test_output_records",
    "test_outputs", "test_pipeline_data", "test_pseudo_queries", "test_reader_properties", "test_readers",
    "test_reliability", "test_train_data", "test_train_reproduce_results", "test_trec",
})


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if item.module is not None and item.module.__name__.rsplit(".", 1)[-1] in ONE_LEG_MODULES:
            item.add_marker(pytest.mark.one_leg)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    root = data_root()
    if not (root / "scifact" / "corpus.jsonl").is_file():
        pytest.skip(f"real test data not found at {root} (set {DATA_ENV} to the shared data folder)")
    return root


@pytest.fixture
def scifact_train_slice(data_dir, tmp_path):
    """200 SciFact documents holding the positives of 6 training queries."""
    import json

    from splade_anserini.data import read_qrels, read_topics

    sci = data_dir / "scifact"
    qrels = read_qrels(sci / "qrels.train.txt")
    topics = read_topics(sci / "queries.train.tsv")
    qids = [q for q in topics if q in qrels][:6]
    wanted = {d for q in qids for d in qrels[q]}
    lines = []
    with open(sci / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            doc = json.loads(line)
            if doc["_id"] in wanted or len(lines) < 200 - len(wanted):
                lines.append(line)
    (tmp_path / "corpus.jsonl").write_text("".join(lines), encoding="utf-8")
    (tmp_path / "queries.tsv").write_text("".join(f"{q}\t{topics[q]}\n" for q in qids), encoding="utf-8")
    (tmp_path / "qrels.txt").write_text("".join(f"{q} 0 {d} {r}\n" for q in qids for d, r in qrels[q].items()))
    return tmp_path


@pytest.fixture(scope="session")
def encoder():
    from splade_anserini.encode.splade import SpladeEncoder

    return SpladeEncoder("splade-tiny")


def run_python(code: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``python -c code`` in a fresh interpreter (a JVM can start only once per process)."""
    full_env = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            full_env.pop(key, None)
        else:
            full_env[key] = value
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=ROOT)
