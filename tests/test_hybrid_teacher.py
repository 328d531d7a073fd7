"""Hybrid teacher scores: a SPLADE model's run fused with BM25, on the model's own score scale."""
from __future__ import annotations

import subprocess
import sys

import pytest

from splade_anserini.data import read_qrels


def _mine(s, output, *extra):
    """mine-negatives in its own process (BM25 starts a JVM)."""
    args = [sys.executable, "-m", "splade_anserini.train.mine_negatives", "--corpus", str(s / "corpus.jsonl"),
            "--queries", str(s / "queries.tsv"), "--qrels", str(s / "qrels.txt"), "--hits", "20",
            "--output", str(output), *extra]
    proc = subprocess.run(args, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.jvm
def test_hybrid_teacher_fuses_the_model_run_with_bm25(scifact_train_slice, tmp_path):
    from splade_anserini.conversion.trec import read_ranked, read_run
    from splade_anserini.search.fusion import fuse
    from splade_anserini.train.data import read_scored_pairs
    from splade_anserini.train.hybrid_teacher import main

    s = scifact_train_slice
    _mine(s, s / "bm25.trec")
    _mine(s, s / "model.trec", "--model", "splade-tiny", "--max-length", "64")
    out = tmp_path / "teacher.trec"
    base = ["--model-run", str(s / "model.trec"), "--bm25-run", str(s / "bm25.trec"), "--qrels", str(s / "qrels.txt")]
    assert main(base + ["--output", str(out)]) == 0
    model, bm25, teacher = read_ranked(s / "model.trec"), read_ranked(s / "bm25.trec"), read_run(out)
    positives = {q: {d for d, r in docs.items() if r > 0} for q, docs in read_qrels(s / "qrels.txt").items()}
    fused = fuse([model, bm25], alpha=0.5, depth=None, k=None)
    reordered = 0
    for q, hits in model.items():
        scores = dict(hits)
        lo, hi = min(scores.values()) / 1e4, max(scores.values()) / 1e4
        assert set(teacher[q]) == set(scores) | positives[q]
        assert all(lo - 1e-6 <= v <= hi + 1e-6 for v in teacher[q].values())  # the model's own range, float units
        # the fusion's order over the model's documents (ties excepted)
        f = dict(fused[q])
        by_teacher = sorted(scores, key=lambda d: (-teacher[q][d], d))
        assert [round(f[d], 5) for d in by_teacher] == sorted((round(f[d], 5) for d in scores), reverse=True)
        if bm25[q][0][0] == hits[0][0]:  # first in both runs: the model's top score
            assert teacher[q][hits[0][0]] == pytest.approx(hi, abs=1e-6)
        for d in positives[q] - set(scores) - set(dict(bm25[q])):  # in neither run: the lowest
            assert teacher[q][d] == pytest.approx(lo, abs=1e-6)
        reordered += by_teacher != [d for d, _ in hits]
    assert reordered > 0  # BM25 changes the model's order somewhere
    assert read_scored_pairs(out) == teacher  # what the trainer reads as --teacher


def test_hybrid_teacher_refuses_bad_input(tmp_path, capsys):
    from splade_anserini.train.hybrid_teacher import main

    (tmp_path / "m.trec").write_text("1 Q0 a 1 30000 m\n1 Q0 b 2 20000 m\n2 Q0 a 1 10000 m\n")
    (tmp_path / "b.trec").write_text("3 Q0 b 1 12.5 bm25\n3 Q0 c 2 3.0 bm25\n")
    args = ["--model-run", str(tmp_path / "m.trec"), "--bm25-run", str(tmp_path / "b.trec")]
    for extra, problem in ((["--alpha", "1.5"], "alpha"), ([], "no query in common")):
        capsys.readouterr()
        assert main(args + extra + ["--output", str(tmp_path / "t.trec")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and problem in err[0]
        assert not (tmp_path / "t.trec").exists()
    # a query BM25 finds nothing for (absent from its run): the model's own order and scores, with a warning
    (tmp_path / "b.trec").write_text("1 Q0 b 1 12.5 bm25\n1 Q0 c 2 3.0 bm25\n")
    assert main(args + ["--output", str(tmp_path / "t.trec")]) == 0
    assert "1 of the model run's queries have no BM25 hit" in capsys.readouterr().err
    lines = [line.split() for line in (tmp_path / "t.trec").read_text().splitlines()]
    assert [(q, d, float(v)) for q, _, d, _, v, _ in lines if q == "2"] == [("2", "a", 1.0)]
    (tmp_path / "m.trec").write_text("1 Q0 a 1 30000 m\n1 Q0 b 2 20000 m\n1 Q0 d 3 10000 m\n")
    (tmp_path / "b.trec").write_text("1 Q0 b 1 12.5 bm25\n1 Q0 d 2 6.0 bm25\n1 Q0 c 3 3.0 bm25\n")
    assert main(args + ["--output", str(tmp_path / "t.trec")]) == 0
    lines = [line.split() for line in (tmp_path / "t.trec").read_text().splitlines()]
    # min-max: model a 1, b 0.5, d 0; BM25 b 1, d 0.3158, c 0 -> fused b 0.75, a 0.5, d 0.158, mapped onto
    # the model's range [1.0, 3.0]: BM25 lifts b above a
    assert [(d, round(float(v), 4)) for _, _, d, _, v, _ in lines] == [("b", 2.5), ("a", 2.0), ("d", 1.3158)]
