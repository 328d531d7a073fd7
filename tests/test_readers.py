"""Topics and qrels readers (BEIR and MS MARCO / Anserini layouts) and the dataset layouts."""
from __future__ import annotations

import gzip
import json
import shutil
import string
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT
from splade_anserini.conversion.errors import InputError
from splade_anserini.conversion.topics import detect_topic_format, read_topics
from splade_anserini.conversion.trec import check_qrels, read_qrels
from splade_anserini.data import available_splits, find_dataset, resolve_dataset


def write(path: Path, text: str, gz: bool = False) -> Path:
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(text.encode("utf-8")))
    else:
        path.write_text(text, encoding="utf-8")
    return path


# -- topics ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("gz", [False, True])
def test_beir_queries_jsonl(tmp_path, gz):
    text = ('{"_id": "q1", "text": "first query", "metadata": {}}\n\n'
            '{"_id": 2, "text": "  second\\tone ", "metadata": {"x": 1}}\n')
    path = write(tmp_path / "queries.jsonl", text, gz)
    assert detect_topic_format(path) == "jsonl"
    assert read_topics(path) == {"q1": "first query", "2": "second\tone"}


@pytest.mark.parametrize("gz", [False, True])
def test_msmarco_queries_tsv(tmp_path, gz):
    path = write(tmp_path / "queries.dev.tsv", "1048585\twhat is paula deen's brother\n2\t{not json}\n", gz)
    assert detect_topic_format(path) == "tsv"
    assert read_topics(path) == {"1048585": "what is paula deen's brother", "2": "{not json}"}


def test_topics_format_from_content_not_name(tmp_path):
    path = write(tmp_path / "topics.txt", '{"_id": "a", "text": "json in a .txt"}\n')
    assert read_topics(path) == {"a": "json in a .txt"}


@pytest.mark.parametrize("name, text, line, problem", [
    ("q.jsonl", '{"_id": "a", "text": "x"}\n{"_id": "a", "text": "y"}\n', 2, "duplicate query id"),
    ("q.jsonl", '{"_id": "a", "text": "x"}\n{"text": "y"}\n', 2, "missing query id"),
    ("q.jsonl", '{"_id": "a", "text": "x"}\n{"_id": "b"}\n', 2, "missing 'text'"),
    ("q.jsonl", '{"_id": "a", "text": "x"}\n{"_id": "b", "text": "y"\n', 2, "malformed JSON"),
    ("q.jsonl", '{"_id": "a b", "text": "x"}\n', 1, "whitespace"),
    ("q.tsv", "1\tx\n2 no tab\n", 2, "expected 'qid<TAB>query text'"),
    ("q.tsv", "1\tx\n\tno id\n", 2, "missing query id"),
])
def test_topics_errors_name_the_line(tmp_path, name, text, line, problem):
    path = write(tmp_path / name, text)
    with pytest.raises(InputError) as err:
        read_topics(path)
    assert err.value.line == line and problem in err.value.problem
    assert str(err.value).startswith(f"{path}:{line}: ")


# -- qrels -------------------------------------------------------------------------------------------------
QRELS = {"q1": {"d1": 1, "d2": 0}, "q2": {"d3": 2}}


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("text", [
    "q1 0 d1 1\nq1 0 d2 0\nq2 0 d3 2\n",                          # Anserini / MS MARCO, iter 0
    "q1 Q0 d1 1\nq1 Q0 d2 0\nq2 Q0 d3 2\n",                       # CACM / TREC, Q0
    "q1\t0\td1\t1\nq1\t0\td2\t0\nq2\t0\td3\t2\n",                 # tab-separated TREC
    "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t0\nq2\td3\t2\n",   # BEIR with its header
    "q1\td1\t1\nq1\td2\t0\n\nq2\td3\t2\n",                        # BEIR without the header
], ids=["trec-0", "trec-Q0", "trec-tabs", "beir-header", "beir-no-header"])
def test_qrels_layouts(tmp_path, text, gz):
    assert read_qrels(write(tmp_path / "qrels.test.tsv", text, gz)) == QRELS


@pytest.mark.parametrize("text, line, problem", [
    ("q1 0 d1 1\nq1 0 d2\n", 2, "expected 4 columns"),
    ("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\t0\td2\t1\n", 3, "expected 3 columns"),
    ("q1\td1\tyes\n", 1, "relevance 'yes' is not an integer"),
    ("q1 0 d1 1.5\n", 1, "not an integer"),
    ("q1 d1\n", 1, "expected 4 columns"),
    ("q1 0 d1 1\nq1 0 d1 2\n", 2, "judged twice"),
])
def test_qrels_errors_name_the_line(tmp_path, text, line, problem):
    path = write(tmp_path / "qrels.txt", text)
    with pytest.raises(InputError) as err:
        read_qrels(path)
    assert err.value.line == line and problem in err.value.problem


def test_qrels_repeated_identical_judgement_is_accepted(tmp_path):
    assert read_qrels(write(tmp_path / "q.txt", "q1 0 d1 1\nq1 0 d1 1\n")) == {"q1": {"d1": 1}}


def test_check_qrels_names_unknown_topic_or_document(tmp_path):
    path = write(tmp_path / "qrels.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td9\t1\nq3\td1\t1\n")
    check_qrels(path, {"q1", "q2", "q3"}, {"d1", "d9"})
    with pytest.raises(InputError, match=r"qrels.tsv:3: document 'd9' \(query 'q2'\) is not in the corpus"):
        check_qrels(path, {"q1", "q2", "q3"}, {"d1"})
    with pytest.raises(InputError, match=r"qrels.tsv:4: query 'q3' is not in the topics"):
        check_qrels(path, {"q1", "q2"}, None)


# -- property tests: random valid files round-trip, corruptions name their line -------------------------------
IDS = st.text(alphabet=string.ascii_letters + string.digits + "-_.:#/", min_size=1, max_size=12)
TEXTS = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=40) \
    .map(str.strip)
QRELS_ST = st.dictionaries(IDS, st.dictionaries(IDS, st.integers(-1, 3), min_size=1, max_size=4),
                           min_size=1, max_size=6)
LAYOUTS = ["trec-0", "trec-Q0", "beir-header", "beir"]
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def qrels_text(qrels: dict, layout: str) -> list[str]:
    lines = ["query-id\tcorpus-id\tscore"] if layout == "beir-header" else []
    for q, docs in qrels.items():
        for d, r in docs.items():
            lines.append(f"{q}\t{d}\t{r}" if layout.startswith("beir") else f"{q} {layout[5:]} {d} {r}")
    return lines


@SETTINGS
@given(qrels=QRELS_ST, layout=st.sampled_from(LAYOUTS), gz=st.booleans())
def test_property_qrels_round_trip(tmp_path, qrels, layout, gz):
    if layout == "beir" and tuple(qrels_text(qrels, "beir")[0].lower().split()) in _headers():
        return  # a first data line spelled like a header is a header
    path = write(tmp_path / "qrels", "\n".join(qrels_text(qrels, layout)) + "\n", gz)
    assert read_qrels(path) == qrels


def _headers():
    from splade_anserini.conversion.trec import QRELS_HEADERS

    return QRELS_HEADERS


@SETTINGS
@given(qrels=QRELS_ST, layout=st.sampled_from(LAYOUTS), data=st.data())
def test_property_qrels_corruption_names_the_line(tmp_path, qrels, layout, data):
    lines = qrels_text(qrels, layout)
    first = 1 if layout == "beir-header" else 0
    i = data.draw(st.integers(first, len(lines) - 1))
    parts = lines[i].split()
    kind = data.draw(st.sampled_from(["relevance", "columns", "extra", "utf8"]))
    raw = [line.encode() for line in lines]
    if kind == "relevance":
        raw[i] = " ".join(parts[:-1] + [data.draw(st.sampled_from(["x", "1.5", "", "one"])) or "-"]).encode()
    elif kind == "columns":
        raw[i] = " ".join(parts[:2]).encode()
    elif kind == "extra":
        raw[i] = " ".join(parts + ["extra", "cols"]).encode()
    else:
        raw[i] = raw[i] + b"\xff"
    path = tmp_path / "qrels.txt"
    path.write_bytes(b"\n".join(raw) + b"\n")
    with pytest.raises(InputError) as err:
        read_qrels(path)
    assert err.value.line == i + 1 and str(err.value).startswith(f"{path}:{i + 1}: ")


TOPICS_ST = st.dictionaries(IDS, TEXTS, min_size=1, max_size=8)


@SETTINGS
@given(topics=TOPICS_ST, jsonl=st.booleans(), gz=st.booleans())
def test_property_topics_round_trip(tmp_path, topics, jsonl, gz):
    if jsonl:
        text = "".join(json.dumps({"_id": q, "text": t, "metadata": {}}) + "\n" for q, t in topics.items())
    else:
        if any("\t" in t or "\n" in t or "\r" in t for t in topics.values()):
            return
        text = "".join(f"{q}\t{t}\n" for q, t in topics.items())
    assert read_topics(write(tmp_path / "queries", text, gz)) == topics


@SETTINGS
@given(topics=TOPICS_ST, jsonl=st.booleans(), data=st.data())
def test_property_topics_corruption_names_the_line(tmp_path, topics, jsonl, data):
    qids = list(topics)
    lines = [json.dumps({"_id": q, "text": t}) if jsonl else f"{q}\t{t.replace(chr(9), ' ')}" for q, t in topics.items()]
    i = data.draw(st.integers(0, len(lines) - 1))
    kind = data.draw(st.sampled_from(["duplicate", "broken", "utf8"]))
    if kind == "duplicate":
        if i == 0:
            i = len(lines)
            lines.append(lines[0])
        else:
            lines[i] = json.dumps({"_id": qids[0], "text": "again"}) if jsonl else f"{qids[0]}\tagain"
    elif kind == "broken":
        lines[i] = lines[i][:-1] if jsonl and i > 0 else ('{"text": "no id"}' if jsonl else qids[i])
    raw = [line.encode() for line in lines]
    if kind == "utf8":
        raw[i] += b"\xfe"
    path = tmp_path / "queries"
    path.write_bytes(b"\n".join(raw) + b"\n")
    with pytest.raises(InputError) as err:
        read_topics(path, "jsonl" if jsonl else "tsv")
    assert err.value.line == i + 1


# -- dataset layouts ---------------------------------------------------------------------------------------
def beir_folder(root: Path, splits=("test", "train"), gz=False) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    write(root / "corpus.jsonl", '{"_id": "d1", "title": "t", "text": "a"}\n{"_id": "d2", "title": "", "text": "b"}\n', gz)
    write(root / "queries.jsonl", '{"_id": "q1", "text": "x"}\n{"_id": "q2", "text": "y"}\n', gz)
    (root / "qrels").mkdir(exist_ok=True)
    for s in splits:
        write(root / "qrels" / f"{s}.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\n", gz)
    return root


@pytest.mark.parametrize("gz", [False, True])
def test_beir_folder_layout(tmp_path, gz):
    root = beir_folder(tmp_path / "nfcorpus", gz=gz)
    ds = find_dataset(root)
    z = ".gz" if gz else ""
    assert (ds.corpus.name, ds.topics.name, ds.qrels.relative_to(root).as_posix(), ds.split) == \
        (f"corpus.jsonl{z}", f"queries.jsonl{z}", f"qrels/test.tsv{z}", "test")
    assert find_dataset(root, "train").qrels.name == f"train.tsv{z}"
    assert available_splits(root) == ["test", "train"]
    assert resolve_dataset(data_dir=root, split="train").name == "nfcorpus-train"
    assert resolve_dataset(data_dir=root, split="test").name == "nfcorpus"


def test_beir_folder_without_the_split(tmp_path):
    root = beir_folder(tmp_path / "fiqa", splits=("train", "dev"))
    with pytest.raises(InputError, match=r"no qrels for split 'test' nor an unsplit qrels.txt \(this folder has dev, train"):
        find_dataset(root)
    with pytest.raises(InputError, match=r"fiqa: no qrels for split 'validation' \(this folder has dev, train"):
        find_dataset(root, "validation")


def test_unsplit_folder_with_a_split_asked_for(tmp_path):
    root = tmp_path / "cacm"
    root.mkdir()
    write(root / "corpus.jsonl", '{"_id": "d1", "text": "a"}\n')
    write(root / "queries.tsv", "1\tx\n")
    write(root / "qrels.txt", "1 Q0 d1 1\n")
    assert find_dataset(root).split is None
    with pytest.raises(InputError, match=r"no qrels for split 'train' \(only the unsplit qrels.txt: leave out --split\)"):
        find_dataset(root, "train")


def test_shared_data_layouts(data_dir):
    sci = resolve_dataset("scifact")
    assert (sci.corpus.name, sci.topics.name, sci.qrels.name, sci.name) == \
        ("corpus.jsonl", "queries.test.tsv", "qrels.test.txt", "scifact")
    assert resolve_dataset("scifact", split="train").topics.name == "queries.train.tsv"
    cacm = resolve_dataset("cacm")
    assert (cacm.topics.name, cacm.qrels.name, cacm.split) == ("queries.tsv", "qrels.txt", None)
    dl19 = resolve_dataset("msmarco-dl19-subset")
    assert (dl19.corpus.name, dl19.topics.name, dl19.qrels.name) == ("collection.tsv", "queries.dl19.tsv", "qrels.dl19.txt")
    assert resolve_dataset(data_dir=data_dir / "scifact") == sci
    mixed = resolve_dataset("scifact", qrels=data_dir / "scifact" / "qrels.train.txt")
    assert mixed.qrels.name == "qrels.train.txt" and mixed.topics == sci.topics
    with pytest.raises(ValueError, match="go together"):
        resolve_dataset(corpus=sci.corpus)


def test_shared_files_read_in_both_layouts(data_dir, tmp_path):
    """The converted SciFact files and a native-BEIR copy of them read back identical."""
    from beir_copy import make_beir_copy

    src = data_dir / "scifact"
    copy = make_beir_copy(src, tmp_path / "scifact-beir", split="test")
    assert read_topics(copy / "queries.jsonl") == {**read_topics(src / "queries.test.tsv"),
                                                   **{q: t for q, t in read_topics(src / "queries.train.tsv").items()}}
    assert read_qrels(copy / "qrels" / "test.tsv") == read_qrels(src / "qrels.test.txt")
    assert (copy / "qrels" / "test.tsv").read_text().splitlines()[0] == "query-id\tcorpus-id\tscore"


def test_commands_read_beir_topics_and_qrels(data_dir, tmp_path):
    """evaluate takes BEIR qrels; search, mine_negatives and parity take BEIR queries.jsonl (argument check)."""
    run = tmp_path / "r.trec"
    run.write_text("q1 Q0 d1 1 2.0 t\nq1 Q0 d2 2 1.0 t\n")
    qrels = write(tmp_path / "test.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\n", gz=True)
    proc = subprocess.run([sys.executable, "-m", "splade_anserini.evaluate", "--qrels", str(qrels), str(run),
                           "--measures", "nDCG@10"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[1].split()[-1] == "1.0000"
