"""Long documents as passages (docid#k windows), MaxP aggregation, and encode_corpus's passage and launcher inputs."""
from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ROOT
from splade_anserini.conversion.trec import max_passage, rank_hits
from splade_anserini.encode.passages import check_passage_args, split_documents, windows


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from splade_anserini.models import resolve_model

    return AutoTokenizer.from_pretrained(resolve_model("splade-tiny"))


@pytest.fixture(scope="module")
def docs(data_dir):
    from splade_anserini.data import read_corpus

    return list(itertools.islice(read_corpus(data_dir / "scifact" / "corpus.jsonl"), 40))


def test_passage_arguments():
    check_passage_args(None, None)
    check_passage_args(256, 128)
    check_passage_args(256, 256)
    with pytest.raises(ValueError, match="--passage-stride 300 must be between 1 and --passage-length 256"):
        check_passage_args(256, 300)
    with pytest.raises(ValueError, match="needs --passage-length"):
        check_passage_args(None, 128)


@settings(max_examples=200, deadline=None)
@given(words=st.lists(st.integers(1, 4), max_size=120), size=st.integers(4, 40), data=st.data())
def test_property_windows_cover_the_body_and_start_at_words(words, size, data):
    word_ids = [w for w, n in enumerate(words) for _ in range(n)]
    stride = data.draw(st.integers(1, size))
    spans = windows(word_ids, size, stride)
    n = len(word_ids)
    assert spans[0][0] == 0 and spans[-1][1] == n
    covered = set()
    for (lo, hi), nxt in itertools.zip_longest(spans, spans[1:]):
        assert 0 <= lo <= hi <= n and hi - lo <= size
        assert lo == 0 or word_ids[lo - 1] != word_ids[lo]        # a window starts at a word
        if nxt:
            assert lo < nxt[0] <= hi                                 # progress, no gap
        covered.update(range(lo, hi))
    assert covered == set(range(n))


def test_passages_of_real_documents(docs, tokenizer):
    length, stride = 64, 32
    passages = list(split_documents(docs, tokenizer, length, stride))
    by_doc: dict[str, list[dict]] = {}
    for p in passages:
        docid, _, k = p["_id"].rpartition("#")
        by_doc.setdefault(docid, []).append(p)
        assert int(k) == len(by_doc[docid]) - 1
        n = len(tokenizer(f"{p['title']} {p['text']}".strip())["input_ids"])
        assert n <= length + 2, (p["_id"], n)   # re-tokenizing a window may split one edge word differently
    assert list(by_doc) == [d.docid for d in docs]
    for d in docs:
        parts = by_doc[d.docid]
        assert len({p["title"] for p in parts}) == 1 and d.title.startswith(parts[0]["title"])  # on every passage
        title_tokens = len(tokenizer(parts[0]["title"], add_special_tokens=False)["input_ids"])
        assert parts[0]["title"] == d.title or title_tokens <= (length - 2) // 2   # cut only when over half
        body = d.text[len(d.title):].strip()
        covered, at = set(), 0
        for p in parts:                                        # passages are slices of the body, in order
            at = body.index(p["text"], at)
            covered.update(range(at, at + len(p["text"])))
        assert all(i in covered for i, c in enumerate(body) if not c.isspace())   # nothing of the body is lost
        if len(tokenizer(body, add_special_tokens=False)["input_ids"]) <= length - 2 - len(
                tokenizer(d.title, add_special_tokens=False)["input_ids"]):
            assert [p["text"] for p in parts] == [body]
    assert len(passages) > 2 * len(docs)


def test_max_passage_keeps_each_documents_best_passage():
    hits = {"q": [("a#0", 1.0), ("b#1", 3.0), ("a#2", 5.0), ("b#0", 2.0), ("c#0", 3.0), ("x#y#1", 4.0), ("plain", 0.5)],
            "empty": []}
    assert max_passage(hits) == {"q": [("a", 5.0), ("x#y", 4.0), ("b", 3.0), ("c", 3.0), ("plain", 0.5)], "empty": []}
    assert max_passage(hits, k=2)["q"] == [("a", 5.0), ("x#y", 4.0)]
    shuffled = {"q": list(reversed(hits["q"]))}
    assert max_passage(shuffled) == {"q": max_passage(hits)["q"]}
    assert max_passage({"q": [("d-1", 2.0), ("d-2", 1.0)]}, delimiter="-") == {"q": [("d", 2.0)]}


def _encode(args, timeout=600, env=None):
    return subprocess.run([sys.executable, "-m", "splade_anserini.encode_corpus", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory, docs, data_dir):
    path = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    wanted = {d.docid for d in docs[:12]}
    with open(data_dir / "scifact" / "corpus.jsonl") as fin, open(path, "w") as fout:
        fout.writelines(line for line in fin if json.loads(line)["_id"] in wanted)
    return path


def test_encode_corpus_writes_passages(small_corpus, tmp_path):
    out = tmp_path / "vectors"
    proc = _encode(["--corpus", str(small_corpus), "--output", str(out), "--passage-length", "64",
                    "--passage-stride", "48", "--max-length", "64", "--no-progress"])
    assert proc.returncode == 0, proc.stderr
    ids = [json.loads(line)["id"] for line in (out / "part-00000.jsonl").read_text().splitlines()]
    passages = [json.loads(line)["_id"] for line in (tmp_path / "vectors.passages-64-48.jsonl").read_text().splitlines()]
    assert ids == passages and len(ids) > 12 and all("#" in i for i in ids)
    assert {i.rpartition("#")[0] for i in ids} == {json.loads(x)["_id"] for x in small_corpus.read_text().splitlines()}


def test_stride_larger_than_length_is_one_line_and_writes_nothing(small_corpus, tmp_path):
    out = tmp_path / "vectors"
    proc = _encode(["--corpus", str(small_corpus), "--output", str(out), "--passage-length", "64",
                    "--passage-stride", "65"])
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: --passage-stride 65 must be between 1 and --passage-length 64 (a larger stride would skip text "
        "between passages)"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_torchrun_ranks_encode_shards_that_index_as_one_collection(small_corpus, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun not installed beside the interpreter")
    whole, sharded = tmp_path / "whole", tmp_path / "sharded"
    common = ["--corpus", str(small_corpus), "--block-size", "4", "--no-progress", "--threads", "1"]
    assert _encode([*common, "--output", str(whole)]).returncode == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([str(torchrun), "--standalone", "--nproc-per-node", "2", "-m", "splade_anserini.encode_corpus",
                           *common, "--output", str(sharded)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = sorted(p.name for p in sharded.iterdir() if not p.name.startswith(".") and p.name != "splade-anserini.provenance")
    assert names == ["shard-00000-of-00002.part-00000.jsonl", "shard-00001-of-00002.part-00000.jsonl"]
    assert (sharded / "splade-anserini.provenance").read_bytes() == (whole / "splade-anserini.provenance").read_bytes()
    joined = b"".join((sharded / n).read_bytes() for n in names)
    assert joined == (whole / "part-00000.jsonl").read_bytes()
    from splade_anserini.index.numba_index import NumbaIndex

    idx = NumbaIndex.from_jsonvector(str(sharded))
    assert sorted(idx.docids) == sorted(json.loads(x)["_id"] for x in small_corpus.read_text().splitlines())


def test_launcher_shard_from_rank_and_world_size(monkeypatch):
    from splade_anserini.encode.corpus import EncodeError, launcher_shard

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert launcher_shard(None, None, "cpu") == (0, 1, "cpu")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert launcher_shard(None, None, "cuda") == (3, 4, "cuda:1")
    assert launcher_shard(1, 2, "cuda") == (1, 2, "cuda")   # the flags win
    with pytest.raises(EncodeError, match="go together"):
        launcher_shard(1, None, "cpu")


@pytest.mark.jvm
@pytest.mark.slow
def test_max_passage_search_lucene_equals_numba(small_corpus, tmp_path, data_dir):
    """Passages indexed in Lucene and Numba: `search --max-passage` writes the same run on both."""
    out = tmp_path / "vectors"
    assert _encode(["--corpus", str(small_corpus), "--output", str(out), "--passage-length", "48",
                    "--passage-stride", "24", "--max-length", "48", "--no-progress"]).returncode == 0
    for backend in ("lucene", "numba"):
        proc = subprocess.run([sys.executable, "-m", "splade_anserini.index", "--input", str(out), "--index",
                               str(tmp_path / f"idx-{backend}"), "--backend", backend, "--threads", "1"],
                              cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
    topics = tmp_path / "queries.jsonl"
    titles = [json.loads(x)["title"] for x in small_corpus.read_text().splitlines()]
    topics.write_text("".join(json.dumps({"_id": f"q{i}", "text": t}) + "\n" for i, t in enumerate(titles)))
    runs = []
    for backend in ("lucene", "numba"):
        run = tmp_path / f"{backend}.trec"
        proc = subprocess.run([sys.executable, "-m", "splade_anserini.search", "--index", str(tmp_path / f"idx-{backend}"),
                               "--backend", backend, "--topics", str(topics), "--output", str(run), "--hits", "200",
                               "--max-passage", "--max-passage-hits", "8", "--tag", "t", "--threads", "1"],
                              cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        runs.append(run.read_bytes())
    assert runs[0] == runs[1]
    lines = runs[0].decode().splitlines()
    assert len(lines) == 8 * len(titles) and not any("#" in line.split()[2] for line in lines)
    # every title query finds its own document first
    first = {line.split()[0]: line.split()[2] for line in lines if line.split()[3] == "1"}
    ids = [json.loads(x)["_id"] for x in small_corpus.read_text().splitlines()]
    assert sum(first[f"q{i}"] == d for i, d in enumerate(ids)) >= len(ids) - 1
