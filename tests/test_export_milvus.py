"""`export --to milvus` and `search --backend milvus` on a SciFact slice, in Milvus Lite.

Checks: the Milvus run equals the Numba index's (docids, ranks and scores) for the same splade-tiny
queries; an interrupted export resumes and ends with every document exactly once; a collection this
tool did not write is refused and left as it was; a complete collection is not exported over; the
factor is checked against the collection's provenance; bad input creates nothing.
"""
from __future__ import annotations

import pytest

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

from splade_anserini.export.__main__ import main as export_main  # noqa: E402
from splade_anserini.search.run import main as search_main  # noqa: E402
from test_export_slice import encoded_slice  # noqa: E402


@pytest.fixture(scope="module")
def encoded(data_dir, tmp_path_factory):
    """The slice encoded by splade-tiny, and its Numba index."""
    return encoded_slice(data_dir, tmp_path_factory.mktemp("milvus"))


def read_run(path):
    rows = [line.split() for line in open(path, encoding="utf-8")]
    return [(q, d, int(r), float(s)) for q, _, d, r, s, _ in rows]


@pytest.mark.slow
def test_milvus_run_equals_numba(encoded, tmp_path):
    db = tmp_path / "m.db"
    assert export_main(["--to", "milvus", "--input", str(encoded / "vectors"), "--uri", str(db),
                        "--collection", "sci", "--batch-size", "50"]) == 0
    common = ["--topics", str(encoded / "queries.tsv"), "--hits", "50", "--threads", "1"]
    assert search_main(["--backend", "milvus", "--uri", str(db), "--collection", "sci",
                        "--output", str(tmp_path / "milvus.trec"), *common]) == 0
    assert search_main(["--backend", "numba", "--index", str(encoded / "numba"),
                        "--output", str(tmp_path / "numba.trec"), *common]) == 0
    milvus, numba = read_run(tmp_path / "milvus.trec"), read_run(tmp_path / "numba.trec")
    assert len(numba) == 5 * 50
    assert milvus == numba


def test_interrupted_export_resumes(encoded, tmp_path, monkeypatch, capsys):
    from pymilvus import MilvusClient

    from splade_anserini.export import milvus

    db, real_insert, calls = str(tmp_path / "r.db"), MilvusClient.insert, []

    def insert_then_interrupt(self, collection, rows, *a, **k):
        calls.append(len(rows))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_insert(self, collection, rows, *a, **k)

    monkeypatch.setattr(MilvusClient, "insert", insert_then_interrupt)
    args = ["--to", "milvus", "--input", str(encoded / "vectors"), "--uri", db, "--collection", "sci",
            "--batch-size", "40"]
    assert export_main(args) == 130
    assert "80 of" in capsys.readouterr().err
    monkeypatch.setattr(MilvusClient, "insert", real_insert)
    assert export_main(args) == 0
    out = capsys.readouterr().out
    assert "resumed: 80 were already there" in out
    client = milvus.connect(db)
    total = sum(1 for line in open(next((encoded / "vectors").glob("*.jsonl"))) if line.strip())
    assert milvus.count(client, "sci") == total == len(milvus.existing_ids(client, "sci"))
    assert export_main(args) == 2  # complete: not exported over without --overwrite
    assert "is complete" in capsys.readouterr().err


def test_foreign_collection_is_refused_and_kept(encoded, tmp_path, capsys):
    from pymilvus import DataType, MilvusClient

    from splade_anserini.export import milvus

    db = str(tmp_path / "f.db")
    client = milvus.connect(db)
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("docid", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("vector", DataType.SPARSE_FLOAT_VECTOR)
    index = client.prepare_index_params()
    index.add_index(field_name="vector", index_type="SPARSE_INVERTED_INDEX", metric_type="IP")
    client.create_collection("theirs", schema=schema, index_params=index)
    client.insert("theirs", [{"docid": "keep-me", "vector": {7: 1.0}}])
    for overwrite in ([], ["--overwrite"]):
        assert export_main(["--to", "milvus", "--input", str(encoded / "vectors"), "--uri", db,
                            "--collection", "theirs", *overwrite]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "was not written by splade-anserini" in err
    assert search_main(["--backend", "milvus", "--uri", db, "--collection", "theirs", "--topics",
                        str(encoded / "queries.tsv"), "--output", str(tmp_path / "x.trec")]) == 2
    assert [r["docid"] for r in client.query("theirs", filter="", output_fields=["docid"], limit=10)] == ["keep-me"]
    assert not (tmp_path / "x.trec").exists()


def test_factor_and_bad_input_are_refused(encoded, tmp_path, capsys):
    from splade_anserini.export import milvus

    db = str(tmp_path / "b.db")
    bad = tmp_path / "bad"
    bad.mkdir()
    lines = open(next((encoded / "vectors").glob("*.jsonl")), encoding="utf-8").read().splitlines()
    (bad / "part.jsonl").write_text("\n".join(lines[:5] + ['{"id": "x", "vector": {"cell": 1.5}}']) + "\n")
    assert export_main(["--to", "milvus", "--input", str(bad), "--uri", db, "--collection", "bad",
                        "--model", "splade-tiny"]) == 2
    assert "part.jsonl:6:" in capsys.readouterr().err
    assert not milvus.connect(db).has_collection("bad")
    assert export_main(["--to", "milvus", "--input", str(encoded / "vectors"), "--uri", db, "--collection", "ok"]) == 0
    assert search_main(["--backend", "milvus", "--uri", db, "--collection", "ok", "--factor", "50", "--topics",
                        str(encoded / "queries.tsv"), "--output", str(tmp_path / "y.trec")]) == 2
    assert "quantized with factor 100" in capsys.readouterr().err


@pytest.mark.parametrize("argv,message", [
    (["--backend", "milvus", "--uri", "x.db"], "--uri and --collection"),
    (["--backend", "milvus", "--uri", "x.db", "--collection", "c", "--index", "i"], "not --index"),
    (["--index", "i", "--uri", "x.db", "--collection", "c"], "--uri and --collection"),
    (["--backend", "lucene", "--index", "i", "--simulate-storage-precision"], "numba backend"),
    (["--backend", "milvus", "--uri", "x.db", "--collection", "c", "--encoded-topics", "t.tsv"], "encodes the topics"),
])
def test_search_options_are_checked_first(tmp_path, capsys, argv, message):
    topics = [] if "--encoded-topics" in argv else ["--topics", "t.tsv"]
    assert search_main([*argv, *topics, "--output", str(tmp_path / "r.trec")]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "r.trec").exists()


@pytest.mark.parametrize("argv,message", [
    (["--to", "milvus", "--input", "v"], "needs --uri and --collection"),
    (["--to", "ciff", "--input", "v"], "needs --output"),
    (["--to", "opensearch", "--input", "v", "--output", "o", "--uri", "x.db"], "are for --to milvus"),
])
def test_export_options_are_checked_first(capsys, argv, message):
    assert export_main(argv) == 2
    assert message in capsys.readouterr().err
