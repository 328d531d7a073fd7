"""ir-measures evaluation CLI, topic mismatch warnings, malformed runs, sparsity and FLOPS."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from conftest import ROOT
from splade_anserini.conversion.jsonvector import VectorDoc, write_jsonvector
from splade_anserini.conversion.topics import write_tsvint
from splade_anserini.evaluate import measures as evaluate
from splade_anserini.evaluate import stats

QRELS = "1 0 d1 1\n1 0 d2 0\n2 Q0 d3 2\n3 0 d4 1\n"
RUN = ("1 Q0 d9 1 9.0 r\n1 Q0 d1 2 8.0 r\n1 Q0 d2 3 7.0 r\n"
       "2 Q0 d3 1 5.0 r\n"
       "3 Q0 d8 1 5.0 r\n3 Q0 d4 2 4.0 r\n")


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "splade_anserini.evaluate", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)


@pytest.fixture
def files(tmp_path):
    (tmp_path / "qrels.txt").write_text(QRELS)
    (tmp_path / "run.trec").write_text(RUN)
    return tmp_path


def test_scores_match_hand_computation(files):
    res = evaluate.evaluate_files(files / "qrels.txt", [files / "run.trec"], ["RR@10", "R@1", "nDCG@10"])[0]
    assert res.scores["RR@10"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    assert res.scores["R@1"] == pytest.approx(1 / 3)
    ndcg_q1 = (1 / math.log2(3)) / 1.0
    ndcg_q3 = (1 / math.log2(3)) / 1.0
    assert res.scores["nDCG@10"] == pytest.approx((ndcg_q1 + 1 + ndcg_q3) / 3)
    assert res.warning() is None


def test_cli_table_json_and_any_measure(files):
    out = files / "eval" / "scores.json"
    proc = cli("--qrels", str(files / "qrels.txt"), str(files / "run.trec"), str(files / "run.trec"),
               "--measures", "nDCG@10", "P@1", "AP", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    header, *rows = proc.stdout.strip().splitlines()
    assert header.split() == ["run", "nDCG@10", "P@1", "AP"]
    assert len(rows) == 2
    payload = json.loads(out.read_text())
    scores = payload["runs"][str(files / "run.trec")]["scores"]
    assert scores["P@1"] == pytest.approx(1 / 3)
    assert proc.stderr == ""


def test_default_measures(files):
    proc = cli("--qrels", str(files / "qrels.txt"), str(files / "run.trec"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].split() == ["run", "nDCG@10", "RR@10", "R@100", "R@1000"]


def test_topic_mismatch_warns(files):
    (files / "partial.trec").write_text("1 Q0 d1 1 9.0 r\n7 Q0 d1 1 9.0 r\n")
    proc = cli("--qrels", str(files / "qrels.txt"), str(files / "partial.trec"), "--measures", "R@10")
    assert proc.returncode == 0, proc.stderr
    warning = proc.stderr.strip()
    assert warning.count("\n") == 0 and warning.startswith("warning:")
    assert "2 of 3 qrels topics have no results" in warning and "count as 0" in warning
    assert "1 run topics have no qrels" in warning
    # missing qrels topics count as 0: R@10 = (1 + 0 + 0) / 3
    assert float(proc.stdout.splitlines()[1].split()[1]) == pytest.approx(1 / 3, abs=1e-4)


@pytest.mark.parametrize("bad_line, problem", [
    ("2 Q0 d5 2 4.0", "expected 6 columns"),
    ("2 Q0 d5 2 four r", "score 'four' is not a number"),
    ("2 Q0 d3 2 4.0 r", "duplicate document 'd3' for query '2'"),
])
def test_malformed_run_is_rejected_with_one_line(files, bad_line, problem):
    bad = files / "bad.trec"
    bad.write_text(RUN.replace("2 Q0 d3 1 5.0 r\n", f"2 Q0 d3 1 5.0 r\n{bad_line}\n"))
    proc = cli("--qrels", str(files / "qrels.txt"), str(files / "run.trec"), str(bad))
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: {bad}:5: ") and problem in lines[0]


def test_unknown_measure_is_an_error(files):
    proc = cli("--qrels", str(files / "qrels.txt"), str(files / "run.trec"), "--measures", "NotAMeasure@3")
    assert proc.returncode == 2 and "NotAMeasure@3" in proc.stderr


def test_flops_and_sparsity_by_hand():
    docs = [{"a": 3, "b": 1}, {"a": 2}, {"c": 5, "d": 0}, {"a": 1, "c": 1}]
    queries = [{"a": 10}, {"a": 1, "c": 2, "z": 4}]
    st = stats.sparsity_stats(docs, queries)
    # p(d): a 3/4, b 1/4, c 2/4 ; p(q): a 2/2, c 1/2, z 1/2
    assert st.flops == pytest.approx(1.0 * 0.75 + 0.5 * 0.5 + 0.5 * 0.0)
    assert st.avg_doc_nonzeros == pytest.approx((2 + 1 + 1 + 2) / 4)  # zero weights are not active
    assert st.avg_query_nonzeros == pytest.approx((1 + 3) / 2)
    assert (st.documents, st.queries, st.doc_vocabulary, st.query_vocabulary) == (4, 2, 3, 3)


def test_stats_cli_and_evaluate_flops(files):
    (files / "vec").mkdir()
    write_jsonvector(files / "vec" / "part-0.jsonl", [VectorDoc("d1", {"a": 3, "b": 1}), VectorDoc("d2", {"a": 2})])
    write_tsvint(files / "q.tsv", [("1", {"a": 2}), ("2", {"b": 1, "zz": 3})])
    proc = subprocess.run([sys.executable, "-m", "splade_anserini.stats", "--vectors", str(files / "vec"),
                           "--queries", str(files / "q.tsv"), "--json", str(files / "st.json")],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "FLOPS = 0.7500" in proc.stdout  # p(q): a 1/2, b 1/2, zz 1/2; p(d): a 1, b 1/2
    assert json.loads((files / "st.json").read_text())["flops"] == pytest.approx(0.5 * 1 + 0.5 * 0.5)
    proc = cli("--qrels", str(files / "qrels.txt"), str(files / "run.trec"), "--vectors", str(files / "vec"),
               "--query-vectors", str(files / "q.tsv"))
    assert proc.returncode == 0, proc.stderr
    assert "FLOPS = 0.7500" in proc.stdout and "1.5 non-zeros per document" in proc.stdout
