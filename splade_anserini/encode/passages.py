"""Long documents as passages: overlapping WordPiece windows, ``docid#k``, the title on every passage.

A document whose body is longer than a window becomes passages ``docid#0``, ``docid#1``, ... (the
MaxP convention of Anserini's segmented MS MARCO documents); ``search --max-passage`` folds their
hits back into one score per document (the best passage's). Each passage holds at most
``length`` WordPiece tokens with the title and the model's two special tokens: the title takes
``t`` tokens (at most half of the window), the body window ``length - 2 - t``; windows start every
``stride`` tokens (at most the window), so consecutive passages overlap by ``window - stride``
tokens and the last window ends at the body's end. Window edges are moved back to word starts so a
passage never begins or ends inside a word.

The passages are written as a BEIR ``corpus.jsonl`` (``_id``, ``title``, ``text``), the input of
``encode_corpus`` like any corpus. This module only produces documents; it encodes nothing.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Iterator

from splade_anserini.conversion.atomic import atomic_open
from splade_anserini.conversion.errors import InputError

from splade_anserini.data import Doc, read_corpus

DELIMITER = "#"
_CHUNK = 512  # documents tokenized per call: the fast tokenizer batches them in Rust


def check_passage_args(length: int | None, stride: int | None, max_length: int | None = None) -> None:
    """``--passage-length N --passage-stride S``: both positive, ``S <= N``, the stride only with a length,
    and a passage (title and special tokens included) no longer than ``max_length``: the encoder would cut it."""
    if length is None:
        if stride is not None:
            raise ValueError("--passage-stride needs --passage-length")
        return
    if length < 8:
        raise ValueError(f"--passage-length must be >= 8 tokens, got {length}")
    if stride is not None and not 1 <= stride <= length:
        raise ValueError(f"--passage-stride {stride} must be between 1 and --passage-length {length} "
                         "(a larger stride would skip text between passages)")
    if max_length is not None and length > max_length:
        raise ValueError(f"--passage-length {length} is longer than --max-length {max_length}: every passage would "
                         f"be cut to {max_length} tokens; pass --max-length {length} or a shorter passage")


def _word_start(word_ids: list, i: int, floor: int) -> int:
    """Move token index ``i`` back to the first token of its word (not below ``floor``)."""
    while i > floor and word_ids[i] is not None and word_ids[i - 1] == word_ids[i]:
        i -= 1
    return i


def windows(word_ids: list, size: int, stride: int) -> list[tuple[int, int]]:
    """Token ranges ``[start, end)`` of the windows over a body of ``len(word_ids)`` tokens."""
    n = len(word_ids)
    if n <= size:
        return [(0, n)]
    out: list[tuple[int, int]] = []
    start = 0
    while True:
        end = min(start + size, n)
        if end < n:
            cut = _word_start(word_ids, end, start + 1)  # end before a word that would be split
            end = cut if cut > start else end
        out.append((start, end))
        if end >= n:
            return out
        nxt = _word_start(word_ids, start + stride, start + 1)
        while nxt < end and word_ids[nxt] is not None and word_ids[nxt - 1] == word_ids[nxt]:
            nxt += 1  # the word reaches back to this window's start: begin at the next word instead
        start = nxt


def split_documents(docs: Iterable[Doc], tokenizer, length: int, stride: int | None = None) -> Iterator[dict]:
    """Yield the passages of ``docs`` as BEIR objects ``{"_id": "docid#k", "title", "text"}``."""
    check_passage_args(length, stride)
    stride = stride or length
    budget = length - 2  # [CLS] and [SEP]
    chunk: list[Doc] = []

    def flush(batch: list[Doc]) -> Iterator[dict]:
        bodies = [d.text[len(d.title):].strip() if d.title else d.text for d in batch]
        titles = [d.title for d in batch]
        body_enc = tokenizer(bodies, add_special_tokens=False, return_offsets_mapping=True,
                             return_attention_mask=False, return_token_type_ids=False, verbose=False)
        title_enc = tokenizer(titles, add_special_tokens=False, return_offsets_mapping=True,
                              return_attention_mask=False, return_token_type_ids=False, verbose=False)
        for i, doc in enumerate(batch):
            title, body = titles[i], bodies[i]
            t_off = title_enc["offset_mapping"][i]
            t = min(len(t_off), budget // 2)
            if t < len(t_off):  # an overlong title is cut to half the passage
                title = title[:t_off[t - 1][1]] if t else ""
            size = budget - t
            offsets = body_enc["offset_mapping"][i]
            word_ids = body_enc.word_ids(i)
            for k, (lo, hi) in enumerate(windows(word_ids, size, min(stride, size))):
                text = body[offsets[lo][0]:offsets[hi - 1][1]] if hi > lo else ""
                yield {"_id": f"{doc.docid}{DELIMITER}{k}", "title": title, "text": text}

    for doc in docs:
        if DELIMITER in doc.docid:
            raise InputError(None, doc.line, f"document id {doc.docid!r} contains the passage delimiter "
                                             f"{DELIMITER!r}")
        chunk.append(doc)
        if len(chunk) >= _CHUNK:
            yield from flush(chunk)
            chunk = []
    if chunk:
        yield from flush(chunk)


def write_passage_corpus(corpus: str | os.PathLike, output: str | os.PathLike, tokenizer, length: int,
                         stride: int | None = None, *, fmt: str | None = None) -> dict:
    """Split ``corpus`` into passages written to ``output`` (BEIR JSONL), atomically; returns the counts.

    An existing ``output`` with the same bytes is left untouched (its modification time too), so a
    resumed encoding that fingerprints its input still recognises it; processes writing the same
    file at once (one per rank under ``torchrun``) take turns on a lock beside it. An existing file
    this tool did not write is refused (:mod:`splade_anserini.outputs`).
    """
    from splade_anserini import outputs

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    counts = {"documents": 0, "passages": 0, "split_documents": 0}
    staging = outputs.tmp_name(output)
    with outputs.lock(outputs.lock_path(output), f"passages {output}", wait=True):
        outputs.check_file(output, "passages")
        try:
            with atomic_open(staging) as fh:
                passages = split_documents(read_corpus(corpus, fmt), _tokenizer(tokenizer), length, stride)
                for passage in _counted(passages, counts):
                    fh.write(json.dumps(passage, ensure_ascii=False) + "\n")
            if not (output.is_file() and _same_bytes(output, staging)):
                os.replace(staging, output)
            outputs.record_file(output, "passages")
        except InputError as exc:
            if exc.path is None:  # the splitter knows the line, not the file
                raise InputError(corpus, exc.line, exc.problem) from None
            raise
        finally:
            outputs.remove(staging)
    return counts


def _counted(passages: Iterator[dict], counts: dict) -> Iterator[dict]:
    last = None
    for p in passages:
        docid, _, k = p["_id"].rpartition(DELIMITER)
        if docid != last:
            counts["documents"] += 1
            last = docid
        if k == "1":
            counts["split_documents"] += 1
        counts["passages"] += 1
        yield p


def _same_bytes(a: Path, b: Path) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(1 << 20), fb.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True


def _tokenizer(tokenizer):
    """A tokenizer object, or a model name / directory whose tokenizer is loaded."""
    if not isinstance(tokenizer, (str, os.PathLike)):
        return tokenizer
    from transformers import AutoTokenizer

    from splade_anserini.models import resolve_model

    return AutoTokenizer.from_pretrained(resolve_model(tokenizer))
