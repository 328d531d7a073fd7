"""The project's errors for bad input files and bad arguments: one line each."""
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


class UsageError(ValueError):
    """Bad arguments or an output in the way (not a problem inside an input file); one line."""
