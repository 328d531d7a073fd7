"""conversion: quantization, the empty-vector guard, JsonVectorCollection / TsvInt / CSR round trips."""
from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from splade_anserini.conversion.atomic import atomic_open, tmp_name
from splade_anserini.conversion.csr import from_vectors, read_csr
from splade_anserini.conversion.errors import InputError
from splade_anserini.conversion.jsonvector import VectorDoc, read_jsonvector, write_jsonvector
from splade_anserini.conversion.quantize import FACTORS, GUARD_TOKEN, guard_empty, quantize, quantize_sparse, resolve_factor
from splade_anserini.conversion.topics import read_tsvint, tsvint_line, write_tsvint

DOCS = [
    VectorDoc("d1", {"the": 12, "##ing": 3, "café": 250, "[unused993]": 1}, "first document"),
    VectorDoc("d2", {"aspirin": 187}, ""),
    VectorDoc("d3-ünïcode", {"x": 1, "y": 2, "z": 3}, "naïve “quotes” \\ and\nnewline"),
]


def test_factors_by_name_and_number():
    assert resolve_factor("naver") == 100.0 == resolve_factor(100) == resolve_factor("100")
    assert resolve_factor("pyserini") == 256 / 5 == FACTORS["pyserini"]
    assert resolve_factor(" Pyserini ") == 51.2
    for bad in ("zero", "-1", 0, float("nan")):
        with pytest.raises(ValueError):
            resolve_factor(bad)


def test_quantize_rounds_half_to_even_and_drops_zeros():
    w = np.array([0.004, 0.005, 0.015, 0.0251, 1.0, 2.345], dtype=np.float32)
    assert quantize(w, 100).tolist() == [0, 0, 2, 3, 100, 234]  # float32: 0.005*100 -> 0.5 -> 0
    ids, impacts = quantize_sparse(np.arange(6), w, 100)
    assert ids.tolist() == [2, 3, 4, 5] and impacts.tolist() == [2, 3, 100, 234]
    assert impacts.dtype == np.int32
    # Pyserini's factor: round(w / 5 * 256)
    ids, impacts = quantize_sparse(np.array([7]), np.array([1.2345], np.float32), resolve_factor("pyserini"))
    assert impacts.tolist() == [round(1.2345 / 5 * 256)]


def test_empty_vector_guard():
    vec, guarded = guard_empty({})
    assert guarded and vec == {GUARD_TOKEN: 1}
    vec, guarded = guard_empty({"a": 2})
    assert not guarded and vec == {"a": 2}
    assert GUARD_TOKEN == "[unused993]"


@pytest.mark.parametrize("name", ["vectors.jsonl", "vectors.jsonl.gz"])
def test_jsonvector_round_trip(tmp_path, name):
    path = tmp_path / name
    assert write_jsonvector(path, DOCS) == len(DOCS)
    assert not tmp_name(path).exists()
    back = list(read_jsonvector(path))
    assert back == DOCS
    assert [list(d.vector) for d in back] == [list(d.vector) for d in DOCS]  # token order kept
    raw = gzip.open(path, "rt", encoding="utf-8").read() if name.endswith(".gz") else path.read_text("utf-8")
    first = json.loads(raw.splitlines()[0])
    assert set(first) == {"id", "contents", "vector"} and first["vector"]["##ing"] == 3
    # a directory is read file by file in name order, hidden files ignored
    write_jsonvector(tmp_path / "a.jsonl", [DOCS[0]._replace(docid="d0")])
    (tmp_path / ".hidden.jsonl").write_text("not json\n")
    assert [d.docid for d in read_jsonvector(tmp_path)] == ["d0"] + [d.docid for d in DOCS]


def test_jsonvector_refuses_empty_vectors_and_leaves_nothing(tmp_path):
    path = tmp_path / "v.jsonl"
    with pytest.raises(ValueError, match="empty vector"):
        write_jsonvector(path, [DOCS[0], VectorDoc("e", {})])
    assert list(tmp_path.iterdir()) == []


def test_jsonvector_reader_names_file_and_line(tmp_path):
    path = tmp_path / "v.jsonl"
    path.write_text('{"id": "a", "vector": {"x": 1}}\n{"id": "b", "vector": {"x": 1.5}}\n')
    with pytest.raises(InputError) as err:
        list(read_jsonvector(path))
    assert str(err.value).startswith(f"{path}:2: ") and "not an integer" in str(err.value)
    path.write_text('{"id": "a", "vector": {"x": 1}}\n{"id": "b", "vector": \n')
    with pytest.raises(InputError, match=r":2: malformed JSON"):
        list(read_jsonvector(path))


def test_atomic_open_leaves_no_partial_file(tmp_path):
    path = tmp_path / "out.jsonl"
    with pytest.raises(RuntimeError):
        with atomic_open(path) as fh:
            fh.write("partial line")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_tsvint_round_trip(tmp_path):
    topics = [("q1", {"aspirin": 3, "##ing": 1, "heart": 12}), ("q2", {"x": 1}), ("q3", {"a": 2, "zero": 0})]
    assert tsvint_line("q1", topics[0][1]) == "q1\t" + " ".join(["aspirin"] * 3 + ["##ing"] + ["heart"] * 12)
    path = tmp_path / "topics.tsv"
    assert write_tsvint(path, topics) == 3
    back = read_tsvint(path)
    assert back == {"q1": topics[0][1], "q2": {"x": 1}, "q3": {"a": 2}}
    with pytest.raises(ValueError):
        tsvint_line("q\t1", {"a": 1})
    with pytest.raises(ValueError):
        tsvint_line("q", {"a b": 1})


def test_tsvint_of_a_real_query_vector(tmp_path, encoder):
    queries = {"1": "aspirin reduces the risk of heart attacks", "2": "0-dimensional biomaterials lack inductive properties"}
    vecs = encoder.encode_queries(list(queries.values()))
    impacts = {qid: encoder.to_impacts(v, 100) for qid, v in zip(queries, vecs)}
    assert all(impacts.values())
    write_tsvint(tmp_path / "q.tsv", impacts.items())
    assert read_tsvint(tmp_path / "q.tsv") == impacts


def test_csr_round_trip(tmp_path):
    csr = from_vectors((d.docid, d.vector) for d in DOCS)
    assert csr.n_docs == 3 and csr.indptr.tolist() == [0, 4, 5, 8]
    assert np.diff(csr.indptr).tolist() == [4, 1, 3]
    assert all(np.all(np.diff(csr.indices[csr.indptr[i]:csr.indptr[i + 1]]) > 0) for i in range(3))
    rows = [{csr.vocab[t]: int(w) for t, w in zip(csr.indices[lo:hi], csr.data[lo:hi])}
            for lo, hi in zip(csr.indptr[:-1], csr.indptr[1:])]
    assert list(zip(csr.ids, rows)) == [(d.docid, d.vector) for d in DOCS]
    write_jsonvector(tmp_path / "part-00000.jsonl", DOCS[:2])
    write_jsonvector(tmp_path / "part-00001.jsonl", DOCS[2:])
    again = read_csr(tmp_path, vocab=csr.vocab)
    assert again.vocab == csr.vocab and again.ids == csr.ids
    assert np.array_equal(again.indices, csr.indices) and np.array_equal(again.data, csr.data)


def test_tmp_pattern_names_every_temporary_name_and_nothing_else():
    import re

    from splade_anserini.conversion.atomic import tmp_name, tmp_pattern

    for name in ("part-00000.jsonl", ".splade-anserini-output.json", "run with spaces.trec"):
        pattern = re.compile(tmp_pattern(re.escape(name)) + "$")
        assert pattern.match(tmp_name(name).name)
        assert not pattern.match(name) and not pattern.match(tmp_name("other" + name).name)
