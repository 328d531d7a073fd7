"""TREC run files: ranking, atomic writing, validation with one-line errors."""
from __future__ import annotations

import pytest

from splade_anserini.conversion.errors import InputError
from splade_anserini.conversion.trec import rank_hits, read_ranked, read_run, write_run


def test_write_then_read_roundtrip(tmp_path):
    path = tmp_path / "runs" / "r.trec"
    n = write_run(path, {"q2": [("d2", 5.5), ("d1", 3.0)], "q1": [("d9", 1.0)]}, tag="t")
    assert n == 3
    assert path.read_text().splitlines() == [
        "q2 Q0 d2 1 5.500000 t",
        "q2 Q0 d1 2 3.000000 t",
        "q1 Q0 d9 1 1.000000 t",
    ]
    assert read_run(path) == {"q2": {"d2": 5.5, "d1": 3.0}, "q1": {"d9": 1.0}}
    assert read_ranked(path)["q2"] == [("d2", 5.5), ("d1", 3.0)]
    assert not list(tmp_path.glob("runs/.*"))  # no temporary file left behind


def test_ties_break_by_docid_and_cut_after_ranking(tmp_path):
    hits = [("d3", 2.0), ("d10", 2.0), ("d1", 2.0), ("d0", 1.0), ("d5", 3.0)]
    assert rank_hits(hits) == [("d5", 3.0), ("d1", 2.0), ("d10", 2.0), ("d3", 2.0), ("d0", 1.0)]
    assert rank_hits(hits, 3) == [("d5", 3.0), ("d1", 2.0), ("d10", 2.0)]
    write_run(tmp_path / "r.trec", {"q": rank_hits(hits)}, k=2)
    assert [line.split()[2] for line in (tmp_path / "r.trec").read_text().splitlines()] == ["d5", "d1"]


def test_writer_keeps_the_backends_order_and_refuses_an_unranked_run(tmp_path):
    path = tmp_path / "r.trec"
    ties = [("d9", 2.0), ("d1", 2.0), ("d0", 1)]  # a backend's own tie order is written as it comes
    write_run(path, {"q": ties}, tag="t")
    assert [line.split()[2:4] for line in path.read_text().splitlines()] == [["d9", "1"], ["d1", "2"], ["d0", "3"]]
    assert read_ranked(path, as_written=True)["q"] == [("d9", 2.0), ("d1", 2.0), ("d0", 1.0)]
    assert read_ranked(path)["q"] == [("d1", 2.0), ("d9", 2.0), ("d0", 1.0)]
    with pytest.raises(ValueError, match="hit 2 .*scores above hit 1"):
        write_run(tmp_path / "u.trec", {"q": [("d1", 3.0), ("d2", 5.5)]})
    assert not list(tmp_path.glob("*u.trec*"))


def test_failed_write_leaves_previous_file(tmp_path):
    path = tmp_path / "r.trec"
    write_run(path, {"q": [("d", 1.0)]})
    with pytest.raises(ValueError, match="whitespace"):
        write_run(path, {"q": [("bad doc", 1.0)]})
    assert path.read_text() == "q Q0 d 1 1.000000 splade-anserini\n"


@pytest.mark.parametrize("line, problem", [
    ("q1 Q0 d1 1 2.0", "expected 6 columns"),
    ("q1 Q0 d1 1 2.0 tag extra", "expected 6 columns"),
    ("q1 Q0 d1 1 high tag", "score 'high' is not a number"),
    ("q1 Q0 d1 1 nan tag", "not finite"),
    ("q1 Q0 d1 first 2.0 tag", "rank 'first' is not an integer"),
    ("q1 Q0 d0 1 3.0 tag", "duplicate document 'd0' for query 'q1'"),
])
def test_malformed_run_one_line_error(tmp_path, line, problem):
    path = tmp_path / "bad.trec"
    path.write_text(f"q1 Q0 d0 1 3.0 tag\n\nq2 Q0 d0 1 3.0 tag\n{line}\n")
    with pytest.raises(InputError) as err:
        read_run(path)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}:4: ") and problem in msg


def test_same_docid_in_two_topics_is_fine(tmp_path):
    path = tmp_path / "r.trec"
    path.write_text("1 Q0 d 1 2 t\n2 Q0 d 1 2 t\n")
    assert read_run(path) == {"1": {"d": 2.0}, "2": {"d": 2.0}}
