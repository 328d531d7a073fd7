"""Shared fixtures: the real data under ../shared/data and the splade-tiny encoder (loaded once)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from splade_anserini.data import DATA_ENV, data_root

ROOT = Path(__file__).resolve().parent.parent
# Named datasets are found relative to the current directory: pin the root for tests that change it.
os.environ.setdefault(DATA_ENV, str(data_root()))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    root = data_root()
    if not (root / "scifact" / "corpus.jsonl").is_file():
        pytest.skip(f"real test data not found at {root} (set {DATA_ENV} to the shared data folder)")
    return root


@pytest.fixture(scope="session")
def encoder():
    from splade_anserini.encode.splade import SpladeEncoder

    return SpladeEncoder("splade-tiny")


def run_python(code: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``python -c code`` in a fresh interpreter (a JVM can start only once per process)."""
    full_env = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            full_env.pop(key, None)
        else:
            full_env[key] = value
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=ROOT)
