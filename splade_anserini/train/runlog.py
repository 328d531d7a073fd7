"""The trainer's messages: one-line notes on stderr and the append-only ``log.jsonl``."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def info(msg: str) -> None:
    """A ``[train]`` note on stderr."""
    print(f"[train] {msg}", file=sys.stderr, flush=True)


class JsonlLog:
    """Append-only JSONL log (main process only); on resume, entries after the resumed step are dropped."""

    def __init__(self, path: Path, enabled: bool):
        self.path, self.enabled = path, enabled

    def truncate_after(self, step: int) -> None:
        if not self.enabled or not self.path.is_file():
            return
        keep = [line for line in self.path.read_text(encoding="utf-8").splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= step]
        self.path.write_text("".join(line + "\n" for line in keep), encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
