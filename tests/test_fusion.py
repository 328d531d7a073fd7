"""Run fusion (Pyserini's): min-max interpolation and reciprocal rank fusion, and the CLI."""
from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import ROOT
from splade_anserini.conversion.trec import read_ranked, write_run
from splade_anserini.search.fusion import fuse, fusion_weights

A = {"q1": [("d1", 10.0), ("d2", 8.0), ("d3", 2.0)], "q2": [("d9", 1.0)]}
B = {"q1": [("d3", 0.9), ("d4", 0.5), ("d1", 0.1)], "q3": [("d7", 4.0), ("d8", 3.0)]}


def minmax(run):
    out = {}
    for q, hits in run.items():
        lo, hi = min(s for _, s in hits), max(s for _, s in hits)
        out[q] = {d: (s - lo) / (hi - lo) if hi > lo else 1.0 for d, s in hits}
    return out


def test_interpolation_is_a_weighted_sum_of_min_max_scores():
    for alpha in (0.5, 0.3):
        fused = fuse([A, B], "interpolation", alpha=alpha)
        na, nb = minmax(A), minmax(B)
        for q in ("q1", "q2", "q3"):
            docs = set(na.get(q, {})) | set(nb.get(q, {}))
            expect = {d: alpha * na.get(q, {}).get(d, 0.0) + (1 - alpha) * nb.get(q, {}).get(d, 0.0) for d in docs}
            assert dict(fused[q]) == pytest.approx(expect)
            assert [s for _, s in fused[q]] == sorted((s for _, s in fused[q]), reverse=True)
    assert list(fuse([A, B])) == ["q1", "q2", "q3"]


def test_rrf_sums_reciprocal_ranks():
    fused = fuse([A, B], "rrf", rrf_k=60)
    assert dict(fused["q1"]) == pytest.approx({"d1": 1 / 61 + 1 / 63, "d2": 1 / 62, "d3": 1 / 63 + 1 / 61, "d4": 1 / 62})
    assert fused["q1"][:2] == [("d1", pytest.approx(1 / 61 + 1 / 63)), ("d3", pytest.approx(1 / 61 + 1 / 63))]
    assert dict(fused["q3"]) == pytest.approx({"d7": 1 / 61, "d8": 1 / 62})


def test_depth_and_k_cut_each_query():
    fused = fuse([A, B], "rrf", depth=1, k=2)
    assert set(dict(fused["q1"])) == {"d1", "d3"}
    assert len(fuse([A, B], k=1)["q1"]) == 1


def test_weights_for_many_runs():
    assert fusion_weights(3) == pytest.approx([1 / 3] * 3)
    assert fusion_weights(2, alpha=0.7) == pytest.approx([0.7, 0.3])
    with pytest.raises(ValueError, match="exactly two"):
        fusion_weights(3, alpha=0.5)
    fused = fuse([A, B, A], weights=[1, 2, 1])
    assert dict(fused["q1"])["d4"] == pytest.approx(2 * 0.5)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "splade_anserini.fusion", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_cli_writes_the_fused_run(tmp_path):
    write_run(tmp_path / "a.trec", A, tag="a")
    write_run(tmp_path / "b.trec", B, tag="b")
    proc = _cli("--runs", tmp_path / "a.trec", tmp_path / "b.trec", "--output", tmp_path / "h.trec", "--method", "rrf",
                "--union-topics")  # A and B cover different topics: fused over their union, with a warning
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith("warning: the runs cover different topics")
    assert "fused 2 runs (rrf, k=60)" in proc.stdout
    assert read_ranked(tmp_path / "h.trec") == {q: [(d, pytest.approx(s, abs=1e-6)) for d, s in h]
                                                for q, h in fuse([A, B], "rrf").items()}
    assert (tmp_path / "h.trec").read_text().split("\n")[0].endswith(" h")


def test_cli_bad_input(tmp_path):
    write_run(tmp_path / "a.trec", A, tag="a")
    (tmp_path / "bad.trec").write_text("q1 Q0 d1 1 1.0 t\nq1 Q0 d2 2 high t\n")
    proc = _cli("--runs", tmp_path / "a.trec", tmp_path / "bad.trec", "--output", tmp_path / "h.trec")
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {tmp_path / 'bad.trec'}:2: score 'high' is not a number"
    assert not (tmp_path / "h.trec").exists()
    proc = _cli("--runs", tmp_path / "a.trec", "--output", tmp_path / "h.trec")
    assert proc.returncode == 2 and "at least two" in proc.stderr
