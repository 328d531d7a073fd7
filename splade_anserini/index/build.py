"""Build a Lucene impact index (or the Numba reference index) from a JsonVectorCollection.

    python -m splade_anserini.index --input VECTORS_DIR --index INDEX_DIR --threads 4 [--overwrite]
                                    [--backend lucene|numba] [--factor 100] [--quantize FACTOR]

Every input line is first read through the one validator of :mod:`conversion.jsonvector` (the same
for both backends): positive integer weights up to ``MAX_IMPACT``, tokens without whitespace,
unique ids across all the files, non-empty vectors. A refusal names the file and the line, and no
index is left behind. ``--quantize FACTOR`` takes float vectors (from another tool) and quantizes
them as ``encode_corpus`` does.

The Lucene path runs Anserini's ``IndexCollection`` in this process, through the JVM bootstrap
(no ``java`` subprocess), with ``-collection JsonVectorCollection -generator
DefaultLuceneDocumentGenerator -impact -pretokenized``. The index is built in a temporary sibling
directory and renamed into place only when complete; an existing index is never replaced unless
``overwrite`` is given, and then only an index this tool wrote (:mod:`splade_anserini.outputs`:
anything else at ``INDEX_DIR`` is refused, exit status 2, and left as it is). Anserini's counters are checked after the run: skipped, unindexable, empty
or errored documents, or fewer indexed documents than the input holds, fail the build
(:class:`IndexBuildError`, exit status 1) instead of ending as a log line. A second build of the
same index while one runs is refused. Folders left by a killed build are removed by the next build
of the same index. Both backends store the IDF table of the documents' tokens beside the index
(``query_weights.json``, :mod:`.query_weights`): the inference-free query weights of SPLADE-doc models.

The provenance ``encode_corpus`` wrote into the vectors folder (model and weights digest, factor,
max length, pooling, passages) is carried into the index: the ``provenance`` key of
``splade-anserini-index.json`` (Lucene) or ``header.json`` (Numba), which ``search`` checks. A
``--factor`` or ``--quantize`` other than the vectors' factor is refused. A collection ``encode``
wrote is checked against its record first (:mod:`splade_anserini.encode.collection_record`): a part
deleted, truncated or edited is refused (exit status 2), naming the part and both counts.
"""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

from splade_anserini.conversion.errors import InputError, UsageError
from splade_anserini.conversion.jsonvector import collection_files, read_jsonvector, write_jsonvector

from splade_anserini import outputs
from splade_anserini.cli import ArgumentParser, command, positive_int
from splade_anserini.encode.collection_record import check_collection
from splade_anserini.search.query_weights import write_index_table

BACKENDS = ("lucene", "numba")
REPORT_NAME = "splade-anserini-index.json"
#: Hidden folders beside an index while it is built, named after the building process.
_WORK_FOLDER = re.compile(r"^\.(?P<name>.+)\.(?:building|input|old)-(?P<pid>\d+)(?:-[0-9a-f]+)?$")
#: The marker kind of each backend's index (:mod:`splade_anserini.outputs`).
KINDS = {"lucene": "lucene-index", "numba": "numba-index"}


class IndexBuildError(RuntimeError):
    """The index could not be built, or Anserini lost documents on the way."""


class IndexExistsError(IndexBuildError, UsageError):
    """The target index exists and ``overwrite`` was not given (a usage error)."""


@dataclass
class IndexReport:
    backend: str
    index: str
    input: str
    input_documents: int
    indexed: int
    empty: int = 0
    unindexable: int = 0
    skipped: int = 0
    errors: int = 0
    size_bytes: int = 0
    seconds: float = 0.0
    quantized: float | None = None
    guarded: int = 0
    problems: list[str] = field(default_factory=list)
    provenance: dict | None = None

    def summary(self) -> str:
        counters = (f" (Anserini counters: empty {self.empty}, unindexable {self.unindexable}, "
                    f"skipped {self.skipped}, errors {self.errors})" if self.backend == "lucene" else "")
        quantized = (f"; float weights quantized as rint(w * {self.quantized:g}), {self.guarded} emptied vectors "
                     "got the guard" if self.quantized else "")
        return (f"{self.backend} index {self.index}: {self.indexed:,} of {self.input_documents:,} documents indexed"
                f"{counters}{quantized}; {self.size_bytes / 2**20:.1f} MiB in {self.seconds:.1f} s")


def directory_size(path: str | os.PathLike) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def _check_target(index: Path, overwrite: bool, kind: str) -> None:
    """Refuse what this tool did not write at ``index``, and an index of ours without ``overwrite``."""
    if outputs.check_dir(index, kind) and not overwrite:
        raise IndexExistsError(f"index {index} already exists; pass --overwrite (overwrite=True) to replace it")


def _name_the_index(exc: BaseException, index: Path) -> None:
    """A write error without a file name (numpy on a full disk says only "N requested and M
    written") names the index being built."""
    if not isinstance(exc, OSError) or exc.filename is not None:
        return
    if exc.errno is not None:
        raise OSError(exc.errno, exc.strerror, str(index)) from None
    try:
        full = shutil.disk_usage(index.parent).free < 1 << 20
    except OSError:
        full = False
    raise OSError(errno.ENOSPC if full else errno.EIO, os.strerror(errno.ENOSPC) if full else f"write failed ({exc})",
                  str(index)) from None


def remove_leftovers(index: Path) -> list[Path]:
    """Remove the build folders that killed builds of ``index`` left beside it (only those of
    processes that no longer run); returns what was removed."""
    removed = []
    if not index.parent.is_dir():
        return removed
    for path in index.parent.iterdir():
        m = _WORK_FOLDER.match(path.name)
        if m and m["name"] == index.name and not outputs.alive(int(m["pid"])):
            outputs.remove(path)
            removed.append(path)
    return removed


def _prepare_build(input_path, index_path, overwrite: bool, kind: str) -> tuple[Path, Path, Path, Path]:
    """Check the target (the lock is held), remove what killed builds left and create this build's
    folders beside the index: ``(input, index, build dir, staging dir)``."""
    input_path, index = Path(input_path), Path(index_path)
    _check_target(index, overwrite, kind)
    # a missing input, or a collection that does not match its record, fails before anything is created
    check_collection(input_path)
    index.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(index)
    return input_path, index, outputs.temp_dir(index, "building"), outputs.temp_dir(index, "input")


def _locked(index_path, overwrite: bool, kind: str):
    """The lock of one index: a second build of it is refused while one runs."""
    index = Path(index_path)
    _check_target(index, overwrite, kind)  # refused before anything is created beside it
    return outputs.lock(outputs.lock_path(index), f"index {index}")


def index_provenance(input_path: Path, *, quantize: float | None = None, factor: float | None = None) -> dict | None:
    """The provenance the index carries: the vectors folder's (``encode_corpus``), a factor other
    than it refused; for float vectors of another tool (``quantize``) only the factor is known."""
    from splade_anserini.provenance import ProvenanceError, read_vectors, unknown_model

    prov = read_vectors(input_path)
    given = quantize or factor
    if prov is not None and given is not None and given != prov["factor"]:
        raise ProvenanceError(f"{'--quantize' if quantize else '--factor'} {given:g}: the vectors in {input_path} were "
                              f"quantized with factor {prov['factor']:g} (see its provenance); leave the option out")
    if prov is None and quantize:
        prov = unknown_model(quantize)
    return prov


def _stage_input(input_path: Path, staging: Path, quantize: float | None) -> tuple[int, int]:
    """Validate every input document and give Anserini a directory holding only the collection
    files: links to them, or their quantized copies with ``quantize``. ``(documents, guarded)``."""
    seen: dict = {}
    guarded: list[str] = []
    for i, file in enumerate(collection_files(input_path)):
        docs = read_jsonvector(file, factor=quantize, guarded=guarded, seen=seen)
        target = staging / f"{i:05d}-{file.name.removesuffix('.gz')}"
        if quantize:
            write_jsonvector(target, docs)
        else:
            for _ in docs:
                pass
            (staging / f"{i:05d}-{file.name}").symlink_to(file.resolve())
    if not seen:
        raise InputError(input_path, None, "no documents")
    return len(seen), len(guarded)


@contextmanager
def _building(input_path, index_path, overwrite: bool, kind: str) -> Iterator[tuple[Path, Path, Path, Path]]:
    """Lock the index and create the build folders: ``(input, index, build dir, staging dir)``. A
    build that ends well is installed at ``index``; one that fails is removed (a write error names
    the index); the staging folder goes either way."""
    with _locked(index_path, overwrite, kind):
        input_path, index, tmp, staging = _prepare_build(input_path, index_path, overwrite, kind)
        try:
            yield input_path, index, tmp, staging
            _check_target(index, overwrite, kind)  # someone may have created it meanwhile
            outputs.install_dir(tmp, index, kind)
        except BaseException as exc:
            outputs.remove(tmp)
            _name_the_index(exc, index)
            raise
        finally:
            outputs.remove(staging)


def build_lucene_index(input_path: str | os.PathLike, index_path: str | os.PathLike, *, threads: int = 1,
                       overwrite: bool = False, memory_buffer_mb: int | None = None,
                       quiet: bool = True, optimize: bool = False, quantize: float | None = None,
                       factor: float | None = None) -> IndexReport:
    """Index a JsonVectorCollection with Anserini ``IndexCollection -impact -pretokenized``."""
    from splade_anserini import java

    with _building(input_path, index_path, overwrite, KINDS["lucene"]) as (input_path, index, tmp, staging):
        provenance = index_provenance(input_path, quantize=quantize, factor=factor)
        start = time.perf_counter()
        expected, guarded = _stage_input(input_path, staging, quantize)
        try:
            c = java.index_collection(
                {"collection": "JsonVectorCollection", "generator": "DefaultLuceneDocumentGenerator",
                 "input": staging, "index": tmp, "threads": threads, "impact": True, "pretokenized": True,
                 "memoryBuffer": memory_buffer_mb, "optimize": optimize}, expected=expected, quiet=quiet)
        except java.AnseriniError as exc:
            raise IndexBuildError(str(exc)) from None
        report = IndexReport(backend="lucene", index=str(index), input=str(input_path), input_documents=expected,
                             indexed=c.indexed, empty=c.empty, unindexable=c.unindexable, skipped=c.skipped,
                             errors=c.errors, quantized=quantize, guarded=guarded, provenance=provenance)
        report.seconds = time.perf_counter() - start
        report.size_bytes = directory_size(tmp)
        (tmp / REPORT_NAME).write_text(json.dumps(asdict(report), indent=2) + "\n")
        write_index_table(tmp, input_path, quantize)  # SPLADE-doc's inference-free query weights
    return report


def build_numba_index(input_path: str | os.PathLike, index_path: str | os.PathLike, *, factor: float | None = None,
                      overwrite: bool = False, quantize: float | None = None) -> IndexReport:
    """Build the Numba reference index in a temporary place, then rename. With ``quantize`` the
    input holds float weights and ``factor`` is ``quantize``; else ``factor`` defaults to the one the
    vectors' provenance records (100 without one)."""
    from splade_anserini.index.numba_index import NumbaIndex  # lazy: numba is slow to import

    with _building(input_path, index_path, overwrite, KINDS["numba"]) as (input_path, index, tmp, _):
        provenance = index_provenance(input_path, quantize=quantize, factor=factor)
        factor = quantize or factor or (provenance or {}).get("factor") or 100.0
        start = time.perf_counter()
        guarded: list[str] = []
        built = NumbaIndex.from_vectors(read_jsonvector(input_path, factor=quantize, guarded=guarded),
                                        factor=quantize or factor)
        if not built.n_docs:
            raise InputError(input_path, None, "no documents")
        built.save(tmp, provenance)
        report = IndexReport(backend="numba", index=str(index), input=str(input_path), input_documents=built.n_docs,
                             indexed=built.n_docs, seconds=time.perf_counter() - start,
                             size_bytes=directory_size(tmp), quantized=quantize, guarded=len(guarded),
                             provenance=provenance)
        write_index_table(tmp, input_path, quantize)  # SPLADE-doc's inference-free query weights
    return report


def build_index(input_path, index_path, *, backend: str = "lucene", threads: int = 1, overwrite: bool = False,
                factor: float | None = None, quantize: float | None = None, **kwargs) -> IndexReport:
    if backend == "lucene":
        return build_lucene_index(input_path, index_path, threads=threads, overwrite=overwrite, quantize=quantize,
                                  factor=factor, **kwargs)
    if backend == "numba":
        return build_numba_index(input_path, index_path, factor=factor, overwrite=overwrite, quantize=quantize)
    raise UsageError(f"backend must be one of {', '.join(BACKENDS)}, got {backend}")


@command
def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description="Index a JsonVectorCollection (Lucene impact index or Numba index).")
    parser.add_argument("--input", required=True, help="JsonVectorCollection directory (or file)")
    parser.add_argument("--index", required=True, help="index directory to create (with --overwrite: an index this "
                        "tool wrote, of the same backend, is replaced; anything else is refused)")
    parser.add_argument("--threads", type=positive_int, default=os.cpu_count() or 1)
    parser.add_argument("--overwrite", action="store_true", help="replace an index this tool built there")
    parser.add_argument("--backend", choices=BACKENDS, default="lucene")
    parser.add_argument("--factor", default=None,
                        help="quantization factor of the vectors (numba backend; a number, naver or pyserini; "
                             "default: the one the vectors' provenance records, else 100)")
    parser.add_argument("--quantize", metavar="FACTOR", default=None,
                        help="the input holds float weights: quantize them as encode_corpus does, rint(w * FACTOR) "
                             "(a number, naver or pyserini)")
    parser.add_argument("--memory-buffer", type=positive_int, default=None, help="Lucene RAM buffer in MB")
    parser.add_argument("--optimize", action="store_true", help="merge the Lucene index into one segment")
    parser.add_argument("--verbose", action="store_true", help="show Anserini's log")
    args = parser.parse_args(argv)
    from splade_anserini.conversion.quantize import resolve_factor

    kwargs = {}
    if args.backend == "lucene":
        kwargs = dict(memory_buffer_mb=args.memory_buffer, quiet=not args.verbose, optimize=args.optimize)
    quantize = resolve_factor(args.quantize) if args.quantize is not None else None
    report = build_index(args.input, args.index, backend=args.backend, threads=args.threads,
                         overwrite=args.overwrite, quantize=quantize, **kwargs,
                         factor=resolve_factor(args.factor) if args.factor is not None else None)
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
