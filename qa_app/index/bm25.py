"""Okapi BM25 over a sparse term-document matrix.

Scores for a query are one sparse column slice and a sum, so a search over 100k chunks
stays in the low milliseconds. The matrix is rebuilt from stored token lists, which is
cheap next to embedding.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from scipy import sparse


@dataclass
class BM25Index:
    ids: list[str]
    vocab: dict[str, int]
    weights: sparse.csc_matrix  # docs × terms, BM25 term weights (idf × saturated tf)
    idf: np.ndarray

    @classmethod
    def build(cls, ids: list[str], token_lists: list[list[str]], k1: float = 1.2, b: float = 0.75) -> "BM25Index":
        vocab: dict[str, int] = {}
        rows, cols, tfs = [], [], []
        lengths = np.zeros(len(ids), dtype=np.float32)
        for row, toks in enumerate(token_lists):
            lengths[row] = len(toks)
            for term, tf in Counter(toks).items():
                rows.append(row)
                cols.append(vocab.setdefault(term, len(vocab)))
                tfs.append(tf)
        n_docs = max(len(ids), 1)
        tf = np.asarray(tfs, dtype=np.float32)
        col = np.asarray(cols, dtype=np.int64)
        row_arr = np.asarray(rows, dtype=np.int64)
        df = np.bincount(col, minlength=len(vocab)).astype(np.float32)
        idf = np.log(1.0 + (n_docs - df + 0.5) / (df + 0.5)).astype(np.float32)
        avgdl = float(lengths.mean()) if len(ids) else 1.0
        norm = k1 * (1 - b + b * lengths[row_arr] / max(avgdl, 1e-9))
        w = idf[col] * tf * (k1 + 1) / (tf + norm)
        matrix = sparse.csc_matrix((w, (row_arr, col)), shape=(len(ids), len(vocab)), dtype=np.float32)
        return cls(ids=list(ids), vocab=vocab, weights=matrix, idf=idf)

    def __len__(self) -> int:
        return len(self.ids)

    def scores(self, query_tokens: list[str]) -> np.ndarray:
        cols = [self.vocab[t] for t in query_tokens if t in self.vocab]
        if not cols or not self.ids:
            return np.zeros(len(self.ids), dtype=np.float32)
        counts = Counter(cols)
        idx = np.fromiter(counts.keys(), dtype=np.int64)
        mult = np.fromiter(counts.values(), dtype=np.float32)
        return np.asarray(self.weights[:, idx] @ mult).ravel()

    def search(self, query_tokens: list[str], k: int, allowed: np.ndarray | None = None) -> list[tuple[str, float]]:
        s = self.scores(query_tokens)
        if allowed is not None:
            s = np.where(allowed, s, 0.0)
        k = min(k, int((s > 0).sum()))
        if k <= 0:
            return []
        top = np.argpartition(-s, k - 1)[:k]
        top = top[np.argsort(-s[top], kind="stable")]
        return [(self.ids[i], float(s[i])) for i in top]

    def knows(self, term: str) -> bool:
        return term in self.vocab

    def term_idf(self, term: str) -> float | None:
        i = self.vocab.get(term)
        return float(self.idf[i]) if i is not None else None
