"""Export a vectors folder into a Milvus collection (a Milvus Lite file or a cluster's address).

The collection holds one row a document: ``docid`` (``VARCHAR`` primary key) and ``vector``
(``SPARSE_FLOAT_VECTOR``: the tokenizer's vocabulary ids as dimensions, the integer impacts as
values), indexed ``SPARSE_INVERTED_INDEX`` with metric ``IP``: an exact inner product, the score a
Lucene impact index gives. Its properties record that this tool wrote it, the vectors' provenance
(model, weights digest, factor), the vocabulary's digest and, once every document is in, the count;
the description repeats model and factor for people browsing a cluster.

Resumable: an interrupted export, run again with the same arguments, reads the ids already in the
collection and inserts only the others. A collection this tool did not write is never dropped or
written into; a complete one is replaced only with ``overwrite``.

Every input line is validated (and every token looked up in the vocabulary) before the collection is
touched: bad input ends in one line and leaves nothing behind.
"""
from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from splade_anserini.conversion.errors import InputError, UsageError
from splade_anserini.conversion.jsonvector import MAX_ID_BYTES, read_jsonvector

from splade_anserini.export.vocab import Vocabulary, read_vocabulary, to_dimensions

TOOL_KEY = "splade_anserini.tool"
TOOL_VALUE = "splade-anserini milvus export v1"
PROVENANCE_KEY = "splade_anserini.provenance"
VOCABULARY_KEY = "splade_anserini.vocabulary"
COMPLETE_KEY = "splade_anserini.documents"
#: Milvus caps a search's ``limit`` (topk) at this.
MAX_TOPK = 16384
_CLIENTS: dict = {}


@dataclass
class MilvusExport:
    uri: str
    collection: str
    documents: int
    inserted: int
    resumed_from: int
    seconds: float

    def summary(self) -> str:
        resumed = f" (resumed: {self.resumed_from:,} were already there)" if self.resumed_from else ""
        return (f"milvus collection {self.collection} at {self.uri}: {self.documents:,} documents, {self.inserted:,} "
                f"inserted in {self.seconds:.1f} s{resumed}")


def is_local(uri: str) -> bool:
    """A Milvus Lite file (a path), not a server address."""
    return "://" not in uri


def connect(uri: str):
    """A ``MilvusClient`` on ``uri``; a Milvus Lite path is checked with :mod:`splade_anserini.outputs`."""
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")  # Milvus Lite's keep-alive complaints are not ours to show
    try:
        from pymilvus import MilvusClient
    except ImportError:
        raise UsageError("the milvus backend needs pymilvus and milvus-lite: pip install 'splade-anserini[milvus]'") from None
    if is_local(uri):
        path = Path(uri)
        if path.is_symlink():
            from splade_anserini.outputs import refusal

            raise refusal(path, "a symbolic link; it is never followed")
        if not path.name.endswith(".db"):
            raise UsageError(f"--uri {uri}: a Milvus Lite database name ends in .db (or give a server address http://HOST:19530)")
        path.parent.mkdir(parents=True, exist_ok=True)
    if uri not in _CLIENTS:  # one client a URI per process: pymilvus shares its connection, Milvus Lite its server
        _CLIENTS[uri] = MilvusClient(uri)
    return _CLIENTS[uri]


def properties(client, collection: str) -> dict:
    return dict(client.describe_collection(collection).get("properties") or {})


def check_ours(client, uri: str, collection: str) -> dict:
    """The properties of a collection this tool wrote; any other is refused in one line."""
    props = properties(client, collection)
    if props.get(TOOL_KEY) != TOOL_VALUE:
        from splade_anserini.outputs import OutputRefused

        raise OutputRefused(f"milvus collection {collection} at {uri} exists and was not written by splade-anserini "
                            "(no splade_anserini.tool property); choose another --collection or remove it yourself")
    return props


def record(props: dict) -> tuple[dict | None, dict | None, int | None]:
    """``(provenance, vocabulary record, documents when complete)`` from a collection's properties."""
    def load(key):
        return json.loads(props[key]) if props.get(key) else None

    done = props.get(COMPLETE_KEY)
    return load(PROVENANCE_KEY), load(VOCABULARY_KEY), int(done) if done else None


def _describe(prov: dict | None) -> str:
    if prov is None or prov.get("model") is None:
        return "splade-anserini export of vectors without a recorded model"
    return (f"splade-anserini export: {prov['model']['name']} (sha256 {prov['model']['sha256'][:12]}), "
            f"impacts x{prov['factor']:g}")[:250]


def create(client, collection: str, prov: dict | None, vocab: Vocabulary) -> None:
    """A new collection: the schema, the exact sparse inner-product index, our properties."""
    from pymilvus import DataType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False, description=_describe(prov))
    schema.add_field("docid", DataType.VARCHAR, is_primary=True, max_length=MAX_ID_BYTES)
    schema.add_field("vector", DataType.SPARSE_FLOAT_VECTOR)
    index = client.prepare_index_params()
    index.add_index(field_name="vector", index_type="SPARSE_INVERTED_INDEX", metric_type="IP")
    client.create_collection(collection, schema=schema, index_params=index, description=_describe(prov),
                             properties={TOOL_KEY: TOOL_VALUE, PROVENANCE_KEY: json.dumps(prov),
                                         VOCABULARY_KEY: json.dumps(vocab.record())})


def existing_ids(client, collection: str, batch: int = 10000) -> set[str]:
    """The docids already in the collection (what an interrupted export wrote)."""
    ids: set[str] = set()
    it = client.query_iterator(collection, batch_size=batch, filter="", output_fields=["docid"],
                               consistency_level="Strong")
    try:
        while rows := it.next():
            ids.update(r["docid"] for r in rows)
    finally:
        it.close()
    return ids


def _validate(input_path, vocab: Vocabulary) -> int:
    """Read every document once (the indexes' validator, every token in the vocabulary): the count."""
    n = 0
    for doc in read_jsonvector(input_path):
        to_dimensions(doc.vector, vocab, docid=doc.docid)
        n += 1
    if not n:
        raise InputError(input_path, None, "no documents")
    return n


def _prepare(client, uri: str, collection: str, prov, vocab: Vocabulary, overwrite: bool) -> set[str]:
    """Create the collection, or take back ours: ``overwrite`` drops it, a matching unfinished one is
    resumed (the ids it holds are returned), anything else is refused."""
    if client.has_collection(collection):
        old_prov, old_vocab, done = record(check_ours(client, uri, collection))
        same = old_prov == prov and (old_vocab or {}).get("sha256") == vocab.sha256
        if not overwrite and not same:
            raise UsageError(f"milvus collection {collection} at {uri} holds vectors of other provenance or "
                             "vocabulary; pass --overwrite to replace it, or choose another --collection")
        if not overwrite and done is not None:
            raise UsageError(f"milvus collection {collection} at {uri} is complete ({done:,} documents); pass "
                             "--overwrite to export again")
        if not overwrite:
            return existing_ids(client, collection)
        client.drop_collection(collection)
    create(client, collection, prov, vocab)
    return set()


@contextmanager
def _locked(uri: str, collection: str) -> Iterator[None]:
    from splade_anserini import outputs

    if not is_local(uri):
        yield
        return
    with outputs.lock(outputs.lock_path(f"{uri}.{collection}"), f"milvus collection {collection} at {uri}"):
        yield


def _insert_all(client, collection: str, input_path, vocab: Vocabulary, skip: set[str], total: int,
                batch_size: int) -> int:
    from splade_anserini.progress import Progress

    rows, inserted = [], 0
    with Progress(f"milvus insert {collection}", total=total, initial=len(skip), unit="doc") as bar:
        try:
            for doc in read_jsonvector(input_path):
                if doc.docid not in skip:
                    rows.append({"docid": doc.docid,
                                 "vector": {d: float(w) for d, w in to_dimensions(doc.vector, vocab).items()}})
                if len(rows) >= batch_size:
                    client.insert(collection, rows)
                    inserted, rows = inserted + len(rows), []
                    bar.update(batch_size)
            if rows:
                client.insert(collection, rows)
                inserted += len(rows)
                bar.update(len(rows))
        except KeyboardInterrupt:
            raise KeyboardInterrupt(f"{len(skip) + inserted:,} of {total:,} documents are in milvus collection "
                                    f"{collection}; rerun the same command to resume") from None
    return inserted


def count(client, collection: str) -> int:
    rows = client.query(collection, filter="", output_fields=["count(*)"], consistency_level="Strong")
    return int(rows[0]["count(*)"])


def export_milvus(input_path: str | os.PathLike, uri: str, collection: str, *, model: str | None = None,
                  batch_size: int = 1000, overwrite: bool = False) -> MilvusExport:
    """Export (or resume exporting) the vectors at ``input_path`` into ``collection`` at ``uri``."""
    from splade_anserini.provenance import read_vectors

    prov = read_vectors(input_path)
    model = model or ((prov or {}).get("model") or {}).get("name")
    if not model:
        raise UsageError(f"{input_path}: the vectors record no model; give --model (its vocabulary maps tokens "
                         "to dimensions)")
    vocab = read_vocabulary(model)
    start = time.perf_counter()
    total = _validate(input_path, vocab)
    client = connect(uri)
    with _locked(uri, collection):
        skip = _prepare(client, uri, collection, prov, vocab, overwrite)
        inserted = _insert_all(client, collection, input_path, vocab, skip, total, batch_size)
        client.flush(collection)
        found = count(client, collection)
        if found != total:
            raise RuntimeError(f"milvus collection {collection} at {uri} holds {found:,} rows for {total:,} documents "
                               "(another writer?); export it again with --overwrite")
        client.alter_collection_properties(collection, properties={COMPLETE_KEY: str(total)})
    return MilvusExport(uri, collection, total, inserted, len(skip), time.perf_counter() - start)


__all__ = ["MilvusExport", "export_milvus", "connect", "check_ours", "record", "MAX_TOPK"]
