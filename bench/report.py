"""Render ``docs/*.md`` (and their plots) from ``docs/templates/*.md`` and the result files in ``results/``.

    python -m bench.report            # write docs/*.md and docs/img/*.png
    python -m bench.report --check    # exit 1 if a committed doc differs from its rendering

A template is Markdown with three kinds of placeholders, each on its own or inside a line:

* ``{{table NAME}}``: the table of ``results/NAME.json`` and a line saying where it came from
  (command, data, hardware, CPU, date, versions);
* ``{{value NAME|ROW|COLUMN}}``: one cell (the row whose first cell is ROW);
* ``{{plot NAME}}``: ``docs/img/NAME.png``, drawn from its result file by :mod:`bench.plots`.

Templates hold no table of their own: every figure in a table comes from a result file.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from bench.results import RESULTS_DIR, ROOT, read_result

DOCS_DIR = ROOT / "docs"
TEMPLATES_DIR = DOCS_DIR / "templates"
HEADER = "<!-- Rendered by `python -m bench.report` from docs/templates/{name} and results/: edit those. -->\n"
_PLACEHOLDER = re.compile(r"\{\{(table|value|plot) ([^}]+)\}\}")


def _cell(value) -> str:
    return "-" if value is None else str(value).replace("|", "\\|")


def _command(record: dict) -> str:
    commands = record["command"] if isinstance(record["command"], list) else [record["command"]]
    return "; ".join(f"`{c}`" for c in commands)


def source_line(record: dict) -> str:
    """Where a table's figures came from, in one paragraph."""
    versions = ", ".join(f"{k} {v}" for k, v in record["versions"].items()) or "not applicable"
    extra = f" Conditions: {record['conditions']}." if record.get("conditions") else ""
    notes = "".join(f" {note}." for note in record.get("notes", ()))
    return (f"*Source: `results/{record['name']}.json`. Command: {_command(record)}. Data: {record['data']}. "
            f"Hardware: {record['hardware']}; CPU: {record['cpu']}; date: {record['date']}. "
            f"Versions: {versions}.{extra}{notes}*")


def table(record: dict) -> str:
    """The Markdown table of a result file, followed by its source line."""
    lines = ["| " + " | ".join(_cell(c) for c in record["columns"]) + " |",
             "|" + "---|" * len(record["columns"])]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in record["rows"]]
    return "\n".join(lines) + "\n\n" + source_line(record)


def value(record: dict, row_key: str, column: str) -> str:
    """One cell: the row whose first cell is ``row_key``, the column named ``column``."""
    if column not in record["columns"]:
        raise KeyError(f"results/{record['name']}.json: no column {column!r}")
    index = record["columns"].index(column)
    for row in record["rows"]:
        if str(row[0]) == row_key:
            return _cell(row[index])
    raise KeyError(f"results/{record['name']}.json: no row {row_key!r}")


class Renderer:
    """Renders templates against one results folder; remembers which results and plots were used."""

    def __init__(self, results_dir: Path = RESULTS_DIR):
        self.results_dir = Path(results_dir)
        self.used: set[str] = set()
        self.plots: list[str] = []

    def record(self, name: str) -> dict:
        self.used.add(name)
        return read_result(self.results_dir / f"{name}.json")

    def _replace(self, match: re.Match) -> str:
        kind, arg = match.group(1), match.group(2).strip()
        if kind == "table":
            return table(self.record(arg))
        if kind == "value":
            name, row_key, column = arg.split("|")
            return value(self.record(name), row_key, column)
        from bench.plots import PLOTS

        title, sources = PLOTS[arg]
        for name in sources:
            self.record(name)
        self.plots.append(arg)
        return f"![{title}](img/{arg}.png)"

    def render(self, template: Path) -> str:
        text = template.read_text(encoding="utf-8")
        return HEADER.format(name=template.name) + _PLACEHOLDER.sub(self._replace, text)


def render_all(results_dir: Path = RESULTS_DIR, templates_dir: Path = TEMPLATES_DIR) -> tuple[dict[str, str], Renderer]:
    """``{doc file name: rendered text}`` for every template, and the renderer (what it used)."""
    renderer = Renderer(results_dir)
    docs = {t.name: renderer.render(t) for t in sorted(Path(templates_dir).glob("*.md"))}
    return docs, renderer


def differences(docs_dir: Path = DOCS_DIR, results_dir: Path = RESULTS_DIR,
                templates_dir: Path = TEMPLATES_DIR) -> list[str]:
    """The docs whose committed text is not their rendering (empty: all up to date)."""
    docs, _ = render_all(results_dir, templates_dir)
    wrong = []
    for name, text in docs.items():
        path = Path(docs_dir) / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            wrong.append(name)
    return wrong


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing (exit 1 on a difference)")
    parser.add_argument("--no-plots", action="store_true", help="write the Markdown only")
    args = parser.parse_args(argv)
    if args.check:
        wrong = differences()
        for name in wrong:
            print(f"error: docs/{name} differs from its rendering: run python -m bench.report", file=sys.stderr)
        return 1 if wrong else 0
    docs, renderer = render_all()
    for name, text in docs.items():
        (DOCS_DIR / name).write_text(text, encoding="utf-8")
        print(f"wrote docs/{name}", file=sys.stderr)
    if not args.no_plots:
        from bench.plots import draw

        for name in renderer.plots:
            print(f"wrote {draw(name, RESULTS_DIR, DOCS_DIR / 'img').relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
