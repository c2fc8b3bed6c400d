"""Okapi BM25 over a sparse term-frequency matrix that takes one document's change without a rebuild.

Raw term frequencies are kept (rows × terms, column-major), not BM25 weights: a change of
one document moves every term's idf and the mean length, so stored weights would all have to
be recomputed, while weights computed at query time for the query's few columns cost next to
nothing. A changed document's rows are appended and the rows it had are dropped from the
reading order (``order``) and from the document frequencies; they are swept out once they
outnumber the live ones. Rows are read in the order a build from scratch gives (documents by
id, then as given), and each score is computed by the same float32 operations in the same
order as a fresh build's, so an index changed step by step scores exactly like one built
from its final documents. ``save``/``load`` keep it in a file of plain arrays (no pickles),
so a process can start without parsing every token list again.
"""
from __future__ import annotations

import json
import os
import zipfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import sparse

# A document's rows: where they are stored, and what they add to the collection statistics.
_EMPTY = np.zeros(0, dtype=np.int64)
FILE_FORMAT = 1


@dataclass(frozen=True)
class _Segment:
    start: int  # storage rows [start, stop)
    stop: int
    ids: tuple[str, ...]
    cols: np.ndarray  # the terms the document's rows contain
    df: np.ndarray  # in how many of its rows each of those terms occurs


@dataclass(frozen=True)
class BM25Index:
    """Never changed in place: ``updated`` returns a new index that shares what did not change."""

    ids: list[str]  # in reading order: documents by id, each one's rows as given
    vocab: dict[str, int]
    tf: sparse.csc_matrix  # storage rows × terms, raw term frequencies (float32)
    lengths: np.ndarray  # tokens per storage row (float32)
    df: np.ndarray  # live rows containing each term (int64)
    order: np.ndarray  # reading position → storage row
    segments: dict[str, _Segment]
    idf: np.ndarray  # float32, per term
    avgdl: float
    k1: float = 1.2
    b: float = 0.75

    # --- building --------------------------------------------------------------------------------
    @classmethod
    def build(cls, ids: list[str], token_lists: list[list[str]], k1: float = 1.2, b: float = 0.75) -> "BM25Index":
        """An index of these rows, in this order (one anonymous document)."""
        return cls.from_documents([("", list(ids), token_lists)], k1, b)

    @classmethod
    def from_documents(cls, docs: Iterable[tuple[str, list[str], list[list[str]]]],
                       k1: float = 1.2, b: float = 0.75) -> "BM25Index":
        """An index of documents given as (document id, row ids, token lists); rows are read by
        document id, then in the order given."""
        empty = sparse.csc_matrix((0, 0), dtype=np.float32)
        base = cls(ids=[], vocab={}, tf=empty, lengths=np.zeros(0, dtype=np.float32), df=_EMPTY, order=_EMPTY,
                   segments={}, idf=np.zeros(0, dtype=np.float32), avgdl=1.0, k1=k1, b=b)
        return base.updated(set(), docs)

    def updated(self, removed: Iterable[str], added: Iterable[tuple[str, list[str], list[list[str]]]]) -> "BM25Index":
        """This index with the documents in ``removed`` dropped and those in ``added`` put in
        (a document in both, or already here, is replaced). ``added`` is read one document at a
        time and each one's token lists are let go once counted, so a whole build streams."""
        segments = dict(self.segments)
        df = self.df.copy()

        def drop(d: str) -> None:
            s = segments.pop(d, None)
            if s is not None:
                df[s.cols] -= s.df  # a segment lists each term once

        for d in set(removed):
            drop(d)
        vocab = dict(self.vocab)
        # Per document, as arrays: Python lists of every row's terms cost ~10× their numbers.
        cols: list[np.ndarray] = []
        tfs: list[np.ndarray] = []
        widths: list[np.ndarray] = []  # distinct terms per new row
        lengths: list[np.ndarray] = []
        start = self.tf.shape[0]
        stop, seen = start, set()
        for doc, ids, token_lists in added:
            if doc in seen:
                raise ValueError("a document is added twice in one update")
            seen.add(doc)
            if len(ids) != len(token_lists):
                raise ValueError(f"{doc}: {len(ids)} row ids for {len(token_lists)} token lists")
            drop(doc)
            d_cols: list[int] = []
            d_tfs: list[int] = []
            d_widths: list[int] = []
            d_lengths: list[int] = []
            # Per row, the work stays in C (Counter, set difference, map) but for new terms.
            # (set.difference with a dict looks each term up; ``keys() - keys()`` walks the whole vocabulary.)
            for toks in token_lists:
                counts = Counter(toks)
                for term in set(counts).difference(vocab):
                    vocab[term] = len(vocab)
                d_cols.extend(map(vocab.__getitem__, counts))
                d_tfs.extend(counts.values())
                d_widths.append(len(counts))
                d_lengths.append(len(toks))
            col_array = np.asarray(d_cols, dtype=np.int32)  # half of int64's memory; vocabularies stay far below 2**31
            terms, in_rows = np.unique(col_array, return_counts=True)
            segments[doc] = _Segment(stop, stop + len(d_lengths), tuple(ids), terms, in_rows)
            stop += len(d_lengths)
            cols.append(col_array)
            tfs.append(np.asarray(d_tfs, dtype=np.float32))
            widths.append(np.asarray(d_widths, dtype=np.int64))
            lengths.append(np.asarray(d_lengths, dtype=np.float32))
        if not seen:
            vocab = self.vocab
        new_cols = np.concatenate(cols) if cols else _EMPTY.astype(np.int32)
        cols.clear()
        rows = np.repeat(np.arange(start, stop, dtype=np.int32), np.concatenate(widths) if widths else _EMPTY)
        new_tfs = np.concatenate(tfs) if tfs else np.zeros(0, dtype=np.float32)
        tfs.clear()
        df = np.concatenate([df, np.zeros(len(vocab) - len(df), dtype=np.int64)])
        df += np.bincount(new_cols, minlength=len(vocab))
        tf = self._appended(rows, new_cols, new_tfs, stop, len(vocab))
        del rows, new_cols, new_tfs
        all_lengths = np.concatenate([self.lengths, *lengths])
        out = self._with(vocab, tf, all_lengths, df, segments)
        live = len(out.order)
        return out._compacted() if tf.shape[0] - live > max(live, 1024) else out

    def _appended(self, rows: np.ndarray, cols: np.ndarray, tfs: np.ndarray, n_rows: int, n_cols: int) -> sparse.csc_matrix:
        """The stored matrix with new rows (all below the present ones) added at the end of their columns."""
        old = self.tf
        indptr = np.concatenate([old.indptr.astype(np.int64), np.full(n_cols - old.shape[1], old.nnz, dtype=np.int64)])
        if not len(cols):
            return sparse.csc_matrix((old.data, old.indices, indptr), shape=(n_rows, n_cols))
        # Sorted by column (rows stay in order within one) by scipy's linear-time conversion.
        new = sparse.csc_matrix((tfs, (rows, cols)), shape=(n_rows, n_cols), dtype=np.float32)
        if not old.nnz:  # a build from scratch: nothing to merge with
            return new
        per_col = np.diff(new.indptr)
        # Each new entry goes after its column's present entries: where it lands in the merged
        # arrays, found without the sort np.insert would do.
        at = np.repeat(indptr[1:], per_col) + np.arange(new.nnz)
        keep = np.ones(old.nnz + new.nnz, dtype=bool)
        keep[at] = False
        data = np.empty(len(keep), dtype=np.float32)
        data[at], data[keep] = new.data, old.data
        indices = np.empty(len(keep), dtype=old.indices.dtype)
        indices[at], indices[keep] = new.indices, old.indices
        indptr[1:] += np.cumsum(per_col)
        return sparse.csc_matrix((data, indices, indptr), shape=(n_rows, n_cols))

    def _with(self, vocab: dict[str, int], tf: sparse.csc_matrix, lengths: np.ndarray, df: np.ndarray,
              segments: dict[str, _Segment]) -> "BM25Index":
        """The index over these parts: reading order, ids and collection statistics derived again."""
        names = sorted(segments)
        parts = [np.arange(segments[d].start, segments[d].stop, dtype=np.int64) for d in names]
        order = np.concatenate(parts) if parts else _EMPTY
        ids = [i for d in names for i in segments[d].ids]
        n_docs = max(len(ids), 1)
        dff = df.astype(np.float32)
        # The same float32 operations as ever, so scores do not move by an ulp.
        idf = np.log(1.0 + (n_docs - dff + 0.5) / (dff + 0.5)).astype(np.float32)
        avgdl = float(lengths[order].mean()) if len(ids) else 1.0
        return BM25Index(ids=ids, vocab=vocab, tf=tf, lengths=lengths, df=df, order=order, segments=segments,
                         idf=idf, avgdl=avgdl, k1=self.k1, b=self.b)

    def _compacted(self) -> "BM25Index":
        """The same index without the rows and terms no live document has any more."""
        alive = np.zeros(self.tf.shape[0], dtype=bool)
        alive[self.order] = True
        new_row = np.cumsum(alive) - 1  # storage order kept: every column stays sorted
        used = np.flatnonzero(self.df > 0)
        new_col = np.full(len(self.df), -1, dtype=np.int64)
        new_col[used] = np.arange(len(used))
        coo = self.tf.tocoo()
        keep = alive[coo.row]
        tf = sparse.csc_matrix((coo.data[keep], (new_row[coo.row[keep]], new_col[coo.col[keep]])),
                               shape=(int(alive.sum()), len(used)), dtype=np.float32)
        vocab = {t: int(new_col[c]) for t, c in self.vocab.items() if new_col[c] >= 0}
        segments = {}
        for d, s in self.segments.items():
            segments[d] = _Segment(int(new_row[s.start]) if s.stop > s.start else 0,
                                   int(new_row[s.start]) + (s.stop - s.start) if s.stop > s.start else 0,
                                   s.ids, new_col[s.cols], s.df)
        return self._with(vocab, tf, self.lengths[alive], self.df[used], segments)

    # --- reading ---------------------------------------------------------------------------------
    def _weights(self, tf: sparse.csc_matrix, cols: np.ndarray) -> sparse.csc_matrix:
        """BM25 weights (idf × saturated tf) of a column slice of the stored frequencies."""
        k1, b = self.k1, self.b
        col = np.repeat(np.asarray(cols, dtype=np.int64), np.diff(tf.indptr))
        row = tf.indices
        freq = tf.data
        norm = k1 * (1 - b + b * self.lengths[row] / max(self.avgdl, 1e-9))
        w = self.idf[col] * freq * (k1 + 1) / (freq + norm)
        return sparse.csc_matrix((w.astype(np.float32, copy=False), row, tf.indptr), shape=tf.shape)

    def __len__(self) -> int:
        return len(self.ids)

    def scores(self, query_tokens: list[str]) -> np.ndarray:
        """Each row's score, in reading order."""
        cols = [c for c in (self.vocab.get(t) for t in query_tokens) if c is not None and self.df[c] > 0]
        if not cols or not self.ids:
            return np.zeros(len(self.ids), dtype=np.float32)
        counts = Counter(cols)
        idx = np.fromiter(counts.keys(), dtype=np.int64)
        mult = np.fromiter(counts.values(), dtype=np.float32)
        by_storage = np.asarray(self._weights(self.tf[:, idx], idx) @ mult).ravel()
        return by_storage[self.order]

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
        i = self.vocab.get(term)
        return i is not None and bool(self.df[i] > 0)

    def term_idf(self, term: str) -> float | None:
        i = self.vocab.get(term)
        return float(self.idf[i]) if i is not None and self.df[i] > 0 else None

    # --- a file, so a process starts without rebuilding ---------------------------------------
    def save(self, path: Path, stamp: dict[str, str | int]) -> None:
        """Write the index to ``path`` (numpy arrays only, replaced atomically) with ``stamp``:
        what it was built from, for ``load`` to check."""
        names = sorted(self.segments)
        segs = [self.segments[d] for d in names]
        terms = [""] * len(self.vocab)
        for term, i in self.vocab.items():
            terms[i] = term
        arrays = {
            "stamp": np.array(json.dumps({**stamp, "format": FILE_FORMAT, "k1": self.k1, "b": self.b})),
            "terms": np.array(terms, dtype=str), "shape": np.array(self.tf.shape, dtype=np.int64),
            "data": self.tf.data, "indices": self.tf.indices, "indptr": self.tf.indptr,
            "lengths": self.lengths, "df": self.df,
            "docs": np.array(names, dtype=str),
            "bounds": np.array([(s.start, s.stop, len(s.cols)) for s in segs], dtype=np.int64).reshape(-1, 3),
            "ids": np.array([i for s in segs for i in s.ids], dtype=str),
            "cols": np.concatenate([s.cols for s in segs]) if segs else _EMPTY,
            "seg_df": np.concatenate([s.df for s in segs]) if segs else _EMPTY,
        }
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with tmp.open("wb") as f:
                np.savez(f, **arrays)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    @classmethod
    def load(cls, path: Path) -> tuple["BM25Index", dict] | None:
        """The index saved at ``path`` and its stamp; None when there is none or it cannot be read
        (it is only ever a shortcut: the caller then builds from the catalog)."""
        try:
            with np.load(path, allow_pickle=False) as f:
                stamp = json.loads(str(f["stamp"]))
                if stamp.get("format") != FILE_FORMAT:
                    return None
                terms = f["terms"].tolist()
                tf = sparse.csc_matrix((f["data"], f["indices"], f["indptr"]), shape=tuple(f["shape"].tolist()))
                lengths, df, docs, bounds = f["lengths"], f["df"], f["docs"].tolist(), f["bounds"]
                ids, cols, seg_df = f["ids"].tolist(), f["cols"], f["seg_df"]
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile):
            return None
        segments, at_id, at_col = {}, 0, 0
        for doc, (start, stop, n_cols) in zip(docs, bounds.tolist()):
            segments[doc] = _Segment(start, stop, tuple(ids[at_id : at_id + stop - start]),
                                     cols[at_col : at_col + n_cols], seg_df[at_col : at_col + n_cols])
            at_id, at_col = at_id + stop - start, at_col + n_cols
        vocab = {t: i for i, t in enumerate(terms)}
        if len(vocab) != tf.shape[1] or len(df) != tf.shape[1] or len(lengths) != tf.shape[0] or at_id != len(ids):
            return None
        base = cls(ids=[], vocab=vocab, tf=tf, lengths=lengths, df=df, order=_EMPTY, segments=segments,
                   idf=np.zeros(0, dtype=np.float32), avgdl=1.0, k1=float(stamp["k1"]), b=float(stamp["b"]))
        return base._with(vocab, tf, lengths, df, segments), stamp
