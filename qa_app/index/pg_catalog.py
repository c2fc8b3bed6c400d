"""The catalog in PostgreSQL: one index served by API processes on any number of machines.

Same content and meaning as the SQLite catalog (``catalog.py``; the contract is
``catalog_api.IndexCatalog``): documents, chunks with token lists, the embedding cache, flags,
and the change log whose versions tell each process which documents to reload. With Chroma in
server mode, nothing an answer needs stays on one machine: a document uploaded through one
process is answered by every other once its next version check (``index_refresh_s``) sees it.

Two connections per process: one for reads (autocommit: every statement sees what is
committed), and one for writes, whose transactions swap a document's chunks atomically and
bump the version; a thread inside a write reads through the write connection, so it sees its
own changes. Writes between processes are kept one at a time by ``pg_lock.PgWriterLock`` (an
advisory lock), as the file lock does for SQLite. Tables are prefixed ``qa_`` and live in the
connection's schema (``?options=-csearch_path=<schema>`` in the URL keeps indexes apart).
Identifier columns sort by code point (``COLLATE "C"``), as SQLite and Python do: the index
relies on the catalog's order of documents.

A server that is down, or a connection that broke, is a ``StorageError`` naming the server;
the next use connects again, so a restarted server is picked up without restarting the API.
"""
from __future__ import annotations

import functools
import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from qa_app.index.catalog import CHANGE_LOG_VERSIONS, document_from_row, unreadable_token_ids
from qa_app.index.catalog_api import catalog_url
from qa_app.index.crash import crash_point
from qa_app.index.errors import READ_ONLY, StorageError
from qa_app.index.pg_connection import PREFIX, connect, storage_error, where
from qa_app.index.pg_lock import PgWriterLock
from qa_app.models import Chunk, DocumentInfo

log = logging.getLogger(__name__)

_DOC_COLUMNS = "doc_id, title, date, year, kind, script, source_path, sha256, scope"
_CHUNK_COLUMNS = 'chunk_id, doc_id, ordinal, text, norm, section, start, "end", kind'
# Rows per statement for lists of ids (a parameter array, not a statement per id).
_BATCH = 5000

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {PREFIX}documents (
    doc_id TEXT COLLATE "C" PRIMARY KEY, title TEXT, date TEXT, year INTEGER, kind TEXT, script TEXT,
    source_path TEXT, sha256 TEXT, n_chunks INTEGER, ingested_at TEXT, scope TEXT);
CREATE TABLE IF NOT EXISTS {PREFIX}chunks (
    chunk_id TEXT COLLATE "C" PRIMARY KEY, doc_id TEXT COLLATE "C" NOT NULL, ordinal INTEGER, text TEXT,
    norm TEXT, section TEXT, start INTEGER, "end" INTEGER, kind TEXT, tokens TEXT);
CREATE INDEX IF NOT EXISTS {PREFIX}chunks_doc ON {PREFIX}chunks(doc_id, ordinal);
CREATE INDEX IF NOT EXISTS {PREFIX}documents_sha ON {PREFIX}documents(sha256);
CREATE TABLE IF NOT EXISTS {PREFIX}embedding_cache (
    model TEXT, text_hash TEXT, vector BYTEA, PRIMARY KEY(model, text_hash));
CREATE TABLE IF NOT EXISTS {PREFIX}meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS {PREFIX}changes (version BIGINT NOT NULL, doc_id TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS {PREFIX}changes_version ON {PREFIX}changes(version);
"""
# Held while the tables are created: two processes starting at once would otherwise race on
# CREATE TABLE IF NOT EXISTS (PostgreSQL's check and create are not one step).
_SCHEMA_LOCK = 0x51415343


def _guarded(method):
    """Failures about the server become StorageErrors naming it; statement errors stay what they are.

    A connection the server ended (a restart, an idle session cut, a failover) is made again and
    the call tried once more: its transaction, if any, never committed, and every call here may be
    repeated (a replace or a cache write gives the same rows again). Not inside a write's own
    transaction, which its outermost call repeats whole."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        retry = not getattr(self._in_write, "active", False)
        while True:
            try:
                return method(self, *args, **kwargs)
            except StorageError:
                raise
            except Exception as exc:
                err = storage_error(exc, self._url)
                if err is None:
                    raise
                if self._drop_broken() and retry:
                    retry = False
                    log.info("the PostgreSQL session of %s ended (%s); connecting again", self.name, exc)
                    continue
                raise err from exc

    return wrapper


class PgCatalog:
    remote = True  # each version check is a round trip: Index asks at most every index_refresh_s

    def __init__(self, url: str, *, read_only: bool = False):
        self._url = url
        self.name = where(url)
        self.path = None  # no file: the doctor's file checks do not apply
        self.writable = not read_only
        self._lock = threading.RLock()  # one write transaction at a time in this process
        self._in_write = threading.local()
        self._connecting = threading.Lock()
        self._read_conn = None
        self._write_conn = None
        try:
            self._setup()
        except StorageError:
            self.close()
            raise
        except Exception as exc:
            self.close()
            err = storage_error(exc, url)
            if err is None:
                raise
            raise err from exc

    # --- how it is found, opened and locked ---------------------------------------------------------
    @classmethod
    def open(cls, settings, data_dir: Path, *, read_only: bool,
             has_vectors: Callable[[], bool] | None = None) -> "PgCatalog":
        # has_vectors is not asked: a database without the tables is a new catalog (a server's
        # storage is the server's to guard), and the doctor then finds the vectors as orphans.
        return cls(catalog_url(settings), read_only=read_only)

    @classmethod
    def local_files(cls, settings, data_dir: Path) -> list[Path]:
        return []

    @classmethod
    def writer_lock(cls, settings, data_dir: Path) -> PgWriterLock:
        return PgWriterLock(catalog_url(settings))

    @classmethod
    def exists(cls, settings, data_dir: Path) -> bool:
        """Whether the catalog's tables exist; True when the server cannot say (opening the index
        then reports why)."""
        url = catalog_url(settings)
        try:
            conn = connect(url, "qa-app probe")
        except StorageError:
            return True
        try:
            return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{PREFIX}documents",)).fetchone()[0]
        finally:
            conn.close()

    @classmethod
    def location(cls, settings, data_dir: Path) -> str:
        return where(catalog_url(settings))

    def where(self) -> str:
        return self.name

    # --- connections ----------------------------------------------------------------------------------
    def _setup(self) -> None:
        conn = self._reader()
        with self._lock:
            writer = self._writer() if self.writable else conn
            present = writer.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{PREFIX}meta",)).fetchone()[0]
            if not present or self.writable:
                with writer.transaction():
                    writer.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                    writer.execute(_SCHEMA)
                    # Names this catalog among all others: a saved BM25 view is told by this and a version.
                    writer.execute(f"INSERT INTO {PREFIX}meta VALUES ('catalog_id', %s) ON CONFLICT (key) DO NOTHING",
                                   (uuid.uuid4().hex,))

    def _reader(self):
        conn = self._read_conn
        if conn is None or conn.closed:
            with self._connecting:  # the API's threads share one reader: made once, not once per thread
                conn = self._read_conn
                if conn is None or conn.closed:
                    conn = self._read_conn = connect(self._url, "qa-app")
        return conn

    def _writer(self):
        conn = self._write_conn
        if conn is None or conn.closed:
            conn = self._write_conn = connect(self._url, "qa-app write")
        return conn

    def _conn(self):
        """The connection a read uses: the write's own inside a write in this thread, else the reader."""
        return self._write_conn if getattr(self._in_write, "active", False) else self._reader()

    def _rows(self, sql: str, params: Any = None) -> list[tuple]:
        return self._conn().execute(sql, params).fetchall()

    def _drop_broken(self) -> bool:
        """Forget connections the server ended (the next use connects again); whether there were any."""
        dropped = False
        for name in ("_read_conn", "_write_conn"):
            conn = getattr(self, name)
            if conn is not None and (conn.broken or conn.closed):
                setattr(self, name, None)
                dropped = True
        return dropped

    def _require_writable(self) -> None:
        if not self.writable:
            raise StorageError(
                f"索引以只读方式打开（数据目录只读），不写入 PostgreSQL 索引目录 {self.name}。"
                f"(The index is open read-only, its data folder being read-only: nothing is written to the "
                f"PostgreSQL catalog {self.name}.)", kind=READ_ONLY, path=None)

    # --- documents ------------------------------------------------------------------------------------
    def documents(self) -> list[DocumentInfo]:
        rows = self._rows(f"SELECT {_DOC_COLUMNS} FROM {PREFIX}documents ORDER BY doc_id")
        return [document_from_row(r) for r in rows]

    def sources(self) -> dict[str, str]:
        return {d: src for d, src in self._rows(f"SELECT doc_id, source_path FROM {PREFIX}documents") if src}

    def unscoped_documents(self) -> set[str]:
        return {r[0] for r in self._rows(f"SELECT doc_id FROM {PREFIX}documents WHERE scope IS NULL")}

    def document_sha(self, doc_id: str) -> str | None:
        rows = self._rows(f"SELECT sha256 FROM {PREFIX}documents WHERE doc_id=%s", (doc_id,))
        return rows[0][0] if rows else None

    def documents_with_sha(self, sha256: str) -> list[DocumentInfo]:
        rows = self._rows(f"SELECT {_DOC_COLUMNS} FROM {PREFIX}documents WHERE sha256=%s ORDER BY doc_id", (sha256,))
        return [document_from_row(r) for r in rows]

    def document_info(self, doc_id: str) -> DocumentInfo | None:
        rows = self._rows(f"SELECT {_DOC_COLUMNS} FROM {PREFIX}documents WHERE doc_id=%s", (doc_id,))
        return document_from_row(rows[0]) if rows else None

    def chunk_ids(self, doc_id: str | None = None) -> list[str]:
        if doc_id is None:
            return [r[0] for r in self._rows(f"SELECT chunk_id FROM {PREFIX}chunks")]
        return [r[0] for r in self._rows(f"SELECT chunk_id FROM {PREFIX}chunks WHERE doc_id=%s", (doc_id,))]

    def replace_document(self, doc: DocumentInfo, chunks: list[Chunk], tokens: list[list[str]], when: str) -> None:
        self.replace_documents([(doc, chunks, tokens)], when)

    def replace_documents(self, docs: list[tuple[DocumentInfo, list[Chunk], list[list[str]]]], when: str) -> None:
        with self._transaction() as (cur, touched):
            for doc, chunks, tokens in docs:
                touched.add(doc.doc_id)
                cur.execute(f"DELETE FROM {PREFIX}chunks WHERE doc_id=%s", (doc.doc_id,))
                cur.execute(
                    f"INSERT INTO {PREFIX}documents (doc_id, title, date, year, kind, script, source_path, sha256, "
                    "n_chunks, ingested_at, scope) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (doc_id) DO "
                    "UPDATE SET title=EXCLUDED.title, date=EXCLUDED.date, year=EXCLUDED.year, kind=EXCLUDED.kind, "
                    "script=EXCLUDED.script, source_path=EXCLUDED.source_path, sha256=EXCLUDED.sha256, "
                    "n_chunks=EXCLUDED.n_chunks, ingested_at=EXCLUDED.ingested_at, scope=EXCLUDED.scope",
                    (doc.doc_id, doc.title, doc.date, doc.year, doc.kind, doc.script, doc.source_path, doc.sha256,
                     len(chunks), when, json.dumps(doc.scope.to_dict(), ensure_ascii=False)),
                )
                cur.executemany(
                    f"INSERT INTO {PREFIX}chunks VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                    [(c.chunk_id, c.doc_id, c.ordinal, c.text, c.norm, c.section, c.start, c.end, c.kind,
                      json.dumps(t, ensure_ascii=False)) for c, t in zip(chunks, tokens)],
                )
            crash_point("catalog")

    def set_source_path(self, doc_id: str, source_path: str) -> None:
        with self._transaction() as (cur, touched):
            touched.add(doc_id)
            cur.execute(f"UPDATE {PREFIX}documents SET source_path=%s WHERE doc_id=%s", (source_path, doc_id))

    def delete_document(self, doc_id: str) -> list[str]:
        with self._transaction() as (cur, touched):
            touched.add(doc_id)
            cur.execute(f"DELETE FROM {PREFIX}chunks WHERE doc_id=%s RETURNING chunk_id", (doc_id,))
            ids = [r[0] for r in cur.fetchall()]
            cur.execute(f"DELETE FROM {PREFIX}documents WHERE doc_id=%s", (doc_id,))
        return ids

    # --- chunks ---------------------------------------------------------------------------------------
    def all_chunks(self, tokens: bool = True) -> tuple[list[Chunk], list[list[str]]]:
        rows = self._rows(f"SELECT {_CHUNK_COLUMNS}{', tokens' if tokens else ''} FROM {PREFIX}chunks "
                          "ORDER BY doc_id, ordinal")
        return [Chunk(*r[:9]) for r in rows], [json.loads(r[9]) for r in rows] if tokens else []

    def document_chunks(self, doc_ids: Iterable[str]) -> tuple[list[Chunk], list[list[str]]]:
        doc_ids = sorted(set(doc_ids))
        rows = []
        for i in range(0, len(doc_ids), _BATCH):
            rows += self._rows(f"SELECT {_CHUNK_COLUMNS}, tokens FROM {PREFIX}chunks WHERE doc_id = ANY(%s) "
                               "ORDER BY doc_id, ordinal", (doc_ids[i : i + _BATCH],))
        return [Chunk(*r[:9]) for r in rows], [json.loads(r[9]) for r in rows]

    def chunks(self, chunk_ids: Iterable[str]) -> list[Chunk]:
        wanted = sorted(set(chunk_ids))
        rows = []
        for i in range(0, len(wanted), _BATCH):
            rows += self._rows(f"SELECT {_CHUNK_COLUMNS} FROM {PREFIX}chunks WHERE chunk_id = ANY(%s)",
                               (wanted[i : i + _BATCH],))
        return [Chunk(*r) for r in sorted(rows, key=lambda r: (r[1], r[2]))]

    def count_chunks(self) -> int:
        return self._rows(f"SELECT COUNT(*) FROM {PREFIX}chunks")[0][0]

    def chunk_counts(self) -> dict[str, int]:
        return dict(self._rows(f"SELECT doc_id, COUNT(*) FROM {PREFIX}chunks GROUP BY doc_id"))

    def unreadable_tokens(self) -> list[str]:
        return unreadable_token_ids(self._rows(f"SELECT chunk_id, tokens FROM {PREFIX}chunks"))

    def set_tokens(self, tokens_by_id: dict[str, list[str]]) -> None:
        with self._transaction() as (cur, touched):
            ids = list(tokens_by_id)
            for i in range(0, len(ids), _BATCH):
                cur.execute(f"SELECT DISTINCT doc_id FROM {PREFIX}chunks WHERE chunk_id = ANY(%s)", (ids[i : i + _BATCH],))
                touched.update(r[0] for r in cur.fetchall())
            cur.executemany(f"UPDATE {PREFIX}chunks SET tokens=%s WHERE chunk_id=%s",
                            [(json.dumps(t, ensure_ascii=False), cid) for cid, t in tokens_by_id.items()])

    def chunk_count_mismatches(self) -> dict[str, tuple[int, int]]:
        rows = self._rows(
            f"SELECT d.doc_id, d.n_chunks, COUNT(c.chunk_id) FROM {PREFIX}documents d "
            f"LEFT JOIN {PREFIX}chunks c ON c.doc_id = d.doc_id GROUP BY d.doc_id, d.n_chunks "
            "HAVING d.n_chunks IS DISTINCT FROM COUNT(c.chunk_id)")
        return {doc_id: (recorded, present) for doc_id, recorded, present in rows}

    def integrity_problem(self) -> str | None:
        """None: the server guards its own pages (WAL, checksums, its backups); a table dropped by
        hand shows as a StorageError at its first use, which opening the catalog again mends."""
        self._rows("SELECT 1")  # a server that is down is still a StorageError here
        return None

    # --- small state flags (not versioned) -------------------------------------------------------------
    def get_flag(self, key: str) -> str | None:
        rows = self._rows(f"SELECT value FROM {PREFIX}meta WHERE key=%s", (key,))
        return rows[0][0] if rows else None

    def set_flag(self, key: str, value: str | None) -> None:
        self._require_writable()
        with self._lock:
            conn = self._writer()
            if value is None:
                conn.execute(f"DELETE FROM {PREFIX}meta WHERE key=%s", (key,))
            else:
                conn.execute(f"INSERT INTO {PREFIX}meta VALUES (%s, %s) ON CONFLICT (key) DO UPDATE "
                             "SET value=EXCLUDED.value", (key, value))

    @contextmanager
    def _transaction(self) -> Iterator[tuple[Any, set[str]]]:
        """One atomic change of the indexed content, then a new version with the changed documents
        logged under it (as ``Catalog._transaction``)."""
        self._require_writable()
        with self._lock:
            conn = self._writer()
            self._in_write.active = True
            try:
                with conn.transaction(), conn.cursor() as cur:
                    touched: set[str] = set()
                    yield cur, touched
                    cur.execute(
                        f"INSERT INTO {PREFIX}meta VALUES ('version', '1') ON CONFLICT (key) DO UPDATE "
                        f"SET value = ({PREFIX}meta.value::bigint + 1)::text RETURNING value::bigint")
                    version = cur.fetchone()[0]
                    cur.executemany(f"INSERT INTO {PREFIX}changes VALUES (%s, %s)", [(version, d) for d in sorted(touched)])
                    cur.execute(f"DELETE FROM {PREFIX}changes WHERE version <= %s", (version - CHANGE_LOG_VERSIONS,))
            finally:
                self._in_write.active = False

    # --- versioning -------------------------------------------------------------------------------------
    def version(self) -> int:
        rows = self._rows(f"SELECT value FROM {PREFIX}meta WHERE key='version'")
        return int(rows[0][0]) if rows else 0

    def identity(self) -> str | None:
        return self.get_flag("catalog_id")

    def changed_between(self, old: int, new: int) -> set[str] | None:
        if new < old or new - old > CHANGE_LOG_VERSIONS:
            return None
        rows = self._rows(f"SELECT version, doc_id FROM {PREFIX}changes WHERE version > %s AND version <= %s", (old, new))
        # Every transaction logs under its version, so a version missing means an unlogged change.
        if {v for v, _ in rows} != set(range(old + 1, new + 1)):
            return None
        return {d for _, d in rows}

    def start_version_at(self, version: int) -> None:
        self.set_flag("version", str(int(version)))

    # --- embedding cache ------------------------------------------------------------------------------
    def cached_vectors(self, model: str, hashes: Iterable[str]) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {}
        hashes = list(hashes)
        for i in range(0, len(hashes), _BATCH):
            for h, blob in self._rows(f"SELECT text_hash, vector FROM {PREFIX}embedding_cache "
                                      "WHERE model=%s AND text_hash = ANY(%s)", (model, hashes[i : i + _BATCH])):
                out[h] = np.frombuffer(bytes(blob), dtype=np.float32).tolist()
        return out

    def cache_vectors(self, model: str, items: dict[str, list[float]]) -> None:
        self.cache_blobs([(model, h, np.asarray(v, dtype=np.float32).tobytes()) for h, v in items.items()])

    def cache_blobs(self, rows: list[tuple[str, str, bytes]]) -> None:
        """Rows in key order: processes embedding at once (outside the writer lock) then take the
        rows' locks in one order and never deadlock on each other's."""
        self._require_writable()
        with self._lock:
            conn = self._writer()
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(
                    f"INSERT INTO {PREFIX}embedding_cache VALUES (%s, %s, %s) ON CONFLICT (model, text_hash) "
                    "DO UPDATE SET vector=EXCLUDED.vector", sorted(rows, key=lambda r: (r[0], r[1])))

    def count_cached(self) -> int:
        return self._rows(f"SELECT COUNT(*) FROM {PREFIX}embedding_cache")[0][0]

    def close(self) -> None:
        for name in ("_read_conn", "_write_conn"):
            conn = getattr(self, name, None)
            if conn is not None:
                try:
                    conn.close()
                except Exception:  # noqa: BLE001 - a broken connection closes as well as it can
                    pass
                setattr(self, name, None)


for _name, _member in list(vars(PgCatalog).items()):
    if not _name.startswith("_") and callable(_member) and _name not in ("close", "where"):
        setattr(PgCatalog, _name, _guarded(_member))
