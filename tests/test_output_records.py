"""A marker is a record of what the tool wrote: own outputs mean own files (decoys only, HOME a decoy).

Fake outputs of every kind are made with the functions of :mod:`splade_anserini.outputs` (fast); a few
real commands run on a 30-document SciFact slice: ``encode`` (its record), ``index`` (Numba, Lucene
refusals happen before the JVM), ``evaluate``, ``fuse``.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from splade_anserini import outputs
from splade_anserini.encode import corpus as ec
from splade_anserini.evaluate import measures as evaluate_cli
from splade_anserini.index import build as index_cli
from splade_anserini.search import fusion as fusion_cli

#: Every kind of output folder: a finished output (installed) or a container (claimed, filled over time).
FINISHED = ("lucene-index", "numba-index", "onnx-export", "checkpoint", "bm25-index")
CONTAINERS = ("vectors", "train-output", "pipeline-work")


@pytest.fixture(autouse=True)
def decoy_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("years of work\n")
    monkeypatch.setenv("HOME", str(home))


def make_output(root: Path, name: str, kind: str) -> Path:
    """A small fake output of ``kind`` at ``root/name``, made as the commands make theirs."""
    target = root / name
    if kind in CONTAINERS:
        outputs.claim_dir(target, kind)
        outputs.write_text(target / "log.jsonl", '{"step": 1}\n')
        tmp = outputs.temp_dir(target / "checkpoint-last")
        (tmp / "model.bin").write_bytes(b"\x00weights")
        outputs.install_dir(tmp, target / "checkpoint-last", "checkpoint")
        (target / "stamps").mkdir(exist_ok=True)
        outputs.write_text(target / "stamps" / "encode.json", "{}\n")
        return target
    tmp = outputs.temp_dir(target, "building")
    (tmp / "segments_1").write_bytes(b"segments")
    (tmp / "sub").mkdir()
    (tmp / "sub" / "data.bin").write_bytes(os.urandom(64))
    outputs.install_dir(tmp, target, kind)
    return target


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p): (b"->" + os.readlink(p).encode()) if p.is_symlink() else p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file() or p.is_symlink()}


def user_files(root: Path) -> dict[str, bytes]:
    return {p: v for p, v in snapshot(root).items() if "mine" in Path(p).name or "/mine/" in p}


def replace(target: Path, kind: str) -> None:
    """What ``--overwrite``/``--force``/``--resume`` do to an output of ``kind`` before writing."""
    if kind in CONTAINERS:
        outputs.claim_dir(target, kind)
        outputs.remove(target / "checkpoint-last")
        return
    tmp = outputs.temp_dir(target, "building")
    (tmp / "segments_2").write_bytes(b"new")
    try:
        outputs.check_dir(target, kind)
        outputs.install_dir(tmp, target, kind)
    finally:
        outputs.remove(tmp)


# -- the record ----------------------------------------------------------------------------------------
def test_a_marker_records_the_folder_and_every_file(tmp_path):
    idx = make_output(tmp_path, "idx", "numba-index")
    marker = outputs.read_marker(idx)
    st_ = os.stat(idx)
    assert marker["folder"] == {"dev": st_.st_dev, "ino": st_.st_ino}
    assert sorted(marker["record"]) == ["segments_1", "sub/data.bin"]
    assert marker["record"]["segments_1"]["size"] == 8 and len(marker["record"]["segments_1"]["sha256"]) == 64
    assert (idx / outputs.MARKER).read_text().startswith("[]\n")  # Anserini reads no document in it


def test_a_container_records_what_is_added_to_it(tmp_path):
    work = make_output(tmp_path, "work", "pipeline-work")
    record = outputs.read_marker(work)["record"]
    assert {"log.jsonl", "checkpoint-last", "stamps/encode.json"} <= set(record)
    assert record["checkpoint-last"] == {"output": "checkpoint"}
    assert outputs.foreign(work) == []


@pytest.mark.parametrize("added", ["file", "folder", "nested"])
@pytest.mark.parametrize("kind", FINISHED + CONTAINERS)
def test_what_a_user_added_inside_an_output_is_never_removed(kind, added, tmp_path):
    out = make_output(tmp_path, "out", kind)
    where = out / "checkpoint-last" if added == "nested" and kind in CONTAINERS else out
    if added == "folder":
        (where / "mine").mkdir()
        (where / "mine" / "deep.txt").write_text("deep\n")
    else:
        (where / "mine.txt").write_text("my notes\n")
    before, mine = snapshot(tmp_path), user_files(tmp_path)
    with pytest.raises(outputs.OutputRefused) as err:
        replace(out, kind)
    assert "mine" in str(err.value) and "\n" not in str(err.value) and "did not write" in str(err.value)
    assert snapshot(tmp_path) == before  # nothing touched
    outputs.remove(out)  # removing the output takes what its record lists, never the user's
    assert mine and user_files(tmp_path) == mine
    assert out.is_dir() and outputs.MARKER in os.listdir(out)


def test_a_refusal_names_at_most_five_foreign_paths(tmp_path):
    idx = make_output(tmp_path, "idx", "lucene-index")
    for i in range(8):
        (idx / f"mine{i}.txt").write_text("x")
    with pytest.raises(outputs.OutputRefused) as err:
        outputs.check_dir(idx, "lucene-index")
    assert str(err.value).count("mine") == 5 and ", ...)" in str(err.value)


@pytest.mark.parametrize("how", ["cp", "cp -a"])
@pytest.mark.parametrize("kind", FINISHED + CONTAINERS)
def test_a_copied_marker_proves_nothing(kind, how, tmp_path):
    out = make_output(tmp_path, "out", kind)
    forged = tmp_path / "forged"
    if how == "cp":
        forged.mkdir()
        for i in range(4):
            (forged / f"mine{i}.txt").write_text(f"user file {i}\n")
        subprocess.run(["cp", str(out / outputs.MARKER), str(forged)], check=True)
    else:
        subprocess.run(["cp", "-a", str(out), str(forged)], check=True)
        (forged / "mine.txt").write_text("a user's copy\n")
    before = snapshot(forged)
    assert outputs.read_marker(forged) is None
    with pytest.raises(outputs.OutputRefused, match="names another folder: a copy"):
        replace(forged, kind)
    with pytest.raises(outputs.OutputRefused, match="names another folder: a copy"):
        outputs.remove(forged)
    assert snapshot(forged) == before


@pytest.mark.parametrize("kind", FINISHED + CONTAINERS)
def test_an_output_moved_with_mv_is_still_ours(kind, tmp_path):
    out = make_output(tmp_path, "out", kind)
    subprocess.run(["mv", str(out), str(tmp_path / "moved")], check=True)
    moved = tmp_path / "moved"
    assert outputs.check_dir(moved, kind)
    replace(moved, kind)
    assert outputs.foreign(moved) == []


def test_an_earlier_versions_marker_is_refused_in_one_line(tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    (old / "segments_1").write_text("x")
    outputs.write_meta(old / outputs.MARKER, {"tool": "splade-anserini", "version": "0.0.9", "kind": "numba-index"})
    with pytest.raises(outputs.OutputRefused, match="earlier splade-anserini .* remove the folder yourself"):
        outputs.check_dir(old, "numba-index")
    assert (old / "segments_1").is_file()


@pytest.mark.parametrize("kind", FINISHED + CONTAINERS)
def test_no_file_output_lands_inside_another_output(kind, tmp_path):
    out = make_output(tmp_path, "out", kind)
    for path in (out / "notes.txt", out / "segments_1", out / "log.jsonl", out / "sub" / "deep" / "run.trec"):
        with pytest.raises(outputs.OutputRefused, match=f"inside {out}, a {kind} output"):
            outputs.check_file(path, "run")
    outputs.check_file(tmp_path / "beside.trec", "run")  # beside it is fine


# -- property: no user file ever disappears or changes ---------------------------------------------------
_OPS = st.lists(st.tuples(st.sampled_from(["replace", "remove", "make", "file"]), st.integers(0, 2)), max_size=6)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kinds=st.lists(st.sampled_from(FINISHED + CONTAINERS), min_size=1, max_size=3),
       placed=st.lists(st.tuples(st.integers(0, 2), st.sampled_from(["inside", "beside", "deep"])), max_size=4),
       ops=_OPS)
def test_user_files_inside_and_beside_outputs_never_change(kinds, placed, ops, tmp_path_factory):
    root = tmp_path_factory.mktemp("prop")
    outs = [make_output(root, f"out{i}", kind) for i, kind in enumerate(kinds)]
    for n, (i, where) in enumerate(placed):
        out = outs[i % len(outs)]
        folder = {"inside": out, "beside": root, "deep": out / "sub" if (out / "sub").is_dir() else out / "mine"}[where]
        folder.mkdir(exist_ok=True)
        (folder / f"mine{n}.txt").write_text(f"user {n}\n")
    before = user_files(root)
    for op, i in ops:
        out, kind = outs[i % len(outs)], kinds[i % len(kinds)]
        try:
            if op == "replace":
                replace(out, kind)
            elif op == "remove":
                outputs.remove(out)
            elif op == "make":
                if not out.exists():
                    make_output(root, out.name, kind)
            else:
                with outputs.output_file(out / "mine-not.trec", "run") as path:
                    path.write_text("run\n")
        except outputs.OutputRefused:
            pass
        after = user_files(root)
        assert {p: after.get(p) for p in before} == before


# -- real commands on a SciFact slice ------------------------------------------------------------------
@pytest.fixture(scope="module")
def collection(data_dir, tmp_path_factory) -> dict[str, Path]:
    """30 SciFact documents encoded by ``encode`` (with its record, in two part files), the qrels."""
    root = tmp_path_factory.mktemp("records")
    corpus = root / "corpus.jsonl"
    with open(data_dir / "scifact" / "corpus.jsonl", "rb") as src:
        corpus.write_bytes(b"".join(line for _, line in zip(range(30), src)))
    vectors = root / "vectors"
    assert ec.main(["--corpus", str(corpus), "--output", str(vectors), "--max-length", "32", "--no-progress",
                    "--threads", "1", "--num-files", "2"]) == 0
    return {"corpus": corpus, "vectors": vectors, "qrels": data_dir / "scifact" / "qrels.test.txt"}


def test_encode_records_each_part(collection):
    summary = outputs.read_meta(collection["vectors"] / ".summary.json")
    assert {n: p["documents"] for n, p in summary["parts"].items()} == {"part-00000.jsonl": 15,
                                                                        "part-00001.jsonl": 15}
    assert outputs.foreign(collection["vectors"]) == []


def _damage(vectors: Path, how: str) -> None:
    part = vectors / "part-00001.jsonl"
    lines = part.read_bytes().splitlines(keepends=True)
    if how == "truncated":
        part.write_bytes(b"".join(lines[:9]))
    elif how == "line-deleted":
        part.write_bytes(b"".join(lines[:4] + lines[5:]))
    elif how == "edited":
        part.write_bytes(b"".join(lines[:-1] + [lines[-1].replace(b'"id": "', b'"id": "x')]))
    else:
        part.unlink()


@pytest.mark.parametrize("backend", ["numba", "lucene"])
@pytest.mark.parametrize("how,found", [("truncated", "found 9"), ("line-deleted", "found 14"),
                                       ("deleted", "found 0"), ("edited", "content differs")])
def test_a_damaged_collection_is_never_indexed(how, found, backend, collection, tmp_path, capsys):
    vectors = tmp_path / "vectors"
    shutil.copytree(collection["vectors"], vectors)
    _damage(vectors, how)
    capsys.readouterr()
    rc = index_cli.main(["--input", str(vectors), "--index", str(tmp_path / "idx"), "--backend", backend])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert err.startswith(f"error: {vectors / 'part-00001.jsonl'}: ") and found in err, err
    assert sorted(os.listdir(tmp_path)) == ["home", "vectors"]  # nothing left behind


@pytest.fixture
def index(collection, tmp_path) -> Path:
    idx = tmp_path / "idx"
    assert index_cli.main(["--input", str(collection["vectors"]), "--index", str(idx), "--backend", "numba"]) == 0
    return idx


def _fingerprint(folder: Path) -> dict[str, bytes]:
    found = {}
    for p in sorted(folder.rglob("*")):
        if p.name == outputs.MARKER:
            found[p.name] = json.dumps({k: v for k, v in outputs.read_meta(p).items() if k != "folder"}).encode()
        elif p.is_file():
            found[str(p.relative_to(folder))] = p.read_bytes()
    return found


def test_index_overwrite_keeps_a_users_files_and_replaces_its_own(collection, index, tmp_path, capsys):
    argv = ["--input", str(collection["vectors"]), "--index", str(index), "--backend", "numba", "--overwrite"]
    first = _fingerprint(index)
    (index / "notes.txt").write_text("notes\n")
    (index / "mine").mkdir()
    before = snapshot(tmp_path)
    capsys.readouterr()
    assert index_cli.main(argv) == 2
    err = capsys.readouterr().err
    assert f"{index / 'mine'}/" in err and str(index / "notes.txt") in err and len(err.splitlines()) == 1
    assert snapshot(tmp_path) == before
    os.remove(index / "notes.txt")
    os.rmdir(index / "mine")
    subprocess.run(["mv", str(index), str(tmp_path / "moved")], check=True)  # mv keeps the folder's identity
    assert index_cli.main(argv[:3] + [str(tmp_path / "moved")] + argv[4:]) == 0
    assert _fingerprint(tmp_path / "moved") == first  # the same command: byte-identical outputs


def test_forged_and_copied_indexes_are_refused(collection, index, tmp_path, capsys):
    forged = tmp_path / "forged"
    forged.mkdir()
    for i in range(4):
        (forged / f"mine{i}.txt").write_text(str(i))
    shutil.copy(index / outputs.MARKER, forged)
    subprocess.run(["cp", "-a", str(index), str(tmp_path / "copy")], check=True)
    before = snapshot(tmp_path)
    for target in (forged, tmp_path / "copy"):
        assert index_cli.main(["--input", str(collection["vectors"]), "--index", str(target), "--backend", "numba",
                               "--overwrite"]) == 2
        assert "names another folder: a copy" in capsys.readouterr().err
    assert snapshot(tmp_path) == before


def test_file_outputs_aimed_inside_outputs_are_refused(collection, index, data_dir, tmp_path, capsys):
    run = tmp_path / "run.trec"
    run.write_text("".join(f"1 Q0 {d} {r} {10 - r} t\n" for r, d in enumerate(["4983", "5836", "7912"])))
    (index / "notes.txt").write_text("notes\n")
    before = snapshot(tmp_path)
    for main, argv in ((evaluate_cli.main, ["--qrels", str(collection["qrels"]), str(run), "--json"]),
                       (fusion_cli.main, ["--runs", str(run), str(run), "--output"])):
        for target in (index / "notes.txt", index / "new.json", collection["vectors"] / "part-00000.jsonl"):
            capsys.readouterr()
            assert main(argv + [str(target)]) == 2
            err = capsys.readouterr().err.strip()
            assert len(err.splitlines()) == 1 and "is ever written into another output" in err, err
    assert snapshot(tmp_path) == before and (collection["vectors"] / "part-00000.jsonl").is_file()


def test_evaluate_warns_of_judged_documents_absent_from_the_index(collection, index, tmp_path, capsys):
    qrels = tmp_path / "qrels.txt"
    docs = json.loads((index / "header.json").read_text())["docids"]
    qrels.write_text(f"1 0 {docs[0]} 1\n1 0 not-a-doc 1\n2 0 {docs[1]} 0\n")
    run = tmp_path / "run.trec"
    run.write_text(f"1 Q0 {docs[0]} 1 2.0 t\n2 Q0 {docs[1]} 1 1.0 t\n")
    assert evaluate_cli.main(["--qrels", str(qrels), str(run), "--index", str(index)]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if str(qrels) in line]
    assert warnings == [f"warning: {qrels}: 1 of 3 judged documents are not in {index} (e.g. not-a-doc); they can "
                        "never be retrieved; 1 of 2 topics have no relevant judgment (they score 0)"]


def test_a_truncated_numba_array_is_named(index):
    from splade_anserini.index.numba_index import IndexFormatError, NumbaIndex

    data = (index / "offsets.npy").read_bytes()
    (index / "offsets.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(IndexFormatError, match=rf"^{index / 'offsets.npy'}: unreadable"):
        NumbaIndex.load(index)
    assert np.load(index / "docs.npy", mmap_mode="r") is not None


def test_an_edited_record_never_reaches_outside_its_folder(tmp_path):
    idx = make_output(tmp_path, "idx", "numba-index")
    (tmp_path / "mine.txt").write_text("mine\n")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "data.bin").write_text("mine\n")
    marker = outputs.read_marker(idx)
    marker["record"].update({"../mine.txt": {"size": 5}, str(tmp_path / "mine.txt"): {"size": 5}})
    outputs.write_meta(idx / outputs.MARKER, marker)
    shutil.rmtree(idx / "sub")
    (idx / "sub").symlink_to(tmp_path / "mine")  # a recorded folder replaced by a link to the user's
    before = user_files(tmp_path)
    outputs.remove(idx)
    assert user_files(tmp_path) == before
