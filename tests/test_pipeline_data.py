"""The pipeline on any dataset folder (BEIR or converted layout) or named files, its stamps, and its bad input."""
from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from beir_copy import make_beir_copy
from conftest import ROOT

N_QUERIES = 10
N_DOCS = 60


@pytest.fixture(scope="module")
def slices(tmp_path_factory, data_dir):
    """A real SciFact slice in the converted layout and the same slice in the native BEIR layout."""
    from splade_anserini.conversion.topics import read_topics
    from splade_anserini.conversion.trec import read_qrels

    src = data_dir / "scifact"
    root = tmp_path_factory.mktemp("datasets")
    conv = root / "sci-converted"
    conv.mkdir()
    qrels = read_qrels(src / "qrels.test.txt")
    topics = read_topics(src / "queries.test.tsv")
    qids = list(qrels)[:N_QUERIES]
    wanted = {d for q in qids for d in qrels[q]}
    lines = (src / "corpus.jsonl").read_text().splitlines()
    keep = [x for x in lines if json.loads(x)["_id"] in wanted]
    keep += list(itertools.islice((x for x in lines if json.loads(x)["_id"] not in wanted), N_DOCS - len(keep)))
    (conv / "corpus.jsonl").write_text("\n".join(keep) + "\n")
    unjudged = read_topics(src / "queries.train.tsv")
    extra = list(unjudged)[:2]                          # unjudged topics are not searched
    topics.update({q: unjudged[q] for q in extra})
    (conv / "queries.test.tsv").write_text("".join(f"{q}\t{topics[q]}\n" for q in qids + extra))
    (conv / "qrels.test.txt").write_text("".join(f"{q} 0 {d} {r}\n" for q in qids for d, r in qrels[q].items()))
    beir = make_beir_copy(conv, root / "sci-beir")
    return conv, beir


def pipeline(*args, cwd=ROOT, timeout=900):
    return subprocess.run([sys.executable, "-m", "splade_anserini.pipeline", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def _ranked(run: Path) -> list[tuple]:
    return [tuple(line.split()[:5]) for line in run.read_text().splitlines()]


@pytest.mark.jvm
@pytest.mark.slow
def test_beir_folder_and_named_files_give_the_same_run(slices, tmp_path):
    conv, beir = slices
    a = pipeline("--corpus", conv / "corpus.jsonl", "--topics", conv / "queries.test.tsv", "--qrels",
                 conv / "qrels.test.txt", "--no-bm25", "--threads", "1", "--work-dir", tmp_path / "wa",
                 "--runs-dir", tmp_path / "ra")
    assert a.returncode == 0, a.stderr
    b = pipeline("--data-dir", beir, "--split", "test", "--fusion", "rrf", "--threads", "1",
                 "--work-dir", tmp_path / "wb", "--runs-dir", tmp_path / "rb")
    assert b.returncode == 0, b.stderr
    line = {p.stdout.splitlines()[i].split("(")[0] for p in (a, b) for i, x in enumerate(p.stdout.splitlines())
            if x.startswith("splade-tiny: nDCG@10")}
    assert len(line) == 1                                   # the same figures
    run_a, run_b = tmp_path / "ra" / "sci-converted-splade-tiny.trec", tmp_path / "rb" / "sci-beir-splade-tiny.trec"
    assert _ranked(run_a) == _ranked(run_b)
    assert len({r[0] for r in _ranked(run_a)}) == N_QUERIES  # judged topics only
    assert "searching those" in a.stdout
    hybrid = [x for x in b.stdout.splitlines() if x.startswith("hybrid (rrf, k=60): nDCG@10 ")]
    assert len(hybrid) == 1 and (tmp_path / "rb" / "sci-beir-splade-tiny-hybrid-rrf.trec").is_file()
    assert any(x.startswith("BM25 (k1=0.9 b=0.4): nDCG@10 ") for x in b.stdout.splitlines())
    again = pipeline("--data-dir", beir, "--fusion", "rrf", "--threads", "1", "--work-dir", tmp_path / "wb",
                     "--runs-dir", tmp_path / "rb")
    assert again.returncode == 0, again.stderr
    reused = [x.split()[0] for x in again.stdout.splitlines() if " reused " in x]
    assert reused == ["check", "encode", "index", "search", "bm25"]
    assert [x for x in again.stdout.splitlines() if x.startswith("hybrid")] == hybrid


def _bad(tmp_path, *args):
    proc = pipeline(*args, "--work-dir", tmp_path / "work", "--runs-dir", tmp_path / "runs", timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert not (tmp_path / "work").exists() and not (tmp_path / "runs").exists()   # nothing written
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def test_bad_input_is_one_line_and_writes_nothing(slices, tmp_path):
    conv, beir = slices
    qrels = tmp_path / "qrels.tsv"
    base = (beir / "qrels" / "test.tsv").read_text()
    qrels.write_text(base + "nope\t4983\t1\n")
    n = len(base.splitlines()) + 1
    msg = _bad(tmp_path, "--data-dir", beir, "--qrels", qrels)
    assert msg.startswith(f"error: {qrels}:{n}: query 'nope' is not in the topics {beir / 'queries.jsonl'}")
    first = base.splitlines()[1].split("\t")[0]
    qrels.write_text(base + f"{first}\tno-such-doc\t1\n")
    msg = _bad(tmp_path, "--data-dir", beir, "--qrels", qrels)
    assert msg == (f"error: {qrels}:{n}: document 'no-such-doc' (query '{first}') is not in the corpus "
                   f"{beir / 'corpus.jsonl'}")
    msg = _bad(tmp_path, "--data-dir", beir, "--split", "dev")
    assert msg == f"error: {beir}: no qrels for split 'dev' (this folder has test; choose one with --split)"
    msg = _bad(tmp_path, "--data-dir", beir, "--passage-length", "128", "--passage-stride", "200")
    assert "--passage-stride 200 must be between 1 and --passage-length 128" in msg
    msg = _bad(tmp_path, "--data-dir", tmp_path / "missing")
    assert msg.endswith("missing: no such dataset folder")


def test_stamps_run_reuses_a_stage_with_the_same_parameters(tmp_path):
    from splade_anserini.pipeline import Stamps

    calls = []
    out = tmp_path / "out.txt"

    def work():
        calls.append(1)
        out.write_text("x")
        return "did it", {"figure": 3}

    s = Stamps(tmp_path / "stamps")
    key = s.run("stage", {"a": 1}, [out], work)
    assert s.run("stage", {"a": 1}, [out], work) == key and len(calls) == 1
    assert [(st.name, st.reused, st.note) for st in s.stages] == [("stage", False, "did it"), ("stage", True, "did it")]
    assert s.load("stage")["figure"] == 3
    s.run("stage", {"a": 2}, [out], work)                    # other parameters: redone
    out.unlink()
    s.run("stage", {"a": 2}, [out], work)                    # output gone: redone
    s.run("stage", {"a": 2}, [out], work, ready=lambda: False)
    Stamps(tmp_path / "stamps", force=True).run("stage", {"a": 2}, [out], lambda: "forced")
    assert len(calls) == 4
