"""Mine hard negatives as a TREC run for the trainer's ``--negatives``: BM25 through Anserini
(Pyserini's LuceneSearcher), or a SPLADE model through our exact Numba index (``--model``), the
second stage of the SPLADE v2 recipe (negatives from a first-stage SPLADE model).

    python -m splade_anserini.train.mine_negatives --corpus corpus.jsonl --queries queries.tsv \\
        --qrels qrels.txt --output runs/bm25-train.trec --hits 100 [--index DIR] [--threads N]
    python -m splade_anserini.train.mine_negatives --model runs/train/stage1/checkpoint-best \\
        --corpus corpus.jsonl --queries queries.tsv --qrels qrels.txt --output runs/splade-train.trec

The run holds the top ``--hits`` per query (positives included: the trainer drops a query's
positives when it samples negatives). With ``--qrels``, the judged documents must exist in the
corpus, and the recall of the positives in the run is reported. ``--index`` keeps the index there
(BM25: a Lucene index; ``--model``: a Numba index of the model's x100 impacts, stamped with the
model and settings, reused only when they match); otherwise it is built in memory or a temporary
directory. ``--vectors DIR`` (with ``--model``) takes the corpus as ``encode_corpus`` already wrote it
with that model (x100 JsonVectorCollection) and encodes only the queries.
"""
from __future__ import annotations

import sys
import tempfile
import time

from splade_anserini.cli import ArgumentParser, command, positive_int
from splade_anserini.outputs import check_file, output_file
from splade_anserini.progress import Progress


def _check_qrels(corpus: str, queries: str, qrels: str | None, topics: dict):
    from splade_anserini.data import read_corpus, read_qrels
    from splade_anserini.train.data import check_references

    if not qrels:
        return None
    judged = read_qrels(qrels)
    doc_ids = {d.docid: "" for d in read_corpus(corpus)}
    check_references(doc_ids, topics, judged, None, {"qrels": qrels, "queries": queries, "corpus": corpus})
    return judged


def _recall_stats(judged, run) -> dict:
    pos = [(q, d) for q, docs in judged.items() for d, r in docs.items() if r > 0]
    found = sum(1 for q, d in pos if d in {h for h, _ in run.get(q, [])})
    negs = [sum(1 for h, _ in run.get(q, []) if judged.get(q, {}).get(h, 0) <= 0) for q in judged]
    return dict(positives=len(pos), positives_in_run=found, avg_negatives=round(sum(negs) / max(1, len(negs)), 1))


def _splade_index(model: str, corpus: str, index: str | None, *, max_length: int, batch_size: int, factor: float,
                  vectors: str | None = None):
    """The Numba index of ``corpus`` encoded by ``model`` (built, reused from ``index`` when its
    stamp matches, or read from ``vectors``, the corpus already encoded by ``encode_corpus``), and
    the encoder."""
    import json
    from pathlib import Path

    from splade_anserini.conversion.errors import InputError

    from splade_anserini.models import resolve_model
    from splade_anserini.index.numba_index import NumbaIndex
    from splade_anserini.encode.splade import SpladeEncoder
    from splade_anserini.train.data import load_corpus_texts

    enc = SpladeEncoder(model, max_length=max_length, query_max_length=max_length)
    stamp = {"model": str(Path(resolve_model(model)).resolve()) if Path(resolve_model(model)).is_dir() else model,
             "corpus": str(Path(corpus).resolve()), "max_length": max_length, "factor": factor}
    from splade_anserini import outputs

    stamp_file = Path(index) / "mined_with.json" if index else None
    if index and outputs.check_dir(index, "numba-index"):  # anything but our own index is refused
        if not stamp_file.is_file():
            raise InputError(index, None, "a Numba index not mined with --model; give another --index")
        if json.loads(stamp_file.read_text()) != stamp:
            raise InputError(str(stamp_file), None, f"index {index} was built with other settings "
                             f"({stamp_file.read_text().strip()}); give another --index")
        return NumbaIndex.load(index), enc
    if vectors:
        idx = NumbaIndex.from_jsonvector(vectors, factor)
        missing = set(load_corpus_texts(corpus)) - set(idx.docids)
        if missing:
            raise InputError(vectors, None, f"{len(missing)} documents of {corpus} are missing "
                             f"(e.g. {sorted(missing)[0]!r}): not the vectors of this corpus")
        return idx, enc
    texts = load_corpus_texts(corpus)
    ids = list(texts)
    with Progress("mine-negatives: encoding documents", total=len(ids), unit="doc") as bar:
        vectors = enc.encode_documents([texts[d] for d in ids], batch_size=batch_size, progress=bar)
    idx = NumbaIndex.from_encoded(ids, vectors, enc.vocab, factor)
    if index:
        tmp = outputs.temp_dir(index, "building")
        try:
            idx.save(tmp)
            outputs.write_text(tmp / stamp_file.name, json.dumps(stamp) + "\n")
            with outputs.lock(outputs.lock_path(Path(index)), f"index {index}"):
                outputs.check_dir(index, "numba-index")
                outputs.install_dir(tmp, index, "numba-index")
        finally:
            outputs.remove(tmp)
    return idx, enc


def mine_splade(model: str, corpus: str, queries: str, output: str, *, hits: int = 100, qrels: str | None = None,
                index: str | None = None, threads: int = 1, max_length: int = 256, batch_size: int = 32,
                factor: float = 100.0, vectors: str | None = None) -> dict:
    """Top ``hits`` per query of exact retrieval with ``model`` over its own x100 impacts (the
    Numba reference index: the same ranking as the Lucene impact index)."""
    from splade_anserini.conversion.trec import write_run

    from splade_anserini.data import read_topics

    check_file(output, "run")  # refused before any work, not after
    topics = read_topics(queries)
    judged = _check_qrels(corpus, queries, qrels, topics)
    start = time.time()
    idx, enc = _splade_index(model, corpus, index, max_length=max_length, batch_size=batch_size, factor=factor,
                             vectors=vectors)
    qids = list(topics)
    with Progress("mine-negatives: encoding and searching queries", total=len(qids), unit="query") as bar:
        q_vecs = enc.encode_queries([topics[q] for q in qids], batch_size=batch_size)
        run = idx.search_run({q: enc.to_impacts(v, factor) for q, v in zip(qids, q_vecs)}, k=hits, threads=threads)
        bar.update(len(qids))
    with output_file(output, "run", inputs=(corpus, queries, qrels)):
        n = write_run(output, run, tag="splade")
    stats = {"queries": len(topics), "lines": n, "seconds": round(time.time() - start, 1)}
    if judged is not None:
        stats.update(_recall_stats(judged, run))
    return stats


def mine(corpus: str, queries: str, output: str, *, hits: int = 100, qrels: str | None = None,
         index: str | None = None, threads: int = 1, k1: float | None = None, b: float | None = None) -> dict:
    from splade_anserini.conversion.trec import write_run

    from splade_anserini.search.bm25 import B, K1, bm25_search, build_bm25_index
    from splade_anserini.data import read_topics

    check_file(output, "run")  # refused before any work, not after
    topics = read_topics(queries)
    judged = _check_qrels(corpus, queries, qrels, topics)
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="bm25-index-") as tmp:
        with Progress("mine-negatives: BM25 index", unit="index") as bar:
            idx = build_bm25_index(corpus, index or f"{tmp}/index", threads=threads)
            bar.update()
        with Progress("mine-negatives: BM25 search", total=len(topics), unit="query") as bar:
            run = bm25_search(idx, topics, k=hits, k1=K1 if k1 is None else k1, b=B if b is None else b,
                              threads=threads)
            bar.update(len(topics))
    with output_file(output, "run", inputs=(corpus, queries, qrels)):
        n = write_run(output, run, tag="bm25")
    stats = {"queries": len(topics), "lines": n, "seconds": round(time.time() - start, 1)}
    if judged is not None:
        stats.update(_recall_stats(judged, run))
    return stats


@command
def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description="Mine hard negatives as a TREC run: BM25 (Anserini via Pyserini), "
                                       "or a SPLADE model (--model) through the exact Numba index.")
    parser.add_argument("--model", help="mine with this SPLADE checkpoint (directory, hub id or splade-tiny) "
                                        "instead of BM25")
    parser.add_argument("--corpus", required=True, help="BEIR corpus.jsonl or MS MARCO collection.tsv")
    parser.add_argument("--queries", required=True, help="qid<TAB>text")
    parser.add_argument("--qrels", help="check judged documents exist; report recall of positives")
    parser.add_argument("--output", required=True, help="TREC run to write")
    parser.add_argument("--hits", type=positive_int, default=100)
    parser.add_argument("--index", help="index directory to build or reuse (BM25: Lucene; --model: Numba)")
    parser.add_argument("--threads", type=positive_int, default=1)
    parser.add_argument("--max-length", type=positive_int, default=256, help="--model: max tokens of documents and queries")
    parser.add_argument("--batch-size", type=positive_int, default=32, help="--model: encoding batch size")
    parser.add_argument("--vectors", help="--model: the corpus already encoded by this model (encode_corpus output, "
                                          "x100 JsonVectorCollection); only the queries are encoded")
    parser.add_argument("--k1", type=float, default=None, help="BM25 k1 (default: 0.9)")
    parser.add_argument("--b", type=float, default=None, help="BM25 b (default: 0.4)")
    args = parser.parse_args(argv)
    if args.model:
        stats = mine_splade(args.model, args.corpus, args.queries, args.output, hits=args.hits, qrels=args.qrels,
                            index=args.index, threads=args.threads, max_length=args.max_length,
                            batch_size=args.batch_size, vectors=args.vectors)
    else:
        stats = mine(args.corpus, args.queries, args.output, hits=args.hits, qrels=args.qrels, index=args.index,
                     threads=args.threads, k1=args.k1, b=args.b)
    msg = f"wrote {stats['lines']} lines for {stats['queries']} queries to {args.output} in {stats['seconds']}s"
    if "positives" in stats:
        msg += (f"; {stats['positives_in_run']}/{stats['positives']} positives in the top {args.hits}, "
                f"{stats['avg_negatives']} negatives per query")
    print(msg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
