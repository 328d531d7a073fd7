"""Progress display: a tqdm bar on a terminal; elsewhere (a file, a pipe, a CI log) one line per stage.

A bar redrawn into a file becomes thousands of carriage-return updates; a log wants one line
saying what the stage did and how fast.
"""
from __future__ import annotations

import sys
import time
from typing import IO, Any


def is_terminal(stream: Any) -> bool:
    """Whether ``stream`` is an interactive terminal."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class Progress:
    """A tqdm bar when ``file`` (default stderr) is a terminal; otherwise nothing until :meth:`close`,
    which writes ``desc: n/total unit in Xs (rate/s)``. ``enabled=False`` shows nothing at all.

    Supports the part of tqdm's API used here: ``update``, ``set_postfix``, ``close`` and ``with``.
    """

    def __init__(self, desc: str, total: int | None = None, *, initial: int = 0, unit: str = "it",
                 enabled: bool = True, file: IO[str] | None = None, **tqdm_kwargs: Any):
        self.desc, self.total, self.unit = desc, total, unit
        self.n = self._initial = initial
        self.file = sys.stderr if file is None else file
        self._start = time.monotonic()
        self._bar = None
        self._line = False
        self._closed = False
        if enabled and is_terminal(self.file):
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, file=self.file,
                             dynamic_ncols=True, **tqdm_kwargs)
        else:
            self._line = enabled

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._bar is not None:
            self._bar.update(n)

    def set_postfix(self, **values: Any) -> None:
        if self._bar is not None:
            self._bar.set_postfix(**values)

    def close(self, *, summary: bool = True) -> None:
        """End the display; ``summary=False`` (a failed stage) writes no summary line."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        elif self._line and summary:
            seconds = time.monotonic() - self._start
            done = self.n - self._initial
            of = f"/{self.total}" if self.total is not None else ""
            rate = f" ({done / seconds:.1f} {self.unit}/s)" if done and seconds > 0 else ""
            print(f"{self.desc}: {self.n}{of} {self.unit} in {seconds:.1f}s{rate}", file=self.file, flush=True)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self.close(summary=exc_type is None)
