"""Search an index with SPLADE queries and write a TREC run.

    python -m splade_anserini.search --index I --topics T --output runs/X.trec
        [--hits 1000] [--threads N] [--batch-size B] [--model splade-tiny] [--factor F]
        [--allow-other-query-encoder]
        [--max-length 256] [--splade-doc [--query-weights idf|FILE]] [--backend lucene|numba] [--tag T]
        [--pretokenized-topics OUT.tsv | --encoded-topics IN.tsv | --java-encoder EXPORT_DIR]
        [--max-passage [--max-passage-hits 100] [--max-passage-delimiter '#']]

Three ways to the same run on a Lucene impact index:

* default: Pyserini ``LuceneImpactSearcher.batch_search`` with our ``SpladeQueryEncoder``; the
  queries are encoded up front in batches by our encoder and fed to the Java searcher;
* ``--pretokenized-topics OUT.tsv``: the queries are encoded the same way, written as TsvInt topics
  (tokens repeated by weight) and searched with Anserini ``SearchCollection -impact -pretokenized``;
* ``--encoded-topics IN.tsv``: an existing TsvInt (or TsvString) topics file is searched with
  ``SearchCollection`` as is (no model needed).

``--model`` may be an ONNX export directory (``python -m splade_anserini.export_onnx``): the queries
are then encoded by ONNX Runtime and searched with Anserini's ``SimpleImpactSearcher`` (or Numba)
without importing torch. ``--java-encoder EXPORT_DIR`` has Anserini's own ONNX SPLADE encoder,
inside the JVM, encode the topics with the export (see :mod:`splade_anserini.serve.java_encoder`).

All paths rank by score descending, docid ascending (Anserini's tie-break) and produce identical
runs. ``--backend numba`` searches a Numba reference index with the same query vectors.
``--max-passage`` (Pyserini's MaxP flags) folds passage hits ``docid#k`` into documents scored by
their best passage, after the search and identically for every backend.

Checked before any query is encoded, against the provenance the index records
(:mod:`splade_anserini.provenance`): ``--factor`` defaults to the index's factor and another is
refused; a query model whose weights differ from the documents' model is refused unless
``--allow-other-query-encoder`` (then ``<output>.provenance.json`` records it); an ONNX export
(``--model`` or ``--java-encoder``) must record the index's factor; ``--max-passage`` needs an index
of passages. An index without provenance searches with a one-line notice. Blank queries are named
in one warning line and get no hits. Lucene's clause limit is lifted, so every route answers
queries of any length with the Numba index's hits; a query a backend still cannot answer fails
the command (exit 1) naming it and the cause, and no run is written.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from splade_anserini.conversion.errors import UsageError
from splade_anserini.conversion.trec import Run, max_passage, write_run

from splade_anserini.cli import ArgumentParser, command, positive_int
from splade_anserini.java_errors import UnansweredQueryError, answer_every_query, java_cause  # noqa: F401

BACKENDS = ("lucene", "numba", "milvus")


# -- Lucene through Pyserini ------------------------------------------------------------------------
def pyserini_search(index: str | os.PathLike, topics: Mapping[str, str], encoder, *, k: int = 1000,
                    threads: int = 1, batch_size: int = 32, min_idf: float = float("-inf"),
                    vectors: Sequence[dict[str, int]] | None = None) -> Run:
    """``LuceneImpactSearcher.batch_search`` on the topics encoded up front in batches by ``encoder``
    (a ``QueryVectorizer`` or ``SpladeQueryEncoder``), or on ``vectors`` (the topics already
    encoded, in topic order), handed to Pyserini by a stateless ``PreEncodedQueries``.

    ``min_idf=-inf`` keeps query tokens that occur in every document (Pyserini's default of 0
    drops them, ``SearchCollection`` does not). Tokens absent from the index are dropped by
    Pyserini; a query left with no token gets an empty result list.
    """
    from splade_anserini import java
    from splade_anserini.anserini_version import check_index_readable
    from splade_anserini.search.query_encoder import PreEncodedQueries

    check_index_readable(index)
    qids = list(topics)
    if vectors is None:
        vectors = encoder.encode_batch(list(topics.values()), batch_size)
    lucene = java.pyserini_lucene()
    searcher = lucene.LuceneImpactSearcher(os.fspath(index), PreEncodedQueries(dict(zip(qids, vectors))),
                                           min_idf=min_idf)
    try:
        hits = answer_every_query(lambda: searcher.batch_search(qids, qids, k=k, threads=threads), qids,
                                  lambda qid: searcher.search(qid, k=k), "Pyserini LuceneImpactSearcher")
    finally:
        searcher.close()
    return {qid: [(h.docid, float(h.score)) for h in hits.get(qid, [])[:k]] for qid in qids}


# -- Lucene through Anserini SearchCollection -------------------------------------------------------
def _topic_reader(tsv_path: str | os.PathLike) -> str:
    """``TsvInt`` when every query id is a canonical integer (Anserini parses them: ``007`` would come
    back as ``7``), else ``TsvString``."""
    with open(tsv_path, encoding="utf-8") as fh:
        for line in fh:
            qid = line.partition("\t")[0].strip()
            if qid and not (qid.isascii() and qid.isdigit() and str(int(qid)) == qid):
                return "TsvString"
    return "TsvInt"


def anserini_search(index: str | os.PathLike, tsv_path: str | os.PathLike, *, k: int = 1000, threads: int = 1,
                    topic_reader: str | None = None, quiet: bool = True) -> Run:
    """Search pre-encoded topics with Anserini ``SearchCollection -impact -pretokenized``. Anserini 2.x's
    ``SearchCollection`` cannot start without its prebuilt-index catalog from GitHub: offline, the
    topics go to ``SimpleImpactSearcher`` (the same scoring and tie-break), with a warning."""
    from splade_anserini import java
    from splade_anserini.anserini_version import check_index_readable

    check_index_readable(index)
    try:
        return java.search_collection(
            {"index": os.fspath(index), "topics": os.fspath(tsv_path),
             "topicReader": topic_reader or _topic_reader(tsv_path), "impact": True, "pretokenized": True,
             "hits": k, "threads": threads, "format": "trec", "runtag": "anserini"}, quiet=quiet)
    except java.CatalogUnavailableError as exc:  # offline Anserini 2.x: the same scoring, without the catalog
        from splade_anserini.conversion.topics import read_tsvint

        from splade_anserini.search.impact_searcher import impact_search

        print(f"warning: {exc}; the topics are searched with Anserini's SimpleImpactSearcher instead "
              "(the same impact scoring and tie-break)", file=sys.stderr)
        return impact_search(index, read_tsvint(tsv_path), k=k, threads=threads)


def write_tsvint_topics(path: str | os.PathLike, vectors: Mapping[str, dict[str, int]]) -> int:
    from splade_anserini.conversion.topics import write_tsvint

    parent = os.path.dirname(os.fspath(path))
    if parent:
        os.makedirs(parent, exist_ok=True)
    return write_tsvint(path, vectors.items())


# -- Numba reference index --------------------------------------------------------------------------
def numba_search(index: str | os.PathLike, vectors: Mapping[str, dict[str, int]], *, k: int = 1000,
                 threads: int = 1, storage_precision: bool = False) -> Run:
    """``NumbaIndex.load(index).search_run(vectors, k, threads)``: exact, ranked by the index;
    ``storage_precision``: the document impacts as OpenSearch/Elasticsearch store them (9 bits)."""
    from splade_anserini.index.numba_index import NumbaIndex

    loaded = NumbaIndex.load(os.fspath(index))
    if storage_precision:
        from splade_anserini.export.precision import simulate_on_index

        changed = simulate_on_index(loaded)
        print(f"notice: storage precision simulated: {changed:,} of {loaded.n_postings:,} document impacts "
              "truncated to 9 significant bits", file=sys.stderr)
    return loaded.search_run(vectors, k, threads)


# -- shared -----------------------------------------------------------------------------------------
def order_like(results: Mapping[str, list], qids: Sequence[str]) -> Run:
    """Results in topic-file order, an empty list for a query with no hits."""
    return {qid: list(results.get(qid, [])) for qid in qids}


@dataclass
class Searched:
    """What a route found: the run, the topic ids in file order, how, and the query encoding time."""

    results: Run
    qids: list[str]
    how: str
    encode_s: float | None = None


def _encoded_topics(args, topics: None = None) -> Searched:
    """Pre-encoded TsvInt topics (``--encoded-topics``): no model."""
    from splade_anserini.conversion.topics import read_tsvint

    vectors = read_tsvint(args.encoded_topics)
    if args.backend == "numba":
        return _numba(args, vectors, list(vectors), 0.0)
    return Searched(anserini_search(args.index, args.encoded_topics, k=args.hits, threads=args.threads),
                    list(vectors), "Anserini SearchCollection (pre-encoded TsvInt topics)")


def _java_encoder(args, topics: Mapping[str, str]) -> Searched:
    """Anserini's ONNX SPLADE encoder encodes the topics inside the JVM."""
    from splade_anserini.serve.java_encoder import java_search

    results = java_search(args.index, topics, args.java_encoder, args.factor, k=args.hits)
    return Searched(results, list(topics), f"Anserini's Java ONNX SPLADE encoder ({args.java_encoder}) + "
                                           "SimpleImpactSearcher")


def _pyserini(args, topics: Mapping[str, str]) -> Searched:
    """Pyserini's ``LuceneImpactSearcher`` with our PyTorch query encoder."""
    from splade_anserini.search.query_encoder import SpladeQueryEncoder

    encoder = SpladeQueryEncoder(**_encoder_options(args))
    results = pyserini_search(args.index, topics, encoder, k=args.hits, threads=args.threads,
                              batch_size=args.batch_size)
    return Searched(results, list(topics), "Pyserini LuceneImpactSearcher.batch_search + SpladeQueryEncoder")


def _vectors_first(args, topics: Mapping[str, str]) -> Searched:
    """Encode every topic up front, then search: ONNX Runtime + Anserini (no torch in the process),
    TsvInt topics + ``SearchCollection``, or the Numba index."""
    from splade_anserini.search.query_encoder import QueryVectorizer

    qids = list(topics)
    t0 = time.perf_counter()
    vectors = dict(zip(qids, QueryVectorizer(**_encoder_options(args)).encode_batch(list(topics.values()))))
    encode_s = time.perf_counter() - t0
    if args.backend == "numba":
        return _numba(args, vectors, qids, encode_s)
    if args.backend == "milvus":
        from splade_anserini.search.milvus_backend import milvus_search

        return Searched(milvus_search(args.uri, args.collection, vectors, args.model, args.vocabulary, k=args.hits),
                        qids, f"Milvus collection {args.collection} at {args.uri}", encode_s)
    if args.pretokenized_topics:
        write_tsvint_topics(args.pretokenized_topics, vectors)
        results = anserini_search(args.index, args.pretokenized_topics, k=args.hits, threads=args.threads)
        return Searched(results, qids, f"Anserini SearchCollection (TsvInt topics written to "
                                       f"{args.pretokenized_topics})", encode_s)
    from splade_anserini.search.impact_searcher import impact_search  # ONNX Runtime + Anserini: no torch in the process

    return Searched(impact_search(args.index, vectors, k=args.hits, threads=args.threads), qids,
                    "ONNX Runtime query encoding + Anserini SimpleImpactSearcher", encode_s)


def _numba(args, vectors: Mapping[str, dict[str, int]], qids: list[str], encode_s: float) -> Searched:
    return Searched(numba_search(args.index, vectors, k=args.hits, threads=args.threads,
                                 storage_precision=args.simulate_storage_precision), qids,
                    "Numba reference index", encode_s)


def _encoder_options(args) -> dict:
    from splade_anserini.search.query_weights import resolve

    return dict(model=args.model, factor=args.factor, splade_doc=args.splade_doc, max_length=args.max_length,
                device=args.device, batch_size=args.batch_size, encoder=getattr(args, "encoder", None),
                query_weights=resolve(getattr(args, "query_weights", None), args.index))


def route(args) -> Callable[..., Searched]:
    """The one way to search what the arguments ask for."""
    from splade_anserini.models import is_onnx_export

    if args.encoded_topics:
        return _encoded_topics
    if args.java_encoder:
        return _java_encoder
    if args.backend == "lucene" and not args.pretokenized_topics and not is_onnx_export(args.model):
        return _pyserini
    return _vectors_first


def _check_index(index: Path, backend: str) -> None:
    if backend == "lucene" and not any(index.glob("segments_*")):
        raise UsageError(f"{index}: not a Lucene index (no segments file); build it with "
                         "`python -m splade_anserini.index`")
    if backend == "numba" and not (index / "header.json").is_file():
        raise UsageError(f"{index}: not a Numba index (no header.json); build it with "
                         "`python -m splade_anserini.index --backend numba`")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(description="Search SPLADE queries on a Lucene impact (or Numba) index.")
    parser.add_argument("--index", help="Lucene or Numba index (not with --backend milvus)")
    parser.add_argument("--topics", help="topics: BEIR queries.jsonl or qid<TAB>query text (.gz or not)")
    parser.add_argument("--output", required=True, help="TREC run file to write (e.g. runs/scifact.trec; an existing file is "
                        "replaced only if this tool wrote it)")
    parser.add_argument("--hits", type=positive_int, default=1000)
    parser.add_argument("--threads", type=positive_int, default=os.cpu_count() or 1)
    parser.add_argument("--batch-size", type=positive_int, default=32, help="query encoding batch size")
    parser.add_argument("--model", default="splade-tiny",
                        help="checkpoint directory, hub id, splade-tiny, or an ONNX export directory (no torch)")
    parser.add_argument("--factor", default=None,
                        help="the documents' quantization factor (default: the one the index records; another is refused)")
    parser.add_argument("--allow-other-query-encoder", action="store_true",
                        help="accept a query model other than the one that encoded the index (asymmetric models, "
                             "SPLADE-doc); recorded in <output>.provenance.json")
    parser.add_argument("--max-length", type=positive_int, default=256, help="query max length in tokens")
    parser.add_argument("--splade-doc", action="store_true", help="SPLADE-doc: queries are bags of WordPiece tokens")
    parser.add_argument("--query-weights", default="ones", metavar="ones|idf|FILE",
                        help="SPLADE-doc query token weights: 1, the index's IDF table (inference-free queries), "
                             "or a table file")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backend", choices=BACKENDS, default="lucene")
    parser.add_argument("--uri", help="--backend milvus: a Milvus Lite file (.db) or a server address")
    parser.add_argument("--collection", help="--backend milvus: the collection `export --to milvus` wrote")
    parser.add_argument("--simulate-storage-precision", action="store_true",
                        help="numba backend: keep 9 significant bits of each document impact, as OpenSearch "
                             "rank_features and Elasticsearch sparse_vector store them")
    parser.add_argument("--tag", default=None, help="run tag (default: the output file stem)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--pretokenized-topics", metavar="OUT.tsv",
                       help="write the encoded topics as TsvInt here and search them with Anserini SearchCollection")
    group.add_argument("--encoded-topics", metavar="IN.tsv",
                       help="search an existing TsvInt topics file (no model) with SearchCollection")
    group.add_argument("--java-encoder", metavar="EXPORT_DIR",
                       help="encode the topics inside the JVM with Anserini's ONNX SPLADE encoder running this export")
    parser.add_argument("--max-passage", action="store_true",
                        help="MaxP: score each document by its best passage (ids docid#k); --hits passages are searched")
    parser.add_argument("--max-passage-hits", type=positive_int, default=100,
                        help="documents kept per query with --max-passage")
    parser.add_argument("--max-passage-delimiter", default=None,
                        help="passage id = docid + delimiter + k (default: the index's, else #)")
    return parser


def check_options(parser: ArgumentParser, args) -> None:
    """Refuse, before any work, what the chosen route would ignore or fail on late."""
    if not args.topics and not args.encoded_topics:
        parser.error("--topics is required unless --encoded-topics is given")
    if args.encoded_topics and args.topics:
        parser.error("--encoded-topics replaces --topics: give one of them")
    if args.query_weights != "ones" and not args.splade_doc:
        parser.error("--query-weights weighs SPLADE-doc queries: add --splade-doc")
    from splade_anserini.search.milvus_backend import check_backend_options

    check_backend_options(parser, args)
    if args.max_passage_delimiter == "":
        parser.error("--max-passage-delimiter must be non-empty")
    if args.backend == "numba" and args.pretokenized_topics:
        parser.error("--pretokenized-topics feeds Anserini SearchCollection; the numba backend would ignore it")
    if args.backend == "numba" and args.java_encoder:
        parser.error("--java-encoder searches the Lucene index (--backend lucene)")
    if args.encoded_topics and args.splade_doc:
        parser.error("--splade-doc changes how queries are encoded; --encoded-topics are encoded already")
    if args.java_encoder and args.splade_doc:
        parser.error("--splade-doc queries are bags of tokens: no Java-side encoder is needed (use --model)")
    if args.backend != "milvus":
        _check_index(Path(args.index), args.backend)
    if not args.encoded_topics and not args.java_encoder:
        from splade_anserini.models import check_max_length, is_onnx_export

        if not is_onnx_export(args.model):
            check_max_length(args.model, args.max_length)


def read_search_topics(path) -> dict[str, str]:
    """The topics to search: blank queries (whitespace, zero-width characters) are named in one
    warning line and get no hits; a file of only blank queries is refused."""
    from splade_anserini.conversion.topics import split_blank

    from splade_anserini.data import read_topics

    topics, blank = split_blank(read_topics(path), path)
    if blank:
        shown = ", ".join(blank[:10]) + (f" and {len(blank) - 10} more" if len(blank) > 10 else "")
        print(f"warning: {path}: {len(blank)} blank queries (whitespace or zero-width characters only) get no "
              f"hits: {shown}", file=sys.stderr, flush=True)
    return topics


def check_query_model(args, plan) -> dict | None:
    """Load the query encoder (kept on ``args.encoder``) or read the Java-side export, and hold its
    model and factor against the index's provenance; returns the query model's identity."""
    from splade_anserini import provenance
    from splade_anserini.models import read_export_metadata

    if args.encoded_topics:
        return None
    if args.java_encoder:
        meta = read_export_metadata(args.java_encoder)
        identity = {"name": meta["source_model"], "sha256": meta["source_sha256"]}
        provenance.check_export(plan, args.index, args.java_encoder, meta)
    else:
        from splade_anserini.search.query_encoder import load_query_encoder

        from splade_anserini.search.query_weights import resolve

        args.encoder = load_query_encoder(args.model, splade_doc=args.splade_doc, max_length=args.max_length,
                                          device=args.device,
                                          query_weights=resolve(getattr(args, "query_weights", None), args.index))
        identity = provenance.model_identity(args.encoder)
        if isinstance(getattr(args.encoder, "meta", None), dict):
            provenance.check_export(plan, args.index, args.model, args.encoder.meta)
    provenance.check_query_model(plan, args.index, identity, allow_other=args.allow_other_query_encoder)
    return identity


@command
def main(argv: list[str] | None = None) -> int:
    from splade_anserini import provenance
    from splade_anserini.outputs import check_file, output_file, record_file

    parser = build_parser()
    args = parser.parse_args(argv)
    check_options(parser, args)
    from splade_anserini.search.milvus_backend import search_plan

    plan = search_plan(args)
    args.factor = plan.factor
    inputs = (args.topics, args.encoded_topics, args.java_encoder)
    if args.pretokenized_topics:
        if args.topics and os.path.abspath(args.pretokenized_topics) == os.path.abspath(args.topics):
            raise UsageError(f"{args.pretokenized_topics}: the output is also an input of this command; "
                             "choose another path")
        check_file(args.pretokenized_topics, "topics")
    with output_file(args.output, "run", inputs=inputs):
        n, found, results, elapsed, query_model = _search_and_write(args, plan)
    if args.pretokenized_topics:
        record_file(args.pretokenized_topics, "topics")
    if plan.other_encoder is not None:
        side = provenance.side_file(args.output)
        with output_file(side, "provenance"):
            from splade_anserini.conversion.atomic import atomic_open

            with atomic_open(side) as fh:
                json.dump(plan.side_record(query_model), fh, indent=2)
                fh.write("\n")
    plan.tell()
    empty = sum(1 for hits in results.values() if not hits)
    print(f"{len(found.qids)} queries searched with {found.how}: {n:,} hits written to {args.output} in "
          f"{elapsed:.1f} s" + (f" (query encoding {found.encode_s:.1f} s)" if found.encode_s else "")
          + (f"; {empty} queries had no hit" if empty else ""))
    return 0


def _search_and_write(args, plan):
    """Search as the arguments ask and write the run: ``(hits written, Searched, results, seconds,
    query model identity)``."""
    tag = args.tag or Path(args.output).stem.replace(" ", "_") or "splade-anserini"
    start = time.perf_counter()
    topics = None if args.encoded_topics else read_search_topics(args.topics)
    query_model = check_query_model(args, plan)
    found = route(args)(args, topics)
    results = order_like(found.results, found.qids)
    if args.max_passage:  # one aggregation over the ranked hits, whatever the backend
        results = max_passage(results, args.max_passage_hits, plan.delimiter)
    n = write_run(args.output, results, tag, k=args.max_passage_hits if args.max_passage else args.hits)
    return n, found, results, time.perf_counter() - start, query_model


if __name__ == "__main__":
    sys.exit(main())
