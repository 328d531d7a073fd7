"""BM25 through Anserini on a SciFact slice, and the negatives-mining command."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import run_python
from splade_anserini.data import read_corpus, read_qrels, read_topics


@pytest.fixture
def scifact_slice(data_dir, tmp_path):
    """10 test queries, their judged documents and the first 300 other documents."""
    sci = data_dir / "scifact"
    queries = read_topics(sci / "queries.test.tsv")
    qrels = read_qrels(sci / "qrels.test.txt")
    qids = [q for q in queries if q in qrels][:10]
    judged = {d for q in qids for d in qrels[q]}
    docs, others = [], 0
    for doc in read_corpus(sci / "corpus.jsonl"):
        if doc.docid in judged or others < 300:
            others += doc.docid not in judged
            docs.append({"_id": doc.docid, "title": "", "text": doc.text})
    (tmp_path / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (tmp_path / "queries.tsv").write_text("".join(f"{q}\t{queries[q]}\n" for q in qids))
    (tmp_path / "qrels.txt").write_text("".join(f"{q} 0 {d} {r}\n" for q in qids for d, r in qrels[q].items()))
    return tmp_path


@pytest.mark.jvm
def test_bm25_index_and_search_on_scifact_slice(scifact_slice):
    p = scifact_slice
    proc = run_python(
        "import json, ir_measures\n"
        "from splade_anserini.search.bm25 import build_bm25_index, bm25_search\n"
        "from splade_anserini.data import read_qrels\n"
        f"idx = build_bm25_index(r'{p}/corpus.jsonl', r'{p}/index')\n"
        f"again = build_bm25_index(r'{p}/corpus.jsonl', r'{p}/index')\n"
        f"run = bm25_search(idx, r'{p}/queries.tsv', k=20)\n"
        f"qrels = read_qrels(r'{p}/qrels.txt')\n"
        "ndcg = ir_measures.calc_aggregate([ir_measures.nDCG@10], qrels, {q: dict(h) for q, h in run.items()})\n"
        "print(json.dumps({'same': str(idx) == str(again), 'n': {q: len(h) for q, h in run.items()},\n"
        "                  'sorted': all(h == sorted(h, key=lambda x: -x[1]) for h in run.values()),\n"
        "                  'ndcg': list(ndcg.values())[0]}))")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["same"] and out["sorted"]
    assert len(out["n"]) == 10 and set(out["n"].values()) == {20}
    assert out["ndcg"] > 0.6  # BM25 is strong on SciFact (0.679 on the full corpus)
    assert not list(p.glob(".index.*"))  # no temporary left beside the index


@pytest.mark.jvm
def test_mine_negatives_cli(scifact_slice):
    p = scifact_slice
    proc = subprocess.run([sys.executable, "-m", "splade_anserini.train.mine_negatives", "--corpus", str(p / "corpus.jsonl"),
                           "--queries", str(p / "queries.tsv"), "--qrels", str(p / "qrels.txt"),
                           "--output", str(p / "neg.trec"), "--hits", "15"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "positives in the top 15" in proc.stdout
    lines = (p / "neg.trec").read_text().splitlines()
    assert len(lines) == 150 and lines[0].split()[1] == "Q0" and lines[0].split()[3] == "1"
    # qrels naming a document missing from the corpus: one-line error before any JVM work
    (p / "bad.txt").write_text("1 0 nope 1\n")
    bad = subprocess.run([sys.executable, "-m", "splade_anserini.train.mine_negatives", "--corpus", str(p / "corpus.jsonl"),
                          "--queries", str(p / "queries.tsv"), "--qrels", str(p / "bad.txt"),
                          "--output", str(p / "x.trec")], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and len(bad.stderr.strip().splitlines()) == 1
    assert "'nope'" in bad.stderr
