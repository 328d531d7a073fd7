"""The published reference figures, read from the data folder's README (nothing is measured here).

    python -m bench.published [--readme ../shared/data/README.md] [--results results]

Reads the README's "Reference numbers" section (sentences ``SOURCE: SYSTEM FIGURE, SYSTEM FIGURE.``) and
the default model's paragraph (``Measured here with SETTINGS quantization, ENGINE impact index: SciFact test
nDCG@10 FIGURE``), and writes ``results/published.json``: the baselines first, then the learned sparse
models by increasing nDCG@10, then the default model as measured here.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

TITLE = "Published reference figures (SciFact test nDCG@10)"
COLUMNS = ["system", "SciFact nDCG@10", "source"]
_SECTION = re.compile(r"^## Reference numbers[^\n]*\n(.*?)(?=^## |\Z)", re.S | re.M)
_ITEM = re.compile(r"^(.+?)\s+(\d+\.\d+)$")
_MEASURED = re.compile(r"`([^`]+)`.*?Measured here with (.+?) quantization, (\w+) impact index: "
                       r"SciFact test nDCG@10 (\d+\.\d+)", re.S)


class ReadmeError(ValueError):
    """The README lacks what the table is read from."""


def source_label(prefix: str) -> str:
    """``Published Anserini regressions on BEIR SciFact`` -> ``Anserini regression``;
    ``SPLADE v2 paper (Table 2)`` -> ``SPLADE v2 paper, Table 2``."""
    label = re.sub(r"^Published\s+", "", prefix.strip())
    label = re.sub(r"\s+on\s+.*$", "", label)
    label = re.sub(r"\bregressions\b", "regression", label)
    return re.sub(r"\s*\((Table \d+)\)", r", \1", label)


def reference_rows(text: str) -> list[list[str]]:
    """[system, figure, source] of the "Reference numbers" section, in the README's order."""
    section = _SECTION.search(text)
    if section is None:
        raise ReadmeError("no '## Reference numbers' section")
    rows = []
    for sentence in re.split(r"(?<=\d)\.\s+|\.\s*$", " ".join(section.group(1).split())):
        if ":" not in sentence:
            continue
        prefix, items = sentence.split(":", 1)
        for item in items.split(","):
            match = _ITEM.match(item.strip())
            if match is None:
                raise ReadmeError(f"reference numbers: cannot read {item.strip()!r} as 'SYSTEM FIGURE'")
            rows.append([match.group(1), match.group(2), source_label(prefix)])
    if not rows:
        raise ReadmeError("the '## Reference numbers' section holds no 'SOURCE: SYSTEM FIGURE' sentence")
    return rows


def default_model_row(text: str) -> list[str]:
    """[the default model as measured here, figure, source] from the README's "The default model" paragraph."""
    start = text.find("## The default model")
    match = _MEASURED.search(" ".join(text[start:].split())) if start >= 0 else None
    if match is None:
        raise ReadmeError("no '## The default model' paragraph with 'Measured here with ... SciFact test nDCG@10 N'")
    model, settings, engine, figure = match.groups()
    return [f"{model} ({settings}, {engine})", figure, "data README reference"]


def table(text: str) -> list[list[str]]:
    """The rows of ``results/published.json``: baselines (BM25) in the README's order, then the others by
    increasing figure, then the default model."""
    rows = reference_rows(text)
    baselines = [r for r in rows if r[0].startswith("BM25")]
    others = sorted((r for r in rows if not r[0].startswith("BM25")), key=lambda r: float(r[1]))
    return baselines + others + [default_model_row(text)]


def main(argv: list[str] | None = None) -> int:
    from splade_anserini.data import data_root

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--readme", type=Path, default=None, help="default: README.md of the data root")
    p.add_argument("--results", default="results", help="folder of the result file (default: results)")
    args = p.parse_args(argv)
    readme = args.readme or data_root() / "README.md"
    try:
        rows = table(readme.read_text(encoding="utf-8"))
    except (OSError, ReadmeError) as exc:
        print(f"error: {readme}: {exc.strerror if isinstance(exc, OSError) else exc}", file=sys.stderr)
        return 2
    from bench.results import write_result

    for row in rows:
        print(" | ".join(row))
    path = write_result("published", TITLE, COLUMNS, rows, data="SciFact test", folder=args.results,
                        notes=["read from the data folder's README.md (its reference numbers and its default model's "
                               "paragraph), not measured here"])
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
