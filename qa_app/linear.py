"""Linear scores over standardised features, fitted offline and shipped as JSON: the sentence
model (``qa_app/llm/sentence_model.py``) and the retrieval fusion (``qa_app/index/fusion.py``)
read them; inference is a dot product, with no library beyond the standard one."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence


def softmax(scores: Sequence[float]) -> list[float]:
    if not scores:
        return []
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]


@dataclass(frozen=True)
class Linear:
    """A linear score over standardised features: ``intercept + Σ coef·(x − mean)/scale``."""

    names: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float = 0.0

    def score(self, row: Sequence[float]) -> float:
        return self.intercept + sum(w * (x - m) / s for w, x, m, s in zip(self.coef, row, self.mean, self.scale))

    def probability(self, row: Sequence[float]) -> float:
        z = self.score(row)
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))

    @classmethod
    def from_dict(cls, d: dict) -> "Linear":
        return cls(tuple(d["names"]), tuple(d["mean"]), tuple(d["scale"]), tuple(d["coef"]), float(d.get("intercept", 0.0)))

    def to_dict(self) -> dict:
        return {"names": list(self.names), "mean": list(self.mean), "scale": list(self.scale),
                "coef": list(self.coef), "intercept": self.intercept}
