"""``bench.adapt_results``: the adaptation table's row of a pipeline's figures and an adapt folder's leakage."""
from __future__ import annotations

import json

from bench import adapt_results


def _figures(folder, dataset: str, ndcg: float, hybrid: float) -> None:
    record = {"scores": {"nDCG@10": ndcg}, "hybrid": {"scores": {"nDCG@10": hybrid}},
              "stats": {"avg_doc_nonzeros": 123.4, "flops": 5.678}}
    (folder / f"{dataset}-model.json").write_text(json.dumps(record))


def test_a_row_reads_both_pipelines_and_counts_the_leaked_queries(tmp_path):
    _figures(tmp_path, "scifact", 0.61234, 0.7)
    _figures(tmp_path, "cacm", 0.4, 0.51)
    adapt = tmp_path / "adapt"
    adapt.mkdir()
    # d1's query was removed from its text, d2's was not (a leak); d3 gave no query
    (adapt / "pq.corpus.jsonl").write_text("".join(json.dumps({"_id": d, "text": t}) + "\n" for d, t in [
        ("d1", "a body about protein folding in yeast cells"), ("d2", "Gene Therapy works: gene therapy in mice"),
        ("d3", "too short")]))
    (adapt / "pq.queries.tsv").write_text("q1\tthe title of d1\nq2\tgene   THERAPY in mice\n")
    (adapt / "pq.qrels.txt").write_text("q1 0 d1 1\nq2 0 d2 1\n")
    row = adapt_results.row("adapted", f"{tmp_path / 'model'}@{adapt}")
    assert row == ["adapted", "0.6123", "0.4000", "0.7000", "0.5100", "123", "5.68", "2", "1", "1"]
    assert len(row) == len(adapt_results.COLUMNS)
    assert adapt_results.row("untuned", str(tmp_path / "model"))[-3:] == ["-", "-", "-"]
