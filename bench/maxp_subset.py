"""Truncation at 256 / 512 against passages (MaxP), scored exactly (Numba) from vectors already encoded.

    python -m bench.maxp_subset --dataset cacm --long-corpus work/maxp-delta/cacm-long.jsonl
    splade-anserini encode --corpus work/maxp-delta/cacm-long.jsonl --output work/maxp-delta/cacm-long-512 \\
        --max-length 512     # and --passage-length 256 --passage-stride 128 into cacm-long-p256s128
    python -m bench.maxp_subset --dataset cacm --all --base work/cacm-splade-tiny/vectors \\
        --t512 work/maxp-delta/cacm-long-512 --passages work/maxp-delta/cacm-long-p256s128 --json runs/maxp/cacm.json
    python -m bench.maxp_subset --table runs/maxp/scifact.json runs/maxp/cacm.json [--results results]

A cheaper equivalent of ``bench/maxp_table.py`` on a loaded machine. Only documents longer than 256
WordPiece tokens encode differently in the three settings (a shorter document is one passage
``docid#0`` with the same text, and 512 tokens truncate nothing more), so ``--t512`` and
``--passages`` need only hold those documents (``encode_corpus`` on a corpus of the long documents,
or the committed blocks of an unfinished full encoding); every other document takes its vector from
``--base`` (the 256-token run). ``--long-corpus OUT`` writes those documents (the corpus's own lines) for
``encode``. Without ``--all`` the collection is the longest prefix of the corpus that the sources cover
completely (``--documents N``: the first N documents, which they must cover), and the qrels are restricted
to it (topics with a judged document in it). ``--table`` writes ``results/maxp-subset.json`` from the
``--json`` files of such runs, one group of rows each. Scores are exact (Numba, the same ranking as Lucene); passages are searched 5000 deep and
folded by :func:`conversion.trec.max_passage` into 1000 documents.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load(paths: list[str]) -> dict[str, dict[str, int]]:
    from splade_anserini.conversion.jsonvector import collection_files, read_jsonvector

    out: dict[str, dict[str, int]] = {}
    for p in paths:
        files = collection_files(p) if Path(p).is_dir() else [Path(p)]
        for f in files:
            for doc in read_jsonvector(f):
                out[doc.docid] = dict(doc.vector)
    return out


TITLE = "Truncation against passages (MaxP), long documents re-encoded"
COLUMNS = ["collection", "documents as", "nDCG@10", "R@100", "sequences indexed", "postings", "tokens encoded"]
DISPLAY = {"scifact": "SciFact", "cacm": "CACM", "msmarco-dl19-subset": "MS MARCO DL19 subset"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (``--help`` imports nothing heavy)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset")
    p.add_argument("--split", default=None)
    p.add_argument("--base", help="JsonVectorCollection of the 256-token run")
    p.add_argument("--t512", nargs="+", help="vectors at max length 512 (at least the long documents)")
    p.add_argument("--passages", nargs="+", help="passage vectors docid#k (at least the long documents)")
    p.add_argument("--all", action="store_true", help="the whole corpus must be covered (no prefix)")
    p.add_argument("--documents", type=int, default=None, help="the first N documents (covered: no prefix search)")
    p.add_argument("--long-corpus", help="write the documents longer than 256 tokens (of --documents) here and stop")
    p.add_argument("--model", default="splade-tiny")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None)
    p.add_argument("--table", nargs="+", metavar="JSON", help="write results/maxp-subset.json from these --json files")
    p.add_argument("--results", default="results", help="folder of maxp-subset.json (with --table)")
    args = p.parse_args(argv)
    if not args.table and not args.dataset:
        p.error("--dataset is required (or --table)")
    if args.dataset and not args.long_corpus and not (args.base and args.t512 and args.passages):
        p.error("--base, --t512 and --passages are required (or --long-corpus)")
    return args


def covered_prefix(docs: list, lengths: list[int], t512: dict, by_doc: dict[str, list[str]], whole: bool) -> int:
    """Length of the longest corpus prefix whose long documents the sources cover (all of it if ``whole``)."""
    last_passage_doc = next(reversed(by_doc)) if by_doc else None
    n = 0
    for d, length in zip(docs, lengths):
        long = length > 256
        ok = (not long or d.docid in t512) and (not long or (d.docid in by_doc and d.docid != last_passage_doc
                                                            or whole and d.docid in by_doc))
        if not ok:
            break
        n += 1
    if whole and n < len(docs):
        raise SystemExit(f"error: document {docs[n].docid} (long) is missing from --t512 or --passages")
    return n


def check_short(subset: list, lengths: list[int], base: dict, t512: dict, passages: dict) -> None:
    """Print how many short documents the sources also hold encode as in the 256 run."""
    # the shortcut's premise, checked wherever a source also holds short documents: same vectors
    same = [(t512[d.docid] == base[d.docid]) for d, l in zip(subset, lengths) if l <= 256 and d.docid in t512]
    same += [(passages[f"{d.docid}#0"] == base[d.docid]) for d, l in zip(subset, lengths)
             if l <= 256 and f"{d.docid}#0" in passages]
    if same:
        print(f"short documents also in the sources: {sum(same)} of {len(same)} vectors identical to the 256 run")


def judged_subset(ds, subset: list) -> tuple[dict, dict]:
    """(qrels restricted to ``subset``, topics with a judged document in it)."""
    from splade_anserini.conversion.trec import read_qrels
    from splade_anserini.data import read_topics

    keep = {d.docid for d in subset}
    qrels = {q: {d: r for d, r in j.items() if d in keep} for q, j in read_qrels(ds.qrels).items()}
    qrels = {q: j for q, j in qrels.items() if j}
    topics = {q: t for q, t in read_topics(ds.topics).items() if q in qrels}
    return qrels, topics


def count_tokens(tok, texts: list[str], max_length: int) -> int:
    """WordPiece tokens the encoder reads for ``texts`` truncated at ``max_length``."""
    return sum(len(x) for x in tok(texts, truncation=True, max_length=max_length, verbose=False)["input_ids"])


def passage_config(subset: list, lengths: list[int], base: dict, passages: dict, by_doc: dict[str, list[str]],
                   tok) -> tuple[list, int]:
    """(passage vectors docid#k in corpus order, tokens encoded) of the MaxP setting."""
    psg_docs, psg_tokens = [], 0
    from splade_anserini.encode.passages import split_documents

    long_docs = [d for d, l in zip(subset, lengths) if l > 256]
    texts = {p["_id"]: f"{p['title']} {p['text']}".strip() for p in split_documents(long_docs, tok, 256, 128)}
    for d, length in zip(subset, lengths):
        if length > 256:
            ids = sorted(by_doc[d.docid], key=lambda x: int(x.rpartition("#")[2]))
            assert ids == [f"{d.docid}#{k}" for k in range(len(ids))] and set(ids) <= set(texts), d.docid
            psg_docs += [(pid, passages[pid]) for pid in ids]
            psg_tokens += count_tokens(tok, [texts[pid] for pid in ids], 256)
        else:
            psg_docs.append((f"{d.docid}#0", base[d.docid]))
            psg_tokens += min(length, 256)
    return psg_docs, psg_tokens


def build_configs(subset: list, lengths: list[int], base: dict, t512: dict, passages: dict,
                  by_doc: dict[str, list[str]], tok) -> dict[str, tuple]:
    """Per setting: (vectors, max length, MaxP?, tokens encoded)."""
    configs = {
        "truncate 256": ([(d.docid, base[d.docid]) for d in subset], 256, False,
                         count_tokens(tok, [d.text for d in subset], 256)),
        "truncate 512": ([(d.docid, t512[d.docid] if l > 256 else base[d.docid]) for d, l in zip(subset, lengths)],
                         512, False, count_tokens(tok, [d.text for d in subset], 512)),
    }
    psg_docs, psg_tokens = passage_config(subset, lengths, base, passages, by_doc, tok)
    configs["passages 256, stride 128 (MaxP)"] = (psg_docs, 256, True, psg_tokens)
    return configs


def evaluate_configs(configs: dict[str, tuple], qvecs: dict, qrels: dict, n: int, threads: int) -> list[dict]:
    """Index each setting exactly (Numba), search (MaxP: 5000 passages folded to 1000 documents), score."""
    from splade_anserini.conversion.trec import max_passage
    from splade_anserini.evaluate.measures import evaluate_run
    from splade_anserini.index.numba_index import NumbaIndex

    rows = []
    for label, (vectors, _, maxp, n_tokens) in configs.items():
        idx = NumbaIndex.from_vectors(vectors)
        found = idx.search_run(qvecs, k=5000 if maxp else 1000, threads=threads)
        run = {q: [(str(d), float(s)) for d, s in hits] for q, hits in found.items()}
        if maxp:
            run = max_passage(run, 1000)
        scores = evaluate_run(qrels, {q: dict(h) for q, h in run.items()}, ["nDCG@10", "R@100"]).scores
        rows.append({"config": label, "documents": n, "sequences": len(vectors),
                     "postings": sum(len(v) for _, v in vectors), "tokens": n_tokens, **scores})
    return rows


def print_table(ds, n: int, docs: list, lengths: list[int], topics: dict, rows: list[dict]) -> None:
    """The markdown table of the three settings, after a line on the subset."""
    print(f"{ds.name}: {n} of {len(docs)} documents ({sum(l > 256 for l in lengths[:n])} longer than 256 tokens), "
          f"{len(topics)} topics with judgements in them")
    print("| documents as | nDCG@10 | R@100 | sequences indexed | postings | tokens encoded |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['config']} | {r['nDCG@10']:.4f} | {r['R@100']:.4f} | {r['sequences']:,} | {r['postings']:,} | "
              f"{r['tokens'] / 1e6:.2f} M |")


def write_long_corpus(ds, docs: list, lengths: list[int], out: Path) -> int:
    """The corpus lines of the documents longer than 256 tokens, to ``out`` (complete or absent); their count."""
    from splade_anserini.conversion.atomic import atomic_open

    long_lines = {d.line for d, length in zip(docs, lengths) if length > 256}
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(ds.corpus, encoding="utf-8") as src, atomic_open(out) as dst:
        for number, line in enumerate(src, 1):
            if number in long_lines:
                dst.write(line)
    print(f"wrote {len(long_lines)} of {len(docs)} documents (longer than 256 tokens) to {out}")
    return len(long_lines)


def write_table(files: list[str], folder: str) -> Path:
    """``results/maxp-subset.json`` from the ``--json`` files of one run a dataset."""
    from bench.results import this_command, write_result

    table, described, commands = [], [], []
    for path in files:
        run = json.loads(Path(path).read_text(encoding="utf-8"))
        name, n, every = DISPLAY.get(run["dataset"], run["dataset"]), run["documents"], run["corpus_documents"]
        whole = n == every
        described.append(f"{name}: {'all' if whole else 'the first'} {n:,} {'' if whole else 'corpus '}documents "
                         f"({run['long']:,} longer than 256 tokens), {run['topics']} topics judged on them")
        label = f"{name}, {'all' if whole else 'first'} {n:,} docs, {run['topics']} topics"
        for i, r in enumerate(run["rows"]):
            table.append([label if i == 0 else "", r["config"], f"{r['nDCG@10']:.4f}", f"{r['R@100']:.4f}",
                          f"{r['sequences']:,}", f"{r['postings']:,}", f"{r['tokens'] / 1e6:.2f} M"])
        commands.append(run["command"])
    model = json.loads(Path(files[0]).read_text(encoding="utf-8")).get("model", "splade-tiny")
    return write_result("maxp-subset", TITLE, COLUMNS, table, folder=folder, command=[*commands, this_command()],
                        data=f"{'; '.join(described)}; {model}, exact scores")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.table:
        print(f"wrote {write_table(args.table, args.results)}")
        return 0

    from transformers import AutoTokenizer

    from splade_anserini.data import read_corpus, resolve_dataset
    from splade_anserini.models import resolve_model
    from splade_anserini.search.query_encoder import QueryVectorizer

    ds = resolve_dataset(args.dataset, split=args.split)
    tok = AutoTokenizer.from_pretrained(resolve_model(args.model))
    every = list(read_corpus(ds.corpus))
    docs = every[:args.documents] if args.documents else every
    lengths = [len(x) for x in tok([d.text for d in docs], verbose=False)["input_ids"]]
    if args.long_corpus:
        write_long_corpus(ds, docs, lengths, Path(args.long_corpus))
        return 0
    base, t512, passages = load([args.base]), load(args.t512), load(args.passages)
    by_doc: dict[str, list[str]] = {}
    for pid in passages:
        by_doc.setdefault(pid.rpartition("#")[0], []).append(pid)

    n = covered_prefix(docs, lengths, t512, by_doc, args.all or bool(args.documents))
    subset = docs[:n]
    check_short(subset, lengths, base, t512, passages)
    qrels, topics = judged_subset(ds, subset)
    enc = QueryVectorizer(args.model, factor=100, max_length=256)
    qvecs = dict(zip(topics, enc.encode_batch(list(topics.values()))))
    configs = build_configs(subset, lengths, base, t512, passages, by_doc, tok)
    rows = evaluate_configs(configs, qvecs, qrels, n, args.threads)
    print_table(ds, n, docs, lengths, topics, rows)
    if args.json:
        from bench.results import this_command

        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({
            "dataset": ds.name, "documents": n, "corpus_documents": len(every), "long": sum(l > 256 for l in lengths[:n]),
            "topics": len(topics), "model": args.model, "command": this_command(), "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
