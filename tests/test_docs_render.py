"""The docs are what `python -m bench.report` renders from the committed results, figure for figure."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from bench import report
from bench.results import REQUIRED, read_result

ROOT = Path(__file__).resolve().parent.parent
HISTORY = re.compile(r"session|agent|issue [0-9#]|this cpu|load average", re.IGNORECASE)


def test_committed_docs_equal_their_rendering():
    assert report.differences() == [], "run `python -m bench.report` and commit docs/"


def test_deleting_a_number_in_a_doc_is_caught(tmp_path):
    docs = tmp_path / "docs"
    shutil.copytree(report.DOCS_DIR, docs, ignore=shutil.ignore_patterns("templates", "img"))
    text = (docs / "results.md").read_text(encoding="utf-8")
    assert "0.6436" in text
    (docs / "results.md").write_text(text.replace("0.6436", "", 1), encoding="utf-8")
    assert report.differences(docs_dir=docs) == ["results.md"]


def test_changing_a_result_changes_the_docs(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(report.RESULTS_DIR, results)
    record = json.loads((results / "effectiveness.json").read_text(encoding="utf-8"))
    record["rows"][0][1] = "0.9999"
    (results / "effectiveness.json").write_text(json.dumps(record), encoding="utf-8")
    docs, _ = report.render_all(results_dir=results)
    assert "0.9999" in docs["results.md"]
    assert "results.md" in report.differences(results_dir=results)


def test_every_table_comes_from_a_result_file_with_its_provenance():
    _, renderer = report.render_all()
    files = {p.stem for p in report.RESULTS_DIR.glob("*.json")}
    assert renderer.used == files, "a result file no doc shows, or a doc naming a missing one"
    for name in files:
        record = read_result(report.RESULTS_DIR / f"{name}.json")
        assert all(record[key] not in ("", None, []) for key in REQUIRED if key != "versions"), name
    for template in report.TEMPLATES_DIR.glob("*.md"):
        tables = [line for line in template.read_text(encoding="utf-8").splitlines() if line.startswith("|")]
        assert tables == [], f"{template.name}: a table written by hand; put it in results/"


def test_a_missing_cell_or_column_is_an_error():
    record = read_result(report.RESULTS_DIR / "fusion.json")
    assert report.value(record, "CACM", "BM25") == "0.4808"
    with pytest.raises(KeyError):
        report.value(record, "CACM", "no such column")
    with pytest.raises(KeyError):
        report.value(record, "no such row", "BM25")


def test_docs_speak_of_the_product_only():
    paths = [ROOT / "README.md", *report.DOCS_DIR.rglob("*.md"), *ROOT.glob("*.md")]
    found = [f"{p.name}: {line.strip()}" for p in paths for line in p.read_text(encoding="utf-8").splitlines()
             if HISTORY.search(line)]
    assert found == []


def test_plots_are_drawn_from_results(tmp_path):
    pytest.importorskip("matplotlib")
    from bench.plots import PLOTS, draw

    for name in PLOTS:
        path = draw(name, report.RESULTS_DIR, tmp_path)
        assert path.stat().st_size > 10_000 and path.read_bytes()[:4] == b"\x89PNG"
