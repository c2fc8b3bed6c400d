"""Sentence units: what the embedding model reads, for retrieval and for choosing sentences.

Every chunk is read as its sentences (split where the answerer splits them: at 。！？；
and line ends), each embedded once (cached by content hash) at ingest. A chunk's vector
in the vector store is the mean of its sentences' vectors, so the dense side sees the
whole chunk (a single vector of a clipped chunk saw only its start); the sentence vectors
themselves let the answerer tell which sentence of a passage says what was asked,
however it is worded.

A sentence of several clauses is also read clause by clause (``search_units``), for the
sentence channel of retrieval only: a report's sentence often lists many figures
("地区生产总值增长5%，固定资产投资增长5%，…，居民消费价格涨幅2%左右"), and its one vector
stands for all of them, so a question about one is far from it; a clause's vector is about
its own figure (and a sentence longer than ``MAX_CHARS`` is read past its start, at its commas).
"""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

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


# Clauses end at a comma or a colon, not one inside a figure ("12,345.6亿元", "8:30"); a piece
# shorter than CLAUSE_MIN_CHARS ("其中，", "2025年，") joins the next, as it says nothing of its own.
_CLAUSE_END = re.compile(r"(?<=[，,：:])(?!(?<=\d[,:])\d)")
CLAUSE_MIN_CHARS = 8
_WORD = re.compile(r"\w")


def clauses(sentence: str) -> list[str]:
    """A sentence's clauses, or none when it has only one."""
    out, piece = [], ""
    for part in _CLAUSE_END.split(sentence):
        piece += part
        if len(piece.strip()) >= CLAUSE_MIN_CHARS and _WORD.search(piece):
            out.append(piece.strip())
            piece = ""
    if piece.strip() and out:
        out[-1] += piece.rstrip()
    return [c[:MAX_CHARS] for c in out] if len(out) > 1 else []


def clause_units(norm_text: str) -> list[str]:
    """The clauses of a chunk's sentences that have several (none that is a sentence unit too)."""
    seen = set(units(norm_text))
    out = []
    for s in SPLIT.split(norm_text):
        for c in clauses(s.strip()):
            if c not in seen:
                seen.add(c)
                out.append(c)
    return out


def search_units(norm_text: str, with_clauses: bool = True) -> list[str]:
    """What the sentence channel searches a chunk by: its sentence units, and (``with_clauses``)
    the clauses of those that have several."""
    return units(norm_text) + (clause_units(norm_text) if with_clauses else [])


def unit_of(sentence_norm: str) -> str:
    """The unit a sentence (normalised) is read as: what its similarity is found under."""
    return sentence_norm.strip()[:MAX_CHARS]


def mean_vector(vectors: list[list[float]]) -> list[float]:
    m = np.asarray(vectors, dtype=np.float32).mean(axis=0)
    n = float(np.linalg.norm(m))
    return (m / n if n > 0 else m).tolist()


class SentenceRows:
    """The vectors of sentence units, one row per distinct unit, shared by successive views.

    Rows are only ever appended (into spare capacity, or a bigger buffer when it runs out), so a
    view keeps reading the rows it was built with while a newer one adds its own; a unit keeps
    its row for the life of the buffer. Rows no view needs any more are dropped by compacting
    into a new buffer (``SentenceVectors.compacted``)."""

    def __init__(self) -> None:
        self.row: dict[str, int] = {}
        self.buffer: np.ndarray | None = None
        self.fill = 0

    def add(self, keys: list[str], vectors) -> None:
        if not keys:
            return
        vectors = np.asarray(vectors, dtype=np.float32)
        need = self.fill + len(keys)
        if self.buffer is None or need > len(self.buffer):
            # Twice what is needed: the next changes append without copying (the spare rows are
            # not touched, so they take no memory until used).
            grown = np.empty((max(2 * need, 1024), vectors.shape[1]), dtype=np.float32)
            if self.buffer is not None:
                grown[: self.fill] = self.buffer[: self.fill]
            self.buffer = grown  # views of the old buffer keep it alive and unchanged
        self.buffer[self.fill : need] = vectors
        for i, key in enumerate(keys, start=self.fill):
            self.row[key] = i
        self.fill = need


class DocSentences(NamedTuple):
    """One document's part of a view: its chunks (the very tuple the snapshot holds, so an unchanged
    document is recognised by identity), and each (chunk, sentence row) pair."""

    chunks: tuple
    pair_chunk: np.ndarray  # position of the chunk within the document
    pair_row: np.ndarray

    @classmethod
    def of(cls, chunks: tuple, triples: list[tuple[str, str, str]], rows: SentenceRows) -> "DocSentences":
        at = {c.chunk_id: i for i, c in enumerate(chunks)}
        pairs = [(at[cid], rows.row[u]) for cid, u, _ in triples if u in rows.row]
        return cls(chunks, np.array([c for c, _ in pairs], dtype=np.int64), np.array([r for _, r in pairs], dtype=np.int64))


class SentenceVectors:
    """Every sentence vector of one index snapshot, for similarities with a question.

    Its chunks are laid out in the snapshot's order (documents by id, then their chunks), the order
    of ``Snapshot.allowed_mask``. A new view is the previous one with the changed documents'
    parts replaced: only their sentences are looked up, so a one-document change costs that
    document, not the index."""

    def __init__(self, rows: SentenceRows, parts: dict[str, DocSentences]):
        self.rows, self.parts = rows, parts
        self.fill = rows.fill
        self.matrix = rows.buffer[: self.fill] if rows.buffer is not None else np.zeros((0, 0), dtype=np.float32)
        self.chunk_ids = [c.chunk_id for part in parts.values() for c in part.chunks]
        offsets = np.cumsum([0] + [len(part.chunks) for part in parts.values()])[:-1]
        self._pair_chunk = np.concatenate([part.pair_chunk + off for part, off in zip(parts.values(), offsets)]) \
            if parts else np.zeros(0, dtype=np.int64)
        self._pair_row = np.concatenate([part.pair_row for part in parts.values()]) if parts else np.zeros(0, dtype=np.int64)

    @classmethod
    def updated(cls, previous: "SentenceVectors | None", by_doc: dict[str, tuple],
                triples_of: Callable[[tuple], list[tuple[str, str, str]]],
                fetch: Callable[[set[str]], dict[str, list[float]]]) -> "SentenceVectors":
        """The view of ``by_doc`` (a snapshot's chunks by document, in its order), reusing
        ``previous``'s parts of the documents whose chunks are the same tuple. ``triples_of``: a
        document's chunks → their (chunk id, unit, cache key), asked of changed documents only;
        ``fetch``: cached vectors by key (a unit missing there, written before sentence vectors
        were, has no row and no pairs)."""
        rows = previous.rows if previous is not None else SentenceRows()
        old = previous.parts if previous is not None else {}
        triples = {d: triples_of(chunks) for d, chunks in by_doc.items() if d not in old or old[d].chunks is not chunks}
        wanted = {u: h for t in triples.values() for _, u, h in t if u not in rows.row}
        if wanted:
            found = fetch(set(wanted.values()))
            keys = [u for u, h in wanted.items() if h in found]
            rows.add(keys, [found[wanted[u]] for u in keys])
        fresh = {d: DocSentences.of(by_doc[d], t, rows) for d, t in triples.items()}
        out = cls(rows, {d: fresh[d] if d in fresh else old[d] for d in by_doc})
        live = np.count_nonzero(np.bincount(out._pair_row, minlength=out.fill)) if out.fill else 0
        return out.compacted() if out.fill - live > max(live, 1024) else out

    def compacted(self) -> "SentenceVectors":
        """The same view over a new buffer holding only the rows its pairs use."""
        used = np.flatnonzero(np.bincount(self._pair_row, minlength=self.fill))
        renumber = np.full(self.fill, -1, dtype=np.int64)
        renumber[used] = np.arange(len(used))
        key_of = {r: k for k, r in self.rows.row.items() if r < self.fill}
        rows = SentenceRows()
        rows.add([key_of[r] for r in used], self.matrix[used])
        parts = {d: p._replace(pair_row=renumber[p.pair_row]) for d, p in self.parts.items()}
        return SentenceVectors(rows, parts)

    def best_chunks(self, query: np.ndarray, k: int, mask: np.ndarray | None = None) -> list[tuple[str, float]]:
        """The chunks whose closest sentence is closest to the question: (chunk id, similarity);
        ``mask`` (the snapshot's allowed rows) keeps only those. Ties go to the earlier chunk."""
        if not len(self._pair_row) or k <= 0:
            return []
        sims = self.matrix @ query
        best = np.full(len(self.chunk_ids), -np.inf, dtype=np.float32)
        np.maximum.at(best, self._pair_chunk, sims[self._pair_row])
        if mask is not None:
            best[~mask] = -np.inf
        k = min(k, len(best))
        kth = np.partition(best, len(best) - k)[len(best) - k]
        cand = np.flatnonzero(best >= kth)
        order = cand[np.lexsort((cand, -best[cand]))][:k]
        return [(self.chunk_ids[i], float(best[i])) for i in order if np.isfinite(best[i])]

    def __len__(self) -> int:
        return self.fill

    def similarities(self, keys: list[str], query: np.ndarray) -> dict[str, float]:
        row = self.rows.row
        rows = [(k, r) for k in keys if (r := row.get(k)) is not None and r < self.fill]
        if not rows:
            return {}
        sims = self.matrix[[r for _, r in rows]] @ query
        return {k: float(s) for (k, _), s in zip(rows, sims)}
