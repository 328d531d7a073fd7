"""Readers for BEIR and MS MARCO text files, the dataset layouts, and where the shared data lives.

Every reader validates as it goes and raises :class:`conversion.errors.InputError` naming the
file, the line and the problem. Topics and qrels are read by :mod:`conversion.topics` and
:mod:`conversion.trec` (BEIR JSONL / TSV topics, BEIR / TREC qrels, chosen from the content).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, NamedTuple

from splade_anserini.conversion.errors import InputError
from splade_anserini.conversion.jsonvector import docid_problem, encodable
from splade_anserini.conversion.textfile import first_line, json_object, numbered_lines
from splade_anserini.conversion.topics import read_topics  # noqa: F401  (the one topics reader, re-exported)
from splade_anserini.conversion.trec import check_qrels, read_qrels  # noqa: F401  (the one qrels reader, re-exported)

DATA_ENV = "SPLADE_ANSERINI_DATA"


def data_root() -> Path:
    """Where named datasets (``scifact``, ``cacm``, ...) live: ``$SPLADE_ANSERINI_DATA``, else ``./data``,
    else ``../shared/data``, both relative to the current directory (never to the installed source)."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(os.path.abspath(os.path.expanduser(env)))
    for candidate in ("data", os.path.join("..", "shared", "data")):
        if os.path.isdir(candidate):
            return Path(os.path.abspath(candidate))
    return Path(os.path.abspath(os.path.join("..", "shared", "data")))


def data_roots() -> list[Path]:
    """Every place a named dataset is looked for, in order: ``$SPLADE_ANSERINI_DATA`` when set, else
    ``./data`` and ``../shared/data`` (absolute paths)."""
    env = os.environ.get(DATA_ENV)
    if env:
        return [Path(os.path.abspath(os.path.expanduser(env)))]
    return [Path(os.path.abspath(candidate)) for candidate in ("data", os.path.join("..", "shared", "data"))]


def named_dataset_folder(dataset: str) -> Path:
    """The folder of a named dataset: the first data root that has it; else an error naming every place
    searched."""
    places = [root / dataset for root in data_roots()]
    for folder in places:
        if folder.is_dir():
            return folder
    how = f"${DATA_ENV}" if os.environ.get(DATA_ENV) else f"./data, ../shared/data (set ${DATA_ENV} to choose)"
    raise InputError(places[0], None, f"dataset {dataset!r} not found; searched {', '.join(map(str, places))} "
                                      f"({how}); or pass --data-dir")


class Doc(NamedTuple):
    """One corpus document: its 1-based line number in the file, id, text (title and body joined with
    a space) and title (BEIR's, stripped; "" for MS MARCO), a prefix of ``text``."""

    line: int
    docid: str
    text: str
    title: str = ""


def detect_format(path: str | os.PathLike) -> str:
    """``"beir"`` for JSON lines (``corpus.jsonl``), ``"msmarco"`` for ``pid<TAB>text`` files."""
    name = os.fspath(path).removesuffix(".gz")
    if name.endswith((".jsonl", ".json")):
        return "beir"
    if name.endswith((".tsv", ".txt")):
        return "msmarco"
    first = first_line(path).lstrip()
    return "beir" if first.startswith("{") else "msmarco"


def read_corpus(path: str | os.PathLike, fmt: str | None = None, *, check_duplicates: bool = True) -> Iterator[Doc]:
    """Yield the documents of a BEIR ``corpus.jsonl`` or an MS MARCO ``collection.tsv``.

    BEIR title and text are joined with a space, as Pyserini's encoders do. Empty text is yielded
    (the caller counts it and emits the guard vector); everything else malformed raises.
    """
    fmt = fmt or detect_format(path)
    if fmt not in ("beir", "msmarco"):
        raise ValueError(f"unknown corpus format {fmt!r} (expected beir or msmarco)")
    seen: set[str] = set()
    for lineno, line in numbered_lines(path):
        if fmt == "beir":
            obj = json_object(path, lineno, line)
            docid = obj.get("_id", obj.get("id", obj.get("docid")))
            if docid is None or str(docid).strip() == "":
                raise InputError(path, lineno, "missing document id field '_id'")
            if "text" not in obj and "contents" not in obj:
                raise InputError(path, lineno, f"document {docid}: missing 'text' field")
            body = obj.get("text", obj.get("contents"))
            title = obj.get("title") or ""
            if not isinstance(body, str) or not isinstance(title, str):
                raise InputError(path, lineno, f"document {docid}: 'title' and 'text' must be strings")
            text = f"{title} {body}".strip() if title else body.strip()
            if not isinstance(docid, (str, int)) or isinstance(docid, bool):
                raise InputError(path, lineno, f"document id must be a string, got {docid!r}")
            title = title.strip()
            docid = str(docid)
        else:
            title = ""
            docid, sep, text = line.partition("\t")
            if not sep:
                raise InputError(path, lineno, "expected 'pid<TAB>text'")
            docid, text = docid.strip(), text.strip()
            if not docid:
                raise InputError(path, lineno, "missing document id")
        if (problem := docid_problem(docid)):  # refused here, not at the end of a search
            raise InputError(path, lineno, problem)
        if not encodable(text):
            raise InputError(path, lineno, f"document {docid}: text is not valid Unicode (a lone surrogate)")
        if check_duplicates:
            if docid in seen:
                raise InputError(path, lineno, f"duplicate document id {docid!r}")
            seen.add(docid)
        yield Doc(lineno, docid, text, title)


class Triple(NamedTuple):
    line: int
    query: str
    positive: str
    negative: str


def read_triples(path: str | os.PathLike) -> Iterator[Triple]:
    """Yield MS MARCO text triples ``query<TAB>positive<TAB>negative``."""
    for lineno, line in numbered_lines(path):
        parts = line.split("\t")
        if len(parts) != 3 or not all(p.strip() for p in parts):
            raise InputError(path, lineno, f"expected 'query<TAB>positive<TAB>negative', got {len(parts)} "
                                           "non-empty columns" if len(parts) != 3 else "empty column")
        yield Triple(lineno, *(p.strip() for p in parts))


# -- dataset layouts --------------------------------------------------------------------------------------
#: The shared data's named datasets (folders of :func:`data_root`) and the split each evaluates by default
#: (``None``: the folder's unsplit ``queries.tsv`` / ``qrels.txt``).
NAMED_DATASETS: dict[str, str | None] = {"scifact": "test", "cacm": None, "msmarco-dl19-subset": "dl19"}
_GZ = ("", ".gz")
CORPUS_NAMES = tuple(n + z for n in ("corpus.jsonl", "collection.tsv", "corpus.tsv", "collection.jsonl") for z in _GZ)


@dataclass(frozen=True)
class Dataset:
    """A test collection: corpus, topics and qrels files, and the name its runs are filed under."""

    name: str
    corpus: Path
    topics: Path
    qrels: Path
    split: str | None = None


def _first(folder: Path, names) -> Path | None:
    return next((folder / n for n in names if (folder / n).is_file()), None)


def _split_names(stem_dir: str, stem_dot: str, split: str, exts: tuple[str, ...]) -> list[str]:
    """``qrels/<split>.tsv`` (BEIR) and ``qrels.<split>.txt`` (converted) spellings, plain or gz."""
    return [f"{pre}{split}{ext}{z}" for pre in (stem_dir, stem_dot) for ext in exts for z in _GZ]


def available_splits(folder: Path) -> list[str]:
    """The splits a folder has qrels for: ``qrels/<split>.tsv`` and ``qrels.<split>.txt`` files."""
    found = set()
    for path in list(folder.glob("qrels/*")) + list(folder.glob("qrels.*")):
        name = path.name.removesuffix(".gz")
        stem, _, ext = name.rpartition(".")
        if path.is_file() and ext in ("tsv", "txt"):
            found.add(stem.removeprefix("qrels.") if path.parent == folder else stem)
    found.discard("qrels")
    return sorted(s for s in found if s)


def find_dataset(folder: str | os.PathLike, split: str | None = None, *, name: str | None = None) -> Dataset:
    """The corpus, topics and qrels of a dataset folder, for ``split`` (``None``: ``test`` if the folder
    has it, else its unsplit ``qrels.txt``).

    Layouts: BEIR (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``) and the converted /
    MS MARCO one (``corpus.jsonl`` or ``collection.tsv``, ``queries[.<split>].tsv``, ``qrels[.<split>].txt``);
    ``.gz`` everywhere. A missing file or split raises :class:`InputError` naming what the folder has.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, None, "no such dataset folder")
    corpus = _first(folder, CORPUS_NAMES)
    if corpus is None:
        raise InputError(folder, None, "no corpus file (corpus.jsonl or collection.tsv, optionally .gz)")
    qrels_exts = (".tsv", ".txt")
    qrels = _first(folder, _split_names("qrels/", "qrels.", split or "test", qrels_exts))
    used_split = split or "test"
    if qrels is None and split is None:
        qrels, used_split = _first(folder, [f"qrels{e}{z}" for e in qrels_exts for z in _GZ]), None
    if qrels is None:
        have = available_splits(folder)
        unsplit = _first(folder, [f"qrels{e}{z}" for e in qrels_exts for z in _GZ])
        what = f"split {split!r}" if split else "split 'test' nor an unsplit qrels.txt"
        if have:
            where = f"this folder has {', '.join(have)}; choose one with --split"
        else:
            where = f"only the unsplit {unsplit.name}: leave out --split" if unsplit else "this folder has no qrels"
        raise InputError(folder, None, f"no qrels for {what} ({where})")
    topic_names = ([] if used_split is None else
                   [f"queries.{used_split}{e}{z}" for e in (".tsv", ".jsonl") for z in _GZ])
    topics = _first(folder, topic_names + [f"queries{e}{z}" for e in (".jsonl", ".tsv") for z in _GZ])
    if topics is None:
        raise InputError(folder, None, "no topics file (queries.jsonl or queries[.<split>].tsv, optionally .gz)")
    return Dataset(name or folder.name, corpus, topics, qrels, used_split)


def resolve_dataset(dataset: str | None = None, *, data_dir: str | os.PathLike | None = None,
                    split: str | None = None, corpus: str | os.PathLike | None = None,
                    topics: str | os.PathLike | None = None, qrels: str | os.PathLike | None = None) -> Dataset:
    """The files of a run: a named dataset of the shared data (``scifact``, ``cacm``, ...) or any dataset
    folder (``data_dir``) with ``split``, each file replaceable by ``corpus``/``topics``/``qrels``;
    without a folder all three files must be given. The name is the dataset's or the folder's, with
    the split appended when it is not the dataset's default."""
    if dataset is not None and dataset not in NAMED_DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {sorted(NAMED_DATASETS)} or --data-dir")
    if dataset is None and data_dir is None and not (corpus and topics and qrels):
        if corpus or topics or qrels:
            raise ValueError("--corpus, --topics and --qrels go together unless --data-dir or --dataset names "
                             "the folder the others come from")
        dataset = "scifact"
    base = None
    if dataset is not None or data_dir is not None:
        folder = Path(data_dir) if data_dir is not None else named_dataset_folder(dataset)
        default = NAMED_DATASETS.get(dataset or folder.name)
        chosen = split if split is not None else default
        name = dataset or folder.name
        if split is not None and split != (default or "test"):
            name = f"{name}-{split}"
        base = find_dataset(folder, chosen, name=name)
    files = {"corpus": corpus, "topics": topics, "qrels": qrels}
    for key, value in files.items():
        if value is not None and not Path(value).is_file():
            raise InputError(value, None, "no such file")
    if base is None:
        name = Path(corpus).resolve().parent.name or "dataset"
        return Dataset(name, Path(corpus), Path(topics), Path(qrels), split)
    return Dataset(base.name, Path(corpus or base.corpus), Path(topics or base.topics), Path(qrels or base.qrels),
                   base.split)
