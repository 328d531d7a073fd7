"""Do the qrels fit the documents searched? Judged documents absent from the index or corpus, topics without
a relevant judgment: one warning line of ``evaluate`` (a wrong qrels file otherwise looks like a bad model)."""
from __future__ import annotations

import json
import os
from pathlib import Path


def _collection_ids(path: Path) -> set[str]:
    """The document ids of a JsonVectorCollection (a folder or a file)."""
    from splade_anserini.conversion.jsonvector import collection_files
    from splade_anserini.conversion.textfile import numbered_lines

    ids: set[str] = set()
    for file in collection_files(path):
        for lineno, line in numbered_lines(file):
            try:
                ids.add(str(json.loads(line)["id"]))
            except (ValueError, KeyError, TypeError):
                from splade_anserini.conversion.errors import InputError

                raise InputError(file, lineno, "not a JsonVectorCollection line with an \"id\"") from None
    return ids


def known_docids(path: str | os.PathLike) -> set[str]:
    """The document ids of ``path``: a Numba index (its header), a Lucene index this tool built (the
    collection it was built from), a vectors collection, or a corpus (BEIR ``corpus.jsonl``, MS MARCO tsv)."""
    path = Path(path)
    if (path / "header.json").is_file():
        from splade_anserini.index.numba_index import IndexFormatError

        try:
            return set(json.loads((path / "header.json").read_text(encoding="utf-8"))["docids"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise IndexFormatError(f"{path / 'header.json'}: unreadable ({exc})") from None
    if (path / "splade-anserini-index.json").is_file():
        from splade_anserini.index.build import REPORT_NAME

        report = json.loads((path / REPORT_NAME).read_text(encoding="utf-8"))
        return _collection_ids(Path(report["input"]))
    if path.is_dir() or '"vector"' in _first_line(path):
        return _collection_ids(path)
    from splade_anserini.data import read_corpus

    return {doc.docid for doc in read_corpus(path, check_duplicates=False)}


def _first_line(path: Path) -> str:
    import gzip

    with (gzip.open if path.name.endswith(".gz") else open)(path, "rt", encoding="utf-8", errors="replace") as fh:
        return fh.readline()


def coverage_warning(qrels_path: str | os.PathLike, qrels: dict[str, dict[str, int]],
                     known: set[str] | None, source: str | None) -> str | None:
    """One warning line: how many judged documents ``known`` lacks, how many topics judge none relevant."""
    parts = []
    if known is not None:
        judged = {doc for docs in qrels.values() for doc in docs}
        absent = judged - known
        if absent:
            parts.append(f"{len(absent)} of {len(judged)} judged documents are not in {source} (e.g. "
                         f"{', '.join(sorted(absent)[:3])}); they can never be retrieved")
    unjudged = [q for q, docs in qrels.items() if not any(rel > 0 for rel in docs.values())]
    if unjudged:
        parts.append(f"{len(unjudged)} of {len(qrels)} topics have no relevant judgment (they score 0)")
    return f"warning: {qrels_path}: " + "; ".join(parts) if parts else None
