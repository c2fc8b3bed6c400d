"""Sentence units: what the embedding model reads, for retrieval and for choosing sentences.

Every chunk is read as its sentences (split where the answerer splits them: at 。！？；
and line ends), each embedded once (cached by content hash) at ingest. A chunk's vector
in the vector store is the mean of its sentences' vectors, so the dense side sees the
whole chunk (a single vector of a clipped chunk saw only its start); the sentence vectors
themselves let the answerer tell which sentence of a passage says what was asked,
however it is worded.
"""
from __future__ import annotations

import re

import numpy as np

SPLIT = re.compile(r"(?<=[。！？；!?;])|\n")
MAX_CHARS = 160  # a longer sentence is read by its start; e5 cost grows with length
MIN_CHARS = 4


def units(norm_text: str) -> list[str]:
    """The sentence units of a chunk's normalised text."""
    out = []
    for s in SPLIT.split(norm_text):
        s = s.strip()
        if len(s) >= MIN_CHARS:
            out.append(s[:MAX_CHARS])
    return out


def unit_of(sentence_norm: str) -> str:
    """The unit a sentence (normalised) is read as: what its similarity is found under."""
    return sentence_norm.strip()[:MAX_CHARS]


def mean_vector(vectors: list[list[float]]) -> list[float]:
    m = np.asarray(vectors, dtype=np.float32).mean(axis=0)
    n = float(np.linalg.norm(m))
    return (m / n if n > 0 else m).tolist()


class SentenceVectors:
    """Every sentence vector of one index snapshot, for similarities with a question."""

    def __init__(self, keys: list[str], matrix: np.ndarray):
        self.row = {k: i for i, k in enumerate(keys)}
        self.matrix = matrix

    def __len__(self) -> int:
        return len(self.row)

    def similarities(self, keys: list[str], query: np.ndarray) -> dict[str, float]:
        rows = [(k, self.row[k]) for k in keys if k in self.row]
        if not rows:
            return {}
        sims = self.matrix[[r for _, r in rows]] @ query
        return {k: float(s) for (k, _), s in zip(rows, sims)}
