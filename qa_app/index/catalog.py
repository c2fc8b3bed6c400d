"""The catalog: SQLite record of documents, chunks, their tokens, and cached embeddings.

It is the source of truth for what is indexed. Chroma holds the vectors of exactly the
chunk ids listed here; BM25 is rebuilt from the token lists stored here.
"""
from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Iterable

import numpy as np

from qa_app.models import Chunk, DocumentInfo

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY, title TEXT, date TEXT, year INTEGER, kind TEXT, script TEXT,
    source_path TEXT, sha256 TEXT, n_chunks INTEGER, ingested_at TEXT);
CREATE TABLE IF NOT EXISTS chunks (
    chunk_id TEXT PRIMARY KEY, doc_id TEXT, ordinal INTEGER, text TEXT, norm TEXT, section TEXT,
    start INTEGER, "end" INTEGER, kind TEXT, tokens TEXT);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id, ordinal);
CREATE TABLE IF NOT EXISTS embedding_cache (model TEXT, text_hash TEXT, vector BLOB, PRIMARY KEY(model, text_hash));
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""


class Catalog:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.RLock()
        self.db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(_SCHEMA)

    # --- documents -------------------------------------------------------------------
    def documents(self) -> list[DocumentInfo]:
        rows = self.db.execute(
            "SELECT doc_id, title, date, year, kind, script, source_path, sha256 FROM documents ORDER BY doc_id"
        ).fetchall()
        return [DocumentInfo(*r) for r in rows]

    def document_sha(self, doc_id: str) -> str | None:
        row = self.db.execute("SELECT sha256 FROM documents WHERE doc_id=?", (doc_id,)).fetchone()
        return row[0] if row else None

    def chunk_ids(self, doc_id: str | None = None) -> list[str]:
        if doc_id is None:
            return [r[0] for r in self.db.execute("SELECT chunk_id FROM chunks")]
        return [r[0] for r in self.db.execute("SELECT chunk_id FROM chunks WHERE doc_id=?", (doc_id,))]

    def replace_document(self, doc: DocumentInfo, chunks: list[Chunk], tokens: list[list[str]], when: str) -> None:
        """Swap a document's chunks in one transaction: readers see old or new, never half."""
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.execute("DELETE FROM chunks WHERE doc_id=?", (doc.doc_id,))
                self.db.execute(
                    "INSERT OR REPLACE INTO documents VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (doc.doc_id, doc.title, doc.date, doc.year, doc.kind, doc.script,
                     doc.source_path, doc.sha256, len(chunks), when),
                )
                self.db.executemany(
                    'INSERT INTO chunks VALUES (?,?,?,?,?,?,?,?,?,?)',
                    [(c.chunk_id, c.doc_id, c.ordinal, c.text, c.norm, c.section, c.start, c.end, c.kind,
                      json.dumps(t, ensure_ascii=False)) for c, t in zip(chunks, tokens)],
                )
                self._bump_version()
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def delete_document(self, doc_id: str) -> list[str]:
        with self._lock:
            ids = self.chunk_ids(doc_id)
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.execute("DELETE FROM chunks WHERE doc_id=?", (doc_id,))
                self.db.execute("DELETE FROM documents WHERE doc_id=?", (doc_id,))
                self._bump_version()
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            return ids

    # --- chunks ------------------------------------------------------------------------
    def all_chunks(self) -> tuple[list[Chunk], list[list[str]]]:
        rows = self.db.execute(
            'SELECT chunk_id, doc_id, ordinal, text, norm, section, start, "end", kind, tokens '
            "FROM chunks ORDER BY doc_id, ordinal"
        ).fetchall()
        chunks = [Chunk(*r[:9]) for r in rows]
        return chunks, [json.loads(r[9]) for r in rows]

    def count_chunks(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]

    # --- versioning: lets readers notice that the index changed ---------------------------
    def version(self) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key='version'").fetchone()
        return int(row[0]) if row else 0

    def _bump_version(self) -> None:
        self.db.execute(
            "INSERT INTO meta VALUES ('version', '1') ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1"
        )

    # --- embedding cache, keyed by model and text hash ---------------------------------------
    def cached_vectors(self, model: str, hashes: Iterable[str]) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {}
        hashes = list(hashes)
        for i in range(0, len(hashes), 500):
            part = hashes[i : i + 500]
            marks = ",".join("?" * len(part))
            for h, blob in self.db.execute(
                f"SELECT text_hash, vector FROM embedding_cache WHERE model=? AND text_hash IN ({marks})",
                (model, *part),
            ):
                out[h] = np.frombuffer(blob, dtype=np.float32).tolist()
        return out

    def cache_vectors(self, model: str, items: dict[str, list[float]]) -> None:
        with self._lock:
            self.db.executemany(
                "INSERT OR REPLACE INTO embedding_cache VALUES (?,?,?)",
                [(model, h, np.asarray(v, dtype=np.float32).tobytes()) for h, v in items.items()],
            )

    def close(self) -> None:
        self.db.close()
