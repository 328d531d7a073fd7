"""`export --to ciff` on a SciFact slice: read back by ciff-toolkit and searched by BMP.

Checks: every message is what protobuf's own code serializes for the same fields (ciff-toolkit's
generated ``ciff_pb2``); the header counts; the postings read back equal the input vectors exactly;
BMP built from the file answers every query exactly as BMP built by its own indexer from the same
vectors.
"""
from __future__ import annotations

import pytest

ciff_pb2 = pytest.importorskip("ciff_toolkit.ciff_pb2")

from splade_anserini.export.__main__ import main as export_main  # noqa: E402
from test_export_slice import encoded_slice, read_vectors  # noqa: E402


@pytest.fixture(scope="module")
def exported(data_dir, tmp_path_factory):
    folder = encoded_slice(data_dir, tmp_path_factory.mktemp("ciff"))
    assert export_main(["--to", "ciff", "--input", str(folder / "vectors"), "--output", str(folder / "sci.ciff")]) == 0
    return folder


def test_messages_are_protobufs_own_serialization(exported):
    from ciff_toolkit.read import MessageReader

    vectors = read_vectors(exported / "vectors")
    with MessageReader(exported / "sci.ciff") as reader:
        raw = reader.read_serialized()
        header = ciff_pb2.Header.FromString(raw)
        assert header.SerializeToString() == raw
        assert (header.num_docs, header.total_docs) == (len(vectors), len(vectors))
        terms = {t for v in vectors.values() for t in v}
        assert header.num_postings_lists == header.total_postings_lists == len(terms)
        for kind, n in ((ciff_pb2.PostingsList, header.num_postings_lists), (ciff_pb2.DocRecord, header.num_docs)):
            for _ in range(n):
                raw = reader.read_serialized()
                assert kind.FromString(raw).SerializeToString() == raw
        assert reader.fp.read() == b""


def test_postings_round_trip(exported):
    from ciff_toolkit.read import CiffReader

    with CiffReader(exported / "sci.ciff") as reader:
        reader.read_header()
        lists = list(reader.read_postings_lists())
        records = list(reader.read_documents())
    names = {r.docid: r.collection_docid for r in records}
    assert sorted(names.values()) == [names[i] for i in range(len(names))]  # numbered in docid order
    back: dict[str, dict[str, int]] = {}
    for pl in lists:
        doc = 0
        for p in pl.postings:
            doc += p.docid
            back.setdefault(names[doc], {})[pl.term] = p.tf
        assert pl.df == len(pl.postings) and pl.cf == sum(p.tf for p in pl.postings)
    assert [pl.term for pl in lists] == sorted(pl.term for pl in lists)
    vectors = read_vectors(exported / "vectors")
    assert back == vectors
    assert all(r.doclength == sum(vectors[r.collection_docid].values()) for r in records)


@pytest.mark.slow
def test_bmp_reads_the_ciff_as_its_own_indexer(exported):
    """BMP built from the CIFF file answers exactly as BMP built by its own indexer from the vectors.
    (BMP quantizes document impacts and query weights to 8 bits, so its scores are not the exact
    inner products the Numba index gives; the docs report its overlap with them.)"""
    bmp = pytest.importorskip("bmp")
    from splade_anserini.data import read_topics
    from splade_anserini.search.query_encoder import QueryVectorizer

    bmp.ciff2bmp(str(exported / "sci.ciff"), str(exported / "from-ciff.bmp"), 32, False)
    indexer = bmp.Indexer(str(exported / "direct.bmp"), bsize=32, compress_range=False)
    for docid, vector in sorted(read_vectors(exported / "vectors").items()):
        indexer.add_document(docid, vector)
    indexer.finish()
    from_ciff, direct = bmp.Searcher(str(exported / "from-ciff.bmp")), bmp.Searcher(str(exported / "direct.bmp"))
    topics = read_topics(exported / "queries.tsv")
    for query in QueryVectorizer("splade-tiny").encode_batch(list(topics.values())):
        hits = from_ciff.search(query, k=10, alpha=1.0, beta=1.0)
        assert len(hits[0]) == 10
        assert hits == direct.search(query, k=10, alpha=1.0, beta=1.0)


@pytest.mark.slow
def test_bmp_on_a_rescaled_export_is_exact_but_for_one_block(exported, capsys):
    """``--max-impact`` rescales the impacts (every posting kept). BMP built from that file returns, for every
    query and BMP's own query weights, the exact top 10 of the rescaled vectors (the Numba index's scores) with
    at most one 32-document block left out: the file is read exactly, and BMP's search loop never scores the
    last block of its candidate list (which a collection of 4 blocks makes visible)."""
    bmp = pytest.importorskip("bmp")
    import numpy as np

    from splade_anserini.data import read_topics
    from splade_anserini.export.ciff import bmp_query_weights, explains_bmp, rescaled_docs
    from splade_anserini.index.numba_index import NumbaIndex
    from splade_anserini.search.query_encoder import QueryVectorizer

    vectors = read_vectors(exported / "vectors")
    bound = max(max(v.values()) for v in vectors.values()) // 2
    assert export_main(["--to", "ciff", "--input", str(exported / "vectors"), "--output", str(exported / "half.ciff"),
                        "--max-impact", str(bound)]) == 0
    assert f"the largest is now {bound}" in capsys.readouterr().out
    docs, scale = rescaled_docs(exported / "vectors", bound)
    assert 0.4 < scale <= 0.5 and max(max(v.values()) for _, v in docs) == bound
    assert {d: set(v) for d, v in docs} == {d: set(v) for d, v in vectors.items()}  # no posting lost
    bmp.ciff2bmp(str(exported / "half.ciff"), str(exported / "half.bmp"), 32, False)
    searcher, numba = bmp.Searcher(str(exported / "half.bmp")), NumbaIndex.from_vectors(docs)
    docids = [d for d, _ in docs]
    topics = read_topics(exported / "queries.tsv")
    skipped = []
    for query in QueryVectorizer("splade-tiny").encode_batch(list(topics.values())):
        got = list(zip(*searcher.search(query, k=10, alpha=1.0, beta=1.0)))
        exact = dict(numba.search(bmp_query_weights(query), k=len(docids)))
        scores = np.array([exact.get(d, 0) for d in docids], dtype=np.float64)
        block = explains_bmp(scores, docids, got)
        assert block is not None, (got, sorted(exact.items(), key=lambda x: -x[1])[:10])
        skipped.append(block)
    assert len(skipped) == len(topics)


def test_max_impact_is_for_ciff_only(tmp_path, capsys):
    assert export_main(["--to", "opensearch", "--input", str(tmp_path), "--output", str(tmp_path / "o"),
                        "--max-impact", "255"]) == 2
    assert "--max-impact is for --to ciff" in capsys.readouterr().err
