"""Both Pyserini generations (1.6 / Anserini 1.7 / Lucene 9 on Python 3.11; 2.x / Anserini 2.3 / Lucene 10
on Python >= 3.12): indexes across them, the Java-side encoder's private cache, the version line.

The cross-generation test needs the other generation's virtualenv (``.venv`` for Python 3.11,
``.venv312`` for 3.12, or ``$SPLADE_ANSERINI_OTHER_PYTHON``, ``none`` for no other); it is skipped, saying
so, without it.
Every Anserini process here is a fresh interpreter (one JVM each).
"""
from __future__ import annotations

import hashlib
import itertools
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import ROOT

pytestmark = pytest.mark.jvm

N_DOCS = 150
N_QUERIES = 30
VENVS = {1: ".venv", 2: ".venv312"}  # the setup script's virtualenv of each generation


def cli(python: str | os.PathLike, *args: str, cwd: Path = ROOT, env: dict | None = None,
        timeout: int = 600) -> subprocess.CompletedProcess:
    """``python -m splade_anserini.<args>`` in a fresh interpreter that imports this checkout."""
    full_env = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run([os.fspath(python), "-m", *args], capture_output=True, text=True, cwd=cwd, env=full_env,
                          timeout=timeout)


def versions(python: str | os.PathLike) -> dict[str, str]:
    proc = cli(python, "splade_anserini.java", "--version")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return dict(part.strip().rsplit(" ", 1) for part in proc.stdout.strip().split(","))


def other_python(mine: int) -> Path | None:
    env = os.environ.get("SPLADE_ANSERINI_OTHER_PYTHON")
    if env == "none":  # CI's first leg, while the second leg's virtualenv is being built beside it
        return None
    if env:
        return Path(env)
    path = ROOT / VENVS[2 if mine == 1 else 1] / "bin" / "python"
    return path if path.is_file() else None


@pytest.fixture(scope="module")
def sl(tmp_path_factory, data_dir, encoder):
    """A real SciFact slice encoded by splade-tiny: JsonVectorCollection and TsvInt topics."""
    from splade_anserini.conversion.jsonvector import VectorDoc, write_jsonvector
    from splade_anserini.conversion.quantize import guard_empty
    from splade_anserini.conversion.topics import write_tsvint
    from splade_anserini.data import read_corpus, read_qrels, read_topics

    root = tmp_path_factory.mktemp("generations")
    qrels = read_qrels(data_dir / "scifact" / "qrels.test.txt")
    topics = read_topics(data_dir / "scifact" / "queries.test.tsv")
    qids = list(qrels)[:N_QUERIES]
    wanted = {d for q in qids for d in qrels[q]}
    corpus = data_dir / "scifact" / "corpus.jsonl"
    docs = [d for d in read_corpus(corpus) if d.docid in wanted]
    docs += list(itertools.islice((d for d in read_corpus(corpus) if d.docid not in wanted), N_DOCS - len(docs)))
    vecs = encoder.encode_documents([d.text for d in docs], batch_size=32)
    (root / "vectors").mkdir()
    write_jsonvector(root / "vectors" / "part-00000.jsonl",
                     (VectorDoc(d.docid, guard_empty(encoder.to_impacts(v))[0]) for d, v in zip(docs, vecs)))
    qvecs = encoder.encode_queries([topics[q] for q in qids])
    write_tsvint(root / "topics.tsv", ((q, encoder.to_impacts(v)) for q, v in zip(qids, qvecs)))
    return SimpleNamespace(root=root, vectors=root / "vectors", topics=root / "topics.tsv")


def build(python, sl, name: str) -> Path:
    index = sl.root / name
    proc = cli(python, "splade_anserini.index.build", "--input", str(sl.vectors), "--index", str(index), "--threads", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return index


def search(python, sl, index: Path, out: Path) -> subprocess.CompletedProcess:
    return cli(python, "splade_anserini.search.run", "--index", str(index), "--encoded-topics", str(sl.topics),
               "--output", str(out), "--hits", "100", "--threads", "1", "--tag", "run")


def test_version_line_names_every_part():
    from splade_anserini.anserini_version import generation

    found = versions(sys.executable)
    assert set(found) >= {"Python", "pyserini", "Anserini", "Lucene", "Java"}
    assert found["Python"] == ".".join(map(str, sys.version_info[:3]))
    assert int(found["Anserini"].split(".")[0]) == generation().anserini_major
    assert int(found["Lucene"].split(".")[0]) == generation().lucene_major
    assert int(found["Java"].split(".")[0]) >= 21


def test_index_header_names_the_lucene_that_wrote_it(sl):
    from splade_anserini.anserini_version import check_index_readable, index_lucene_version

    index = build(sys.executable, sl, "header")
    written, created = index_lucene_version(index)
    assert written == versions(sys.executable)["Lucene"]
    assert created == int(written.split(".")[0])
    check_index_readable(index)  # its own generation reads it
    assert index_lucene_version(sl.vectors) is None  # no commit: nothing to say


def test_an_index_searched_by_both_generations(sl, tmp_path):
    """Each generation builds an index from the same vectors; each searches both. A readable index
    gives the same run byte for byte; an unreadable one (Lucene 10 written, Lucene 9 reading) is a
    one-line refusal naming both versions, exit status 2, and no run."""
    from splade_anserini.anserini_version import generation

    mine = generation().anserini_major
    other = other_python(mine)
    if other is None:
        pytest.skip(f"the other generation's virtualenv ({VENVS[2 if mine == 1 else 1]}) is absent: "
                    f"`make setup PYTHON={'python3.12' if mine == 1 else 'python3.11'}` creates it")
    found = {Path(sys.executable): versions(sys.executable), other: versions(other)}
    pythons = {int(v["Anserini"].split(".")[0]): p for p, v in found.items()}
    assert set(pythons) == {1, 2}, f"{other} runs the same generation as this interpreter"
    lucene = {g: found[p]["Lucene"] for g, p in pythons.items()}
    indexes = {g: build(p, sl, f"index-{g}") for g, p in pythons.items()}
    runs = {}
    for (built, index), (searcher, python) in itertools.product(indexes.items(), pythons.items()):
        out = tmp_path / f"built{built}-searched{searcher}.trec"
        proc = search(python, sl, index, out)
        if searcher >= built:
            assert proc.returncode == 0, proc.stderr[-2000:]
            runs[built, searcher] = out.read_bytes()
        else:
            lines = proc.stderr.strip().splitlines()
            assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
            assert f"Lucene {lucene[built]}" in lines[0] and f"Lucene {lucene[searcher].split('.')[0]}" in lines[0]
            assert "pyserini>=2.4" in lines[0] and not out.exists()
    assert len(runs) == 3 and len(set(runs.values())) == 1  # the 1.x index: one run on both; 2.x index: same run


def snapshot(folder: Path) -> list[tuple[str, int, str]]:
    return sorted((str(p.relative_to(folder)), p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
                  for p in folder.rglob("*") if p.is_file()) + sorted(str(p) for p in folder.rglob("*") if p.is_dir())


def test_java_side_encoder_never_touches_a_user_cache(sl, tmp_path):
    """Every place Anserini may look for encoder models (``-Dpyserini.cache``, ``$PYSERINI_CACHE``,
    ``<cwd>/.cache/pyserini`` and ``~/.cache/pyserini``) holds a decoy model that cannot load: the
    Java-side encoder encodes and searches, and every decoy is left as it was."""
    from splade_anserini.serve.export_onnx import export
    from splade_anserini.serve.java_encoder import MODEL_FILE, VOCAB_FILE

    model = tmp_path / "export"
    export("splade-tiny", model, log=lambda *_: None)
    index = build(sys.executable, sl, "encoder-index")
    work, home, env_cache, prop_cache = (tmp_path / n for n in ("work", "home", "env-cache", "prop-cache"))
    decoys = [work / ".cache" / "pyserini", env_cache, prop_cache, home / ".cache" / "pyserini"]
    for base in decoys:
        (base / "encoders").mkdir(parents=True)
        (base / "encoders" / MODEL_FILE).write_bytes(b"decoy: not an ONNX graph")
        (base / "encoders" / VOCAB_FILE).write_text("decoy\n")
    before = [snapshot(base) for base in decoys]
    code = (
        "from splade_anserini import java\n"
        "from splade_anserini.serve.java_encoder import java_searcher\n"
        "System = java.autoclass('java.lang.System')\n"
        f"System.setProperty('pyserini.cache', {str(prop_cache)!r})\n"
        f"s = java_searcher({str(index)!r}, {str(model)!r}, 100)\n"
        "vec, hits = s.encode_text('aspirin and heart attacks'), s.search_text('aspirin and heart attacks', 5)\n"
        "s.close()\n"
        "print(System.getProperty('pyserini.cache'), len(vec), len(hits))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=work, timeout=600,
                          env=dict(os.environ, PYTHONPATH=str(ROOT), PYSERINI_CACHE=str(env_cache), HOME=str(home)))
    assert proc.returncode == 0, proc.stderr[-2000:]
    prop, n_terms, n_hits = proc.stdout.strip().splitlines()[-1].rsplit(" ", 2)
    assert prop == str(prop_cache)  # the user's property is restored
    assert int(n_terms) > 3 and int(n_hits) == 5
    assert [snapshot(base) for base in decoys] == before


def test_pyserini_imports_without_the_network(tmp_path):
    """pyserini 2.4 downloads its prebuilt-index catalog while ``pyserini.search`` is imported; through
    ``java.pyserini_lucene`` the import works offline, and the catalog module is left with urllib's
    own ``urlopen`` for real use (pyserini 1.6 imports offline by itself)."""
    code = (
        "import urllib.request\n"
        "def offline(*a, **k):\n"
        "    raise OSError('offline')\n"
        "urllib.request.urlopen = offline\n"
        "from splade_anserini import java\n"
        "lucene = java.pyserini_lucene()\n"
        "import sys\n"
        "catalog = sys.modules.get('pyserini.prebuilt_index_info')\n"
        "print(lucene.LuceneImpactSearcher.__name__, getattr(catalog, 'urlopen', offline) is offline)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=600,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "LuceneImpactSearcher True"


def test_the_version_check_refuses_other_arguments():
    proc = cli(sys.executable, "splade_anserini.java", "--bogus")
    assert proc.returncode == 2 and re.match(r"error: .*--bogus", proc.stderr.strip())
