"""Result files: what a bench or train command measured, as ``results/<name>.json``.

Each file carries its own provenance, so that a table in ``docs/`` says where it came from::

    {"name", "title", "command", "data", "hardware", "cpu", "date", "versions",
     "columns": [...], "rows": [[...], ...], "conditions"?, "notes"?}

``python -m bench.report`` renders every table and plot of ``docs/`` from these files.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "results"
REQUIRED = ("name", "title", "command", "data", "hardware", "cpu", "date", "versions", "columns", "rows")
_PACKAGES = ("splade-anserini", "pyserini", "torch", "transformers", "onnxruntime", "numba")


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or ``unknown``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def versions() -> dict[str, str]:
    """Python, the packages that decide a figure, and the Anserini fatjar (read from its file name)."""
    found = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    from splade_anserini.__main__ import anserini_version

    found["anserini"] = anserini_version()
    return found


def hardware() -> str:
    return f"{os.cpu_count()} CPU cores, {platform.machine()}"


def dumps(record: dict) -> str:
    """JSON with one table row per line (reviewable diffs)."""
    head = {k: v for k, v in record.items() if k != "rows"}
    text = json.dumps(head, indent=1, ensure_ascii=False)[:-2]
    rows = ",\n  ".join(json.dumps(row, ensure_ascii=False) for row in record["rows"])
    return f"{text},\n \"rows\": [\n  {rows}\n ]\n}}\n"


def this_command() -> str:
    """This process's command line as a user types it: ``python -m bench.NAME ...`` for a bench module."""
    script = Path(sys.argv[0])
    if script.suffix == ".py" and script.parent.name == "bench":
        return shlex.join(["python", "-m", f"bench.{script.stem}", *sys.argv[1:]])
    return shlex.join([script.as_posix(), *sys.argv[1:]])


def write_result(name: str, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, data: str,
                 command: str | None = None, folder: str | os.PathLike = RESULTS_DIR, **extra) -> Path:
    """Write ``folder/name.json`` with this run's command line, versions, CPU model and date."""
    record = {"name": name, "title": title,
              "command": command or this_command(),
              "data": data, "hardware": hardware(), "cpu": cpu_model(),
              "date": datetime.date.today().isoformat(), "versions": versions(),
              "columns": list(columns), "rows": [list(r) for r in rows], **extra}
    path = Path(folder) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    from splade_anserini.conversion.atomic import atomic_open

    with atomic_open(path) as fh:
        fh.write(dumps(record))
    return path


def read_result(path: str | os.PathLike) -> dict:
    """A result file, checked for the fields every table's source line needs."""
    record = json.loads(Path(path).read_text(encoding="utf-8"))
    missing = [key for key in REQUIRED if key not in record]
    if missing:
        raise ValueError(f"{path}: missing {', '.join(missing)}")
    width = len(record["columns"])
    for i, row in enumerate(record["rows"], 1):
        if len(row) != width:
            raise ValueError(f"{path}: row {i} has {len(row)} cells, expected {width}")
    return record
