"""A native-BEIR copy of a converted dataset folder, for tests and the acceptance measurement.

    python tests/beir_copy.py ../shared/data/scifact /tmp/scifact-beir

Writes ``corpus.jsonl`` (with BEIR's ``metadata`` field), one ``queries.jsonl`` holding the queries
of every split (as BEIR ships them) and ``qrels/<split>.tsv`` with the ``query-id corpus-id score``
header, from ``corpus.jsonl``, ``queries.<split>.tsv`` and ``qrels.<split>.txt``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from splade_anserini.conversion.topics import read_topics  # noqa: E402
from splade_anserini.conversion.trec import iter_qrels  # noqa: E402


def make_beir_copy(src: Path, dst: Path, split: str | None = None) -> Path:
    """Copy ``src`` (converted layout) to ``dst`` in the BEIR layout; every split unless ``split``."""
    src, dst = Path(src), Path(dst)
    (dst / "qrels").mkdir(parents=True, exist_ok=True)
    with open(src / "corpus.jsonl", encoding="utf-8") as fin, open(dst / "corpus.jsonl", "w", encoding="utf-8") as fout:
        for line in fin:
            if line.strip():
                obj = json.loads(line)
                fout.write(json.dumps({"_id": obj["_id"], "title": obj.get("title", ""), "text": obj["text"],
                                       "metadata": {}}) + "\n")
    splits = sorted(p.name[len("qrels."):-len(".txt")] for p in src.glob("qrels.*.txt"))
    with open(dst / "queries.jsonl", "w", encoding="utf-8") as fq:
        for s in splits:
            for qid, text in read_topics(src / f"queries.{s}.tsv").items():
                fq.write(json.dumps({"_id": qid, "text": text, "metadata": {}}) + "\n")
    for s in splits if split is None else [split]:
        with open(dst / "qrels" / f"{s}.tsv", "w", encoding="utf-8") as fh:
            fh.write("query-id\tcorpus-id\tscore\n")
            for j in iter_qrels(src / f"qrels.{s}.txt"):
                fh.write(f"{j.qid}\t{j.docid}\t{j.relevance}\n")
    return dst


if __name__ == "__main__":
    print(make_beir_copy(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None))
