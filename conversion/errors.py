"""One error type for bad input files: always names the file, the line and the problem."""
from __future__ import annotations

import os


class InputError(ValueError):
    """Bad input data; ``str(err)`` is a one-line message ``file:line: problem``."""

    def __init__(self, path: str | os.PathLike | None, line: int | None, problem: str):
        self.path = None if path is None else os.fspath(path)
        self.line = line
        self.problem = problem
        where = self.path or "<input>"
        if line is not None:
            where = f"{where}:{line}"
        super().__init__(f"{where}: {problem}")
