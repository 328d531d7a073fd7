"""Java exceptions reaching Python through pyjnius, named in one line; queries a batch search could not
answer, found one by one (no Java stack trace on the terminal, no partial run)."""
from __future__ import annotations

from typing import Callable, Sequence


def java_error(exc: BaseException) -> str:
    """One line: the innermost Java cause of a pyjnius exception."""
    inner = getattr(exc, "innermessage", None) or str(exc)
    lines = [line for line in str(inner).splitlines() if line.strip()]
    return lines[0] if lines else repr(exc)


def java_cause(exc: BaseException) -> str:
    """``IndexSearcher$TooManyClauses: maxClauseCount is set to 1024``: the Java class and its first line."""
    name = getattr(exc, "classname", None)
    return f"{name.rsplit('.', 1)[-1]}: {java_error(exc)}" if name else java_error(exc)


class UnansweredQueryError(RuntimeError):
    """A backend could not answer a query: the run is not written (exit 1)."""


def answer_every_query(batch: Callable[[], dict], qids: Sequence[str], one: Callable[[str], object], how: str) -> dict:
    """``batch()`` with Java's stack traces kept off the terminal; when it fails (Anserini's batch
    search says only ``queryCount = N is not equal to completedTaskCount = M``) the queries are
    searched one by one to name those that fail and why: :class:`UnansweredQueryError`."""
    from splade_anserini import java

    with java.java_stderr():
        try:
            return batch()
        except Exception as exc:  # noqa: BLE001 - a Java exception through pyjnius: named below
            batch_error = java_cause(exc)
    failed: dict[str, str] = {}
    with java.java_stderr():
        for qid in qids:
            try:
                one(qid)
            except Exception as exc:  # noqa: BLE001
                failed[qid] = java_cause(exc)
    if not failed:
        raise UnansweredQueryError(f"{how} failed: {batch_error}; no run written")
    first = next(iter(failed))
    raise UnansweredQueryError(f"{how} could not answer {len(failed)} of {len(qids)} queries (first: query {first}: "
                               f"{failed[first]}); no run written")
