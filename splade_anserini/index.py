"""Build a Lucene impact index (or the Numba reference index) from a JsonVectorCollection.

    python -m splade_anserini.index --input VECTORS_DIR --index INDEX_DIR --threads 4 [--overwrite]
                                    [--backend lucene|numba] [--factor 100]

The Lucene path runs Anserini's ``IndexCollection`` in this process, through the JVM bootstrap
(no ``java`` subprocess), with ``-collection JsonVectorCollection -generator
DefaultLuceneDocumentGenerator -impact -pretokenized``. The index is built in a temporary sibling
directory and renamed into place only when complete; an existing index is never replaced unless
``overwrite`` is given. Anserini's counters are checked after the run: skipped, unindexable or
errored documents, or fewer indexed documents than the input holds, fail the build
(:class:`IndexBuildError`, exit status 1) instead of ending as a log line.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from conversion.errors import InputError
from conversion.jsonvector import collection_files

BACKENDS = ("lucene", "numba")
REPORT_NAME = "splade-anserini-index.json"


class IndexBuildError(RuntimeError):
    """The index could not be built, or Anserini lost documents on the way."""


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
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        counters = (f" (Anserini counters: empty {self.empty}, unindexable {self.unindexable}, "
                    f"skipped {self.skipped}, errors {self.errors})" if self.backend == "lucene" else "")
        return (f"{self.backend} index {self.index}: {self.indexed:,} of {self.input_documents:,} documents indexed"
                f"{counters}; {self.size_bytes / 2**20:.1f} MiB in {self.seconds:.1f} s")


def _is_metadata(file: Path) -> bool:
    """A ``.json`` file beside the shards that is not a document (a manifest): its first line is a
    JSON object without a ``vector``."""
    if not file.name.endswith(".json"):
        return False
    try:
        with open(file, "rb") as fh:
            first = next((line for line in fh if line.strip()), b"")
        obj = json.loads(first)
    except (OSError, ValueError):
        return False
    return isinstance(obj, dict) and "vector" not in obj


def vector_files(path: str | os.PathLike) -> list[Path]:
    """The JsonVectorCollection files at ``path``, without manifest-like ``.json`` files."""
    files = [f for f in collection_files(path) if not _is_metadata(f)]
    if not files:
        raise InputError(path, None, "no JsonVectorCollection files (.jsonl, .jsonl.gz, .json, .json.gz)")
    return files


def count_documents(path: str | os.PathLike) -> int:
    """Non-blank lines of the JsonVectorCollection file(s) at ``path`` (one document each)."""
    n = 0
    for file in vector_files(path):
        opener = gzip.open if file.name.endswith(".gz") else open
        with opener(file, "rb") as fh:
            n += sum(1 for line in fh if line.strip())
    return n


def directory_size(path: str | os.PathLike) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def _index_exists(path: Path) -> bool:
    return path.is_file() or (path.is_dir() and any(path.iterdir()))


def _check_target(index: Path, overwrite: bool) -> None:
    if _index_exists(index) and not overwrite:
        raise IndexBuildError(f"index {index} already exists; pass --overwrite (overwrite=True) to replace it")


def _install(tmp: Path, index: Path) -> None:
    """Move the finished ``tmp`` index to ``index``, replacing an old one only now that it is complete."""
    old = None
    if index.is_file() or index.is_symlink():
        index.unlink()
    elif index.exists():
        old = index.with_name(f".{index.name}.old-{os.getpid()}")
        os.replace(index, old)
    os.replace(tmp, index)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _stage_input(input_path: Path, staging: Path) -> list[Path]:
    """Give Anserini a directory holding only the collection files (symlinks): a manifest or a
    temporary file beside the shards would otherwise be parsed as documents."""
    files = vector_files(input_path)
    staging.mkdir(parents=True)
    for i, file in enumerate(files):
        (staging / f"{i:05d}-{file.name}").symlink_to(file.resolve())
    return files


def _prepare_build(input_path, index_path, overwrite: bool) -> tuple[Path, Path, int, Path, Path]:
    """Check the target, count the input documents and name the build and staging folders beside the
    index (removing leftovers of a killed run): ``(input, index, documents, build dir, staging dir)``."""
    input_path, index = Path(input_path), Path(index_path)
    _check_target(index, overwrite)
    expected = count_documents(input_path)
    index.parent.mkdir(parents=True, exist_ok=True)
    tmp = index.with_name(f".{index.name}.building-{os.getpid()}")
    staging = index.with_name(f".{index.name}.input-{os.getpid()}")
    for leftover in (tmp, staging):
        if leftover.exists():
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
    return input_path, index, expected, tmp, staging


def build_lucene_index(input_path: str | os.PathLike, index_path: str | os.PathLike, *, threads: int = 1,
                       overwrite: bool = False, memory_buffer_mb: int | None = None,
                       quiet: bool = True, optimize: bool = False) -> IndexReport:
    """Index a JsonVectorCollection with Anserini ``IndexCollection -impact -pretokenized``."""
    input_path, index, expected, tmp, staging = _prepare_build(input_path, index_path, overwrite)
    start = time.perf_counter()
    try:
        _stage_input(input_path, staging)
        from . import java

        java.start_jvm()
        IndexCollection = java.autoclass("io.anserini.index.IndexCollection")
        Args = java.autoclass("io.anserini.index.IndexCollection$Args")
        CmdLineParser = java.autoclass("org.kohsuke.args4j.CmdLineParser")
        argv = ["-collection", "JsonVectorCollection", "-generator", "DefaultLuceneDocumentGenerator",
                "-input", str(staging), "-index", str(tmp), "-threads", str(max(1, threads)),
                "-impact", "-pretokenized"]
        if memory_buffer_mb:
            argv += ["-memoryBuffer", str(memory_buffer_mb)]
        if optimize:
            argv.append("-optimize")
        if quiet:
            argv.append("-quiet")
        args = Args()
        jargv = java.autoclass("java.util.ArrayList")()
        for item in argv:
            jargv.add(item)
        CmdLineParser(args).parseArgument(jargv)
        indexer = IndexCollection(args)
        indexer.run()
        counters = indexer.getCounters()
        report = IndexReport(
            backend="lucene", index=str(index), input=str(input_path), input_documents=expected,
            indexed=int(counters.indexed.get()), empty=int(counters.empty.get()),
            unindexable=int(counters.unindexable.get()), skipped=int(counters.skipped.get()),
            errors=int(counters.errors.get()))
        if report.skipped:
            report.problems.append(f"{report.skipped} documents skipped by Anserini")
        if report.unindexable:
            report.problems.append(f"{report.unindexable} documents unindexable")
        if report.errors:
            report.problems.append(f"{report.errors} errors (malformed JSON or unreadable file segments)")
        if report.indexed + report.empty != expected:
            report.problems.append(f"the input holds {expected} documents but Anserini indexed {report.indexed} "
                                   f"(and counted {report.empty} empty)")
        if report.problems:
            raise IndexBuildError(f"Anserini lost documents while indexing {input_path}: "
                                  + "; ".join(report.problems) + f" ({report.summary()})")
        report.seconds = time.perf_counter() - start
        report.size_bytes = directory_size(tmp)
        (tmp / REPORT_NAME).write_text(json.dumps(asdict(report), indent=2) + "\n")
        _check_target(index, overwrite)  # someone may have created it meanwhile
        _install(tmp, index)
        return report
    except Exception as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, (IndexBuildError, InputError)):
            raise
        raise IndexBuildError(f"indexing {input_path} failed: {str(exc).splitlines()[0] if str(exc) else exc!r}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def build_numba_index(input_path: str | os.PathLike, index_path: str | os.PathLike, *, factor: float = 100.0,
                      overwrite: bool = False) -> IndexReport:
    """Build the Numba reference index (issue 5's ``NumbaIndex``) in a temporary place, then rename."""
    from .numba_index import NumbaIndex  # lazy: numba is slow to import

    input_path, index, expected, tmp, staging = _prepare_build(input_path, index_path, overwrite)
    start = time.perf_counter()
    try:
        _stage_input(input_path, staging)
        built = NumbaIndex.from_jsonvector(staging, factor)
        built.save(tmp)
        report = IndexReport(backend="numba", index=str(index), input=str(input_path), input_documents=expected,
                             indexed=built.n_docs, seconds=time.perf_counter() - start,
                             size_bytes=directory_size(tmp))
        if report.indexed != expected:
            raise IndexBuildError(f"the input holds {expected} documents but the numba index has {report.indexed}")
        _check_target(index, overwrite)
        _install(tmp, index)
        return report
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def build_index(input_path, index_path, *, backend: str = "lucene", threads: int = 1, overwrite: bool = False,
                factor: float = 100.0, **kwargs) -> IndexReport:
    if backend == "lucene":
        return build_lucene_index(input_path, index_path, threads=threads, overwrite=overwrite, **kwargs)
    if backend == "numba":
        return build_numba_index(input_path, index_path, factor=factor, overwrite=overwrite)
    raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Index a JsonVectorCollection (Lucene impact index or Numba index).")
    parser.add_argument("--input", required=True, help="JsonVectorCollection directory (or file)")
    parser.add_argument("--index", required=True, help="index directory to create")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing index")
    parser.add_argument("--backend", choices=BACKENDS, default="lucene")
    parser.add_argument("--factor", default="100",
                        help="quantization factor of the vectors (numba backend; a number, naver or pyserini)")
    parser.add_argument("--memory-buffer", type=int, default=None, help="Lucene RAM buffer in MB")
    parser.add_argument("--optimize", action="store_true", help="merge the Lucene index into one segment")
    parser.add_argument("--verbose", action="store_true", help="show Anserini's log")
    args = parser.parse_args(argv)
    from conversion.quantize import resolve_factor

    try:
        kwargs = {}
        if args.backend == "lucene":
            kwargs = dict(memory_buffer_mb=args.memory_buffer, quiet=not args.verbose, optimize=args.optimize)
        report = build_index(args.input, args.index, backend=args.backend, threads=args.threads,
                             overwrite=args.overwrite, factor=resolve_factor(args.factor), **kwargs)
    except (IndexBuildError, InputError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
