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
