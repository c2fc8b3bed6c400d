"""The catalog: SQLite record of documents, chunks, their tokens, and cached embeddings.

It is the source of truth for what is indexed. Chroma holds the vectors of exactly the
chunk ids listed here; BM25 is rebuilt from the token lists stored here.
"""
from __future__ import annotations

import json
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from qa_app.index.crash import crash_point
from qa_app.models import Chunk, DocumentInfo, Scope

_DOC_COLUMNS = "doc_id, title, date, year, kind, script, source_path, sha256, scope"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY, title TEXT, date TEXT, year INTEGER, kind TEXT, script TEXT,
    source_path TEXT, sha256 TEXT, n_chunks INTEGER, ingested_at TEXT, scope TEXT);
CREATE TABLE IF NOT EXISTS chunks (
    chunk_id TEXT PRIMARY KEY, doc_id TEXT, ordinal INTEGER, text TEXT, norm TEXT, section TEXT,
    start INTEGER, "end" INTEGER, kind TEXT, tokens TEXT);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id, ordinal);
CREATE INDEX IF NOT EXISTS documents_sha ON documents(sha256);
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
        columns = {r[1] for r in self.db.execute("PRAGMA table_info(documents)")}
        if "scope" not in columns:  # a catalog written before documents had a scope
            self.db.execute("ALTER TABLE documents ADD COLUMN scope TEXT")

    # --- documents -------------------------------------------------------------------
    @staticmethod
    def _doc(row) -> DocumentInfo:
        try:
            scope = Scope.from_dict(json.loads(row[8])) if row[8] else Scope()
        except (TypeError, ValueError, KeyError, IndexError):
            scope = Scope()  # unreadable scope: the document stays usable, unscoped
        return DocumentInfo(*row[:8], scope=scope)

    def documents(self) -> list[DocumentInfo]:
        rows = self.db.execute(f"SELECT {_DOC_COLUMNS} FROM documents ORDER BY doc_id").fetchall()
        return [self._doc(r) for r in rows]

    def unscoped_documents(self) -> set[str]:
        """Documents written before documents had a scope: the next ingest infers theirs."""
        return {r[0] for r in self.db.execute("SELECT doc_id FROM documents WHERE scope IS NULL")}

    def document_sha(self, doc_id: str) -> str | None:
        row = self.db.execute("SELECT sha256 FROM documents WHERE doc_id=?", (doc_id,)).fetchone()
        return row[0] if row else None

    def documents_with_sha(self, sha256: str) -> list[DocumentInfo]:
        """Documents indexed from exactly these bytes (to refuse indexing a copy twice)."""
        rows = self.db.execute(
            f"SELECT {_DOC_COLUMNS} FROM documents WHERE sha256=? ORDER BY doc_id", (sha256,)
        ).fetchall()
        return [self._doc(r) for r in rows]

    def document_info(self, doc_id: str) -> DocumentInfo | None:
        row = self.db.execute(f"SELECT {_DOC_COLUMNS} FROM documents WHERE doc_id=?", (doc_id,)).fetchone()
        return self._doc(row) if row else None

    def chunk_ids(self, doc_id: str | None = None) -> list[str]:
        if doc_id is None:
            return [r[0] for r in self.db.execute("SELECT chunk_id FROM chunks")]
        return [r[0] for r in self.db.execute("SELECT chunk_id FROM chunks WHERE doc_id=?", (doc_id,))]

    def replace_document(self, doc: DocumentInfo, chunks: list[Chunk], tokens: list[list[str]], when: str) -> None:
        """Swap a document's chunks in one transaction: readers see old or new, never half."""
        with self._transaction():
            self.db.execute("DELETE FROM chunks WHERE doc_id=?", (doc.doc_id,))
            self.db.execute(
                "INSERT OR REPLACE INTO documents (doc_id, title, date, year, kind, script, source_path, sha256, "
                "n_chunks, ingested_at, scope) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (doc.doc_id, doc.title, doc.date, doc.year, doc.kind, doc.script,
                 doc.source_path, doc.sha256, len(chunks), when, json.dumps(doc.scope.to_dict(), ensure_ascii=False)),
            )
            self.db.executemany(
                'INSERT INTO chunks VALUES (?,?,?,?,?,?,?,?,?,?)',
                [(c.chunk_id, c.doc_id, c.ordinal, c.text, c.norm, c.section, c.start, c.end, c.kind,
                  json.dumps(t, ensure_ascii=False)) for c, t in zip(chunks, tokens)],
            )
            crash_point("catalog")

    def set_source_path(self, doc_id: str, source_path: str) -> None:
        with self._transaction():
            self.db.execute("UPDATE documents SET source_path=? WHERE doc_id=?", (source_path, doc_id))

    def delete_document(self, doc_id: str) -> list[str]:
        with self._transaction():
            ids = self.chunk_ids(doc_id)
            self.db.execute("DELETE FROM chunks WHERE doc_id=?", (doc_id,))
            self.db.execute("DELETE FROM documents WHERE doc_id=?", (doc_id,))
        return ids

    # --- chunks ------------------------------------------------------------------------
    def all_chunks(self) -> tuple[list[Chunk], list[list[str]]]:
        rows = self.db.execute(
            'SELECT chunk_id, doc_id, ordinal, text, norm, section, start, "end", kind, tokens '
            "FROM chunks ORDER BY doc_id, ordinal"
        ).fetchall()
        chunks = [Chunk(*r[:9]) for r in rows]
        return chunks, [json.loads(r[9]) for r in rows]

    def chunks(self, chunk_ids: Iterable[str]) -> list[Chunk]:
        """The chunks with these ids (without their token lists, which may be what is broken)."""
        wanted = set(chunk_ids)
        rows = self.db.execute(
            'SELECT chunk_id, doc_id, ordinal, text, norm, section, start, "end", kind FROM chunks ORDER BY doc_id, ordinal'
        ).fetchall()
        return [Chunk(*r) for r in rows if r[0] in wanted]

    def count_chunks(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]

    def unreadable_tokens(self) -> list[str]:
        """Chunk ids whose stored token list does not parse (BM25 could not be rebuilt from them)."""
        bad = []
        for cid, raw in self.db.execute("SELECT chunk_id, tokens FROM chunks"):
            try:
                ok = isinstance(json.loads(raw), list)
            except (TypeError, ValueError):
                ok = False
            if not ok:
                bad.append(cid)
        return bad

    def set_tokens(self, tokens_by_id: dict[str, list[str]]) -> None:
        with self._transaction():
            self.db.executemany(
                "UPDATE chunks SET tokens=? WHERE chunk_id=?",
                [(json.dumps(t, ensure_ascii=False), cid) for cid, t in tokens_by_id.items()],
            )

    def chunk_count_mismatches(self) -> dict[str, tuple[int, int]]:
        """Documents whose recorded chunk count differs from the chunks present: {doc_id: (recorded, present)}."""
        rows = self.db.execute(
            "SELECT d.doc_id, d.n_chunks, COUNT(c.chunk_id) FROM documents d "
            "LEFT JOIN chunks c ON c.doc_id = d.doc_id GROUP BY d.doc_id HAVING d.n_chunks != COUNT(c.chunk_id)"
        ).fetchall()
        return {doc_id: (recorded, present) for doc_id, recorded, present in rows}

    def integrity_problem(self) -> str | None:
        """SQLite's own page-level check; None when the file is sound."""
        result = self.db.execute("PRAGMA quick_check").fetchone()[0]
        return None if result == "ok" else str(result)

    # --- small state flags (not versioned: they say nothing about the indexed content) -------
    def get_flag(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_flag(self, key: str, value: str | None) -> None:
        with self._lock:
            if value is None:
                self.db.execute("DELETE FROM meta WHERE key=?", (key,))
            else:
                self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One atomic change of the indexed content: all of it or none of it, then a new version."""
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._bump_version()
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

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
        rows = [(model, h, np.asarray(v, dtype=np.float32).tobytes()) for h, v in items.items()]
        # One commit per batch, not per row (autocommit made 2,000 rows take 13 s instead of 0.6 s);
        # the cache is not indexed content, so the catalog version stays as it is.
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.executemany("INSERT OR REPLACE INTO embedding_cache VALUES (?,?,?)", rows)
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        self.db.close()
