"""`export --to opensearch|elasticsearch` files, and the storage precision they imply.

No cluster runs here: the files are checked against the engines' documented formats and limits.
* mapping.json: ``PUT /INDEX`` body, ``vector`` of type ``rank_features`` (OpenSearch) or
  ``sparse_vector`` (Elasticsearch), ``docid`` a ``keyword``;
* bulk files: NDJSON, a newline after the last line, pairs of an ``index`` action (``_index``,
  ``_id`` of at most 512 bytes) and a source whose ``vector`` keys hold no dot (a dotted key is read
  as an object path) and whose values are strictly positive finite numbers; at most ``--chunk-size``
  documents a file; the features decode back to the input vectors exactly;
* query-template.json: ``neural_sparse`` + ``query_tokens`` (OpenSearch), ``sparse_vector`` +
  ``query_vector`` with ``prune: false`` (Elasticsearch);
* precision: a FeatureField keeps the float's bits >> 15 (9 significant bits), truncating;
  ``--simulate-storage-precision`` searches the Numba index with exactly those impacts.
"""
from __future__ import annotations

import json
import math
import struct

import numpy as np
import pytest
from hypothesis import given, strategies as st

from splade_anserini.export.__main__ import main as export_main
from splade_anserini.export.opensearch import feature_key, query_body, token_of
from splade_anserini.export.precision import stored, stored_impacts
from test_export_slice import encoded_slice, read_vectors


@pytest.fixture(scope="module")
def encoded(data_dir, tmp_path_factory):
    return encoded_slice(data_dir, tmp_path_factory.mktemp("os"))


def bulk_documents(folder, chunk_size):
    docs = {}
    for part in sorted((folder / "bulk").glob("part-*.ndjson")):
        text = part.read_text(encoding="utf-8")
        assert text.endswith("\n")
        lines = text.splitlines()
        assert len(lines) % 2 == 0 and len(lines) // 2 <= chunk_size
        for action, source in zip(lines[::2], lines[1::2]):
            action, source = json.loads(action), json.loads(source)
            assert list(action) == ["index"] and set(action["index"]) == {"_index", "_id"}
            assert action["index"]["_id"] == source["docid"] and len(source["docid"].encode()) <= 512
            for key, value in source["vector"].items():
                assert "." not in key and key
                assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0
            docs[source["docid"]] = {token_of(k): v for k, v in source["vector"].items()}
    return docs


@pytest.mark.parametrize("engine,kind", [("opensearch", "rank_features"), ("elasticsearch", "sparse_vector")])
def test_files_follow_the_documented_formats(encoded, tmp_path, engine, kind, capsys):
    out = tmp_path / engine
    assert export_main(["--to", engine, "--input", str(encoded / "vectors"), "--output", str(out),
                        "--chunk-size", "40", "--index-name", "sci"]) == 0
    assert "9 significant bits" in capsys.readouterr().out
    props = json.loads((out / "mapping.json").read_text())["mappings"]["properties"]
    assert props == {"docid": {"type": "keyword"}, "vector": {"type": kind}}
    assert bulk_documents(out, 40) == read_vectors(encoded / "vectors")
    template = json.loads((out / "query-template.json").read_text())
    if engine == "opensearch":
        assert template["query"] == {"neural_sparse": {"vector": {"query_tokens": "{{query_tokens}}"}}}
    else:
        assert template["query"] == {"sparse_vector": {"field": "vector", "query_vector": "{{query_tokens}}",
                                                       "prune": False}}
    body = query_body(engine, {"cell": 120, ".": 3})
    assert "%2E" in json.dumps(body) and "cell" in json.dumps(body)
    assert json.loads((out / "export.json").read_text())["provenance"]["factor"] == 100


def test_dots_percent_and_long_ids(tmp_path, capsys):
    assert [feature_key(t) for t in (".", "a.b", "%", "%2E")] == ["%2E", "a%2Eb", "%25", "%252E"]
    assert all(token_of(feature_key(t)) == t for t in (".", "a.b", "%", "%2E", "##.", "..."))
    vectors = tmp_path / "v.jsonl"
    vectors.write_text(json.dumps({"id": "d1", "vector": {".": 3, "%": 2, "cell": 700}}) + "\n"
                       + json.dumps({"id": "x" * 513, "vector": {"cell": 1}}) + "\n")
    assert export_main(["--to", "elasticsearch", "--input", str(vectors), "--output", str(tmp_path / "es")]) == 2
    assert "longer than 512" in capsys.readouterr().err and not (tmp_path / "es").exists()
    vectors.write_text(json.dumps({"id": "d1", "vector": {".": 3, "%": 2, "cell": 700}}) + "\n")
    assert export_main(["--to", "opensearch", "--input", str(vectors), "--output", str(tmp_path / "os")]) == 0
    assert bulk_documents(tmp_path / "os", 5000) == {"d1": {".": 3, "%": 2, "cell": 700}}
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("user file")
    assert export_main(["--to", "opensearch", "--input", str(vectors), "--output", str(tmp_path / "mine")]) == 2
    assert (tmp_path / "mine" / "keep.txt").read_text() == "user file"


def featurefield(value: float) -> float:
    """Lucene FeatureField's round trip, written independently: intBitsToFloat((floatToIntBits(v) >>> 15) << 15)."""
    bits = struct.unpack(">I", struct.pack(">f", value))[0]
    return struct.unpack(">f", struct.pack(">I", (bits >> 15) << 15))[0]


@given(st.floats(min_value=2.0 ** -100, max_value=2.0 ** 100, allow_nan=False, width=32))
def test_stored_is_featurefields_rounding(value):
    kept = float(stored([value])[0])
    assert kept == featurefield(value) and kept <= value and (value - kept) / value < 2 ** -8


@given(st.integers(min_value=1, max_value=65535))
def test_integer_impacts_keep_their_nine_leading_bits(impact):
    kept = int(stored_impacts(np.array([impact], dtype=np.uint32))[0])
    shift = max(impact.bit_length() - 9, 0)
    assert kept == (impact >> shift) << shift


@pytest.mark.slow
def test_simulated_precision_search(encoded, tmp_path):
    from splade_anserini.conversion.jsonvector import VectorDoc, write_jsonvector
    from splade_anserini.index.build import build_numba_index
    from splade_anserini.search.run import numba_search

    vectors = {d: {t: w * 7 for t, w in v.items()} for d, v in read_vectors(encoded / "vectors").items()}
    write_jsonvector(tmp_path / "v.jsonl", [VectorDoc(d, v) for d, v in vectors.items()])
    build_numba_index(tmp_path / "v.jsonl", tmp_path / "numba")
    queries = {"q1": {"cell": 50, "gene": 20, ".": 3}, "q2": {"protein": 7, "cancer": 90}}
    got = numba_search(tmp_path / "numba", queries, k=20, storage_precision=True)
    assert got != numba_search(tmp_path / "numba", queries, k=20)
    for qid, query in queries.items():
        scores = {d: sum(w * featurefield(v[t]) for t, w in query.items() if t in v) for d, v in vectors.items()}
        ranked = sorted(((d, s) for d, s in scores.items() if s > 0), key=lambda p: (-p[1], p[0]))[:20]
        assert [(d, float(s)) for d, s in got[qid]] == [(d, float(s)) for d, s in ranked]
