"""The frozen starting model as a teacher: self-distillation's representations cached per text, and
learning without forgetting (:class:`KeepStart`) on general-domain data."""
from __future__ import annotations

import torch

from splade_anserini.train.losses import in_batch_scores, kl_loss
from splade_anserini.train.model import SpladeTrainModel


class TeacherCache:
    """Frozen teacher representations, cached per text (sparse, on CPU): a text seen again costs nothing."""

    def __init__(self, teacher: SpladeTrainModel, tokenizer, max_entries: int = 200_000):
        self.teacher, self.tokenizer, self.max_entries = teacher, tokenizer, max_entries
        self.cache: dict[tuple[bool, str], tuple[torch.Tensor, torch.Tensor]] = {}

    @torch.no_grad()
    def reps(self, texts: list[str], is_query: bool, max_length: int, device) -> torch.Tensor:
        """The teacher's ``[len(texts), V]`` representations of ``texts`` on ``device``."""
        missing = list(dict.fromkeys(t for t in texts if (is_query, t) not in self.cache))
        if missing:
            tok = self.tokenizer(missing, max_length=max_length, truncation=True, padding=True, return_tensors="pt",
                                 return_token_type_ids=False)
            ids, mask = tok["input_ids"].to(device), tok["attention_mask"].to(device)
            if is_query and self.teacher.splade_doc:
                reps = self.teacher.bag_of_tokens(ids, mask)
            else:
                reps = self.teacher.encode(ids, mask)
            for text, rep in zip(missing, reps.float().cpu()):
                nz = rep.nonzero(as_tuple=True)[0]
                if len(self.cache) < self.max_entries:
                    self.cache[(is_query, text)] = (nz, rep[nz])
                else:  # full: keep the dense row for this call only
                    self.cache.setdefault(("tmp", text), (nz, rep[nz]))  # type: ignore[index]
        out = torch.zeros(len(texts), self.teacher.vocab_size)
        for i, t in enumerate(texts):
            idx, val = self.cache.get((is_query, t)) or self.cache[("tmp", t)]  # type: ignore[index]
            out[i, idx] = val
        for key in [k for k in self.cache if k[0] == "tmp"]:
            del self.cache[key]
        return out.to(device)


class KeepStart:
    """Learning without forgetting (Li & Hoiem 2016): a KL term that keeps the student's in-batch score
    distribution on general-domain queries and passages (MS MARCO text triples) close to the starting model's.
    It sees a loss outside the domain while training, without anyone's labels: the triples' own relevance
    is not used, only the starting model's scores. Its batches walk the triples on their own seeded stream,
    so the in-domain data order is unchanged."""

    def __init__(self, path: str, teacher: TeacherCache, batch_size: int, seed: int, max_length: int,
                 query_max_length: int, temperature: float = 1.0):
        from splade_anserini.train.data import Stream, TriplesData

        self.data = TriplesData(path)
        self.stream = Stream(self.data, seed + 7919)  # its own walk: the in-domain stream is not shifted
        self.teacher, self.batch_size, self.temperature = teacher, batch_size, temperature
        self.max_length, self.query_max_length = max_length, query_max_length

    def describe(self) -> str:
        return f"learning without forgetting on {self.data.describe()}, {self.batch_size} a step"

    def loss(self, model, step: int, rank: int, world: int, device) -> torch.Tensor:
        """The KL term for optimizer step ``step`` (this process's share of the step's triples)."""
        from splade_anserini.train.data import tokenize_batch

        examples = self.stream.batch((step * world + rank) * self.batch_size, self.batch_size)
        batch = tokenize_batch(self.teacher.tokenizer, examples, self.max_length, self.query_max_length)
        q, d = model(batch["q_ids"].to(device), batch["q_mask"].to(device), batch["d_ids"].to(device),
                     batch["d_mask"].to(device))
        texts = [e.positive for e in examples] + [n for e in examples for n in e.negatives]
        tq = self.teacher.reps([e.query for e in examples], True, self.query_max_length, device)
        td = self.teacher.reps(texts, False, self.max_length, device)
        return kl_loss(in_batch_scores(q.float(), d.float()), in_batch_scores(tq, td), self.temperature)
