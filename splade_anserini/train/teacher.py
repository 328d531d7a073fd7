"""Self-distillation's teacher: a frozen model whose representations are cached per text."""
from __future__ import annotations

import torch

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
