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

    def __init__(self, keys: list[str], matrix: np.ndarray, owners: list[tuple[str, str]] = ()):
        self.row = {k: i for i, k in enumerate(keys)}
        self.matrix = matrix
        # (chunk id, unit) pairs: which chunks each sentence belongs to, for a sentence-level ranking.
        pairs = [(cid, self.row[u]) for cid, u in owners if u in self.row]
        self.chunk_ids = sorted({cid for cid, _ in pairs})
        index = {cid: i for i, cid in enumerate(self.chunk_ids)}
        self._pair_chunk = np.array([index[cid] for cid, _ in pairs], dtype=np.int64)
        self._pair_row = np.array([r for _, r in pairs], dtype=np.int64)

    def best_chunks(self, query: np.ndarray, k: int, allowed: set[str] | None = None) -> list[tuple[str, float]]:
        """The chunks whose closest sentence is closest to the question: (chunk id, similarity)."""
        if not len(self._pair_row):
            return []
        sims = self.matrix @ query
        best = np.full(len(self.chunk_ids), -1.0, dtype=np.float32)
        np.maximum.at(best, self._pair_chunk, sims[self._pair_row])
        order = np.argsort(-best)
        out = []
        for i in order:
            cid = self.chunk_ids[i]
            if allowed is None or cid in allowed:
                out.append((cid, float(best[i])))
                if len(out) >= k:
                    break
        return out

    def __len__(self) -> int:
        return len(self.row)

    def similarities(self, keys: list[str], query: np.ndarray) -> dict[str, float]:
        rows = [(k, self.row[k]) for k in keys if k in self.row]
        if not rows:
            return {}
        sims = self.matrix[[r for _, r in rows]] @ query
        return {k: float(s) for (k, _), s in zip(rows, sims)}
