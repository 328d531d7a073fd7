"""Search a Milvus collection written by ``splade-anserini export --to milvus``.

The queries are encoded by the same encoders as the other backends (ONNX screened, PyTorch,
inference-free) and mapped to dimensions with the query model's vocabulary, which must be the one
the export recorded. Milvus answers an exact inner product (``SPARSE_INVERTED_INDEX``, metric
``IP``) but orders ties as it likes: a few more hits than ``--hits`` are asked for and ranked as
Anserini ranks (score descending, docid ascending), so the run matches the Lucene index's.
"""
from __future__ import annotations

from typing import Mapping

from splade_anserini.conversion.errors import UsageError
from splade_anserini.conversion.trec import Run

from splade_anserini.export.milvus import MAX_TOPK, check_ours, connect, record
from splade_anserini.provenance import DEFAULT_DELIMITER, ProvenanceError, SearchPlan

#: Extra hits asked for, so that ties at the cut-off are broken by docid as Anserini breaks them.
TIE_MARGIN = 32
#: Queries sent in one search request.
QUERY_BATCH = 64


def plan_milvus(uri: str, collection: str, *, factor: str | None) -> tuple[SearchPlan, dict | None]:
    """The search plan from the collection's recorded provenance (as ``provenance.plan_search`` makes
    it for an index) and its vocabulary record."""
    from splade_anserini.conversion.quantize import resolve_factor

    client = connect(uri)
    if not client.has_collection(collection):
        raise UsageError(f"milvus collection {collection} at {uri}: no such collection; write it with "
                         "`splade-anserini export --to milvus`")
    prov, vocab, done = record(check_ours(client, uri, collection))
    if done is None:
        raise UsageError(f"milvus collection {collection} at {uri} is incomplete (an export was interrupted); "
                         "run the export again to finish it")
    wanted = resolve_factor(factor) if factor is not None else None
    where = f"milvus collection {collection} at {uri}"
    if prov is None:
        return SearchPlan(wanted or 100.0, DEFAULT_DELIMITER, notes=[
            f"{where} records no provenance: the query model and factor were not checked"]), vocab
    if wanted is not None and wanted != prov["factor"]:
        raise ProvenanceError(f"--factor {wanted:g}: the {where} was quantized with factor {prov['factor']:g}; "
                              "leave --factor out to use the collection's")
    psg = prov.get("passages")
    return SearchPlan(prov["factor"], psg["delimiter"] if psg else DEFAULT_DELIMITER, prov), vocab


def _ranked(hits, k: int) -> list[tuple[str, float]]:
    pairs = [(h.get("docid", h.get("id")), float(h["distance"])) for h in hits]
    pairs.sort(key=lambda p: (-p[1], p[0]))
    return pairs[:k]


def milvus_search(uri: str, collection: str, vectors: Mapping[str, dict[str, int]], model: str, recorded: dict | None,
                  *, k: int = 1000) -> Run:
    """Search the encoded queries (``{qid: {token: impact}}``) in the collection: ``{qid: [(docid, score)]}``."""
    from splade_anserini.export.vocab import check_same, read_vocabulary, to_dimensions

    if k > MAX_TOPK:
        raise UsageError(f"--hits {k}: Milvus returns at most {MAX_TOPK} hits a query")
    vocab = read_vocabulary(model)
    check_same(recorded, vocab, f"milvus collection {collection} at {uri}")
    mapped = {qid: {d: float(w) for d, w in to_dimensions(v, vocab).items()} for qid, v in vectors.items()}
    asked = [qid for qid, v in mapped.items() if v]  # a query with no known token has no hit
    limit = min(k + TIE_MARGIN, MAX_TOPK)
    client = connect(uri)
    results: Run = {qid: [] for qid in vectors}
    client.load_collection(collection)
    for i in range(0, len(asked), QUERY_BATCH):
        qids = asked[i:i + QUERY_BATCH]
        found = client.search(collection, data=[mapped[q] for q in qids], anns_field="vector", limit=limit,
                              search_params={"metric_type": "IP", "params": {"drop_ratio_search": 0.0}},
                              output_fields=["docid"])
        for qid, hits in zip(qids, found):
            results[qid] = _ranked(hits, k)
    return results


def check_backend_options(parser, args) -> None:
    """The options ``--backend milvus`` takes and refuses (and ``--simulate-storage-precision``'s backend)."""
    milvus = args.backend == "milvus"
    if milvus != bool(args.uri and args.collection) or (not milvus and (args.uri or args.collection)):
        parser.error("--backend milvus takes --uri and --collection (and only it)")
    if milvus == bool(args.index):
        parser.error("--index is required" if not milvus else "--backend milvus searches --uri/--collection, not --index")
    if milvus and (args.pretokenized_topics or args.encoded_topics or args.java_encoder):
        parser.error("--backend milvus encodes the topics with --model (no pre-encoded or Java-side topics)")
    if args.simulate_storage_precision and args.backend != "numba":
        parser.error("--simulate-storage-precision applies to the numba backend")


def search_plan(args) -> SearchPlan:
    """The search plan: from the index's provenance, or from the Milvus collection's."""
    from splade_anserini import provenance

    if args.backend == "milvus":
        from splade_anserini.search.milvus_backend import plan_milvus

        plan, args.vocabulary = plan_milvus(args.uri, args.collection, factor=args.factor)
        return plan
    return provenance.plan_search(args.index, factor=args.factor, max_passage=args.max_passage,
                                  delimiter=args.max_passage_delimiter)
