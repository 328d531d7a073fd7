"""``python -m bench.published``: the reference figures are read from the data README, not typed in."""
from __future__ import annotations

import json

import pytest

from bench import published
from bench.results import RESULTS_DIR, read_result
from splade_anserini.data import data_root

pytestmark = pytest.mark.one_leg


def test_the_committed_table_is_what_the_data_readme_says(tmp_path, capsys):
    assert published.main(["--results", str(tmp_path)]) == 0
    made = read_result(tmp_path / "published.json")
    committed = json.loads((RESULTS_DIR / "published.json").read_text(encoding="utf-8"))
    assert made["rows"] == committed["rows"]
    assert (made["title"], made["columns"]) == (committed["title"], committed["columns"])
    readme = " ".join((data_root() / "README.md").read_text(encoding="utf-8").split())
    assert all(row[1] in readme and row[0].split(" (")[0] in readme for row in made["rows"])


def test_a_changed_figure_in_the_readme_changes_the_table(tmp_path):
    text = (data_root() / "README.md").read_text(encoding="utf-8")
    first = published.reference_rows(text)[0]
    edited = tmp_path / "README.md"
    edited.write_text(text.replace(f"{first[0]} {first[1]}", f"{first[0]} 0.5"), encoding="utf-8")
    assert published.main(["--readme", str(edited), "--results", str(tmp_path)]) == 0
    rows = read_result(tmp_path / "published.json")["rows"]
    assert rows[0] == [first[0], "0.5", first[2]] and rows[-1][0].startswith("splade-tiny")


def test_a_readme_without_the_section_is_refused_without_output(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# Data\n\n## Formats\nnothing here\n", encoding="utf-8")
    assert published.main(["--readme", str(readme), "--results", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {readme}:") and "Reference numbers" in err and "\n" not in err
    assert not (tmp_path / "out").exists()
