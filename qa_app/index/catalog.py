"""The catalog in SQLite (the default, one file in the data folder): documents, chunks, their
tokens, and cached embeddings; ``catalog_api.IndexCatalog`` is the contract it follows.

It is the source of truth for what is indexed. Chroma holds the vectors of exactly the
chunk ids listed here; BM25 is rebuilt from the token lists stored here.

Opening checks the file before trusting it: SQLite's header, the page count it records
against the file's size, the schema, and (for files up to ``QUICK_CHECK_MAX_BYTES``)
SQLite's own page check. A damaged file is a ``StorageError`` naming it, never a catalog
silently taken for empty. Every SQLite failure about the file (damage, a read-only folder, a
full disk) leaves the catalog as a ``StorageError``; constraint and statement errors stay
what they are, since they are bugs.

In a folder it may not write to, the catalog opens read-only: queries work, writes raise
a ``StorageError`` before touching anything.
"""
from __future__ import annotations

import functools
import json
import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from qa_app.data_folder import CATALOG_FILE
from qa_app.index.crash import crash_point
from qa_app.index.errors import (
    UNAVAILABLE,
    StorageError,
    catalog_damaged,
    from_os_error,
    from_sqlite_error,
    read_only,
)
from qa_app.index.lock import WriterLock
from qa_app.models import Chunk, DocumentInfo, Scope

WRITER_LOCK_FILE = "writer.lock"

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
CREATE TABLE IF NOT EXISTS changes (version INTEGER, doc_id TEXT);
CREATE INDEX IF NOT EXISTS changes_version ON changes(version);
"""

SQLITE_MAGIC = b"SQLite format 3\x00"
# SQLite's page check reads every page: about 0.1 s per 100 MB from the page cache. Up to this
# size it runs at every open, so damage is named before the first query; a larger catalog is
# checked by `qa-app doctor`, and damage met while reading is still a StorageError.
QUICK_CHECK_MAX_BYTES = 256 << 20
# How many versions of the change log are kept: a reader further behind than that reloads all.
CHANGE_LOG_VERSIONS = 10_000


def sidecars(path: Path) -> list[Path]:
    """SQLite's companion files of a database: WAL, shared memory, rollback journal."""
    return [path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal")]


def _nonempty(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except OSError:
        return False


def can_write(path: Path) -> bool:
    """Whether this process may change ``path``, or create it (and a folder's files) when it does not exist yet."""
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            return False
        probe = probe.parent
    return os.access(probe, os.W_OK | (os.X_OK if probe.is_dir() else 0))


def header_problem(path: Path) -> tuple[str, str] | None:
    """What is wrong with an SQLite file that SQLite itself might not say at once: (English, Chinese)."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(100)
    except FileNotFoundError:
        return None
    if size == 0:
        return None  # SQLite's empty database: the schema check decides whether content was lost
    if len(head) < 100 or not head.startswith(SQLITE_MAGIC):
        return ("it is not an SQLite database (its first bytes are not SQLite's header)",
                "不是有效的 SQLite 数据库（文件头不对）")
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        return (f"its header is damaged (page size {page_size})", f"文件头损坏（页大小 {page_size}）")
    pages = int.from_bytes(head[28:32], "big")
    # The recorded page count is trustworthy only when its "valid-for" counter matches, and the
    # file may legitimately be shorter only while a WAL or a hot journal still holds pages.
    recorded = pages and head[24:28] == head[92:96] and not any(_nonempty(s) for s in sidecars(path)[::2])
    if recorded and size < pages * page_size:
        return (f"it is cut short: {size} bytes of the {pages * page_size} its header records",
                    f"被截断（{size} 字节，文件头记录为 {pages * page_size} 字节）")
    return None


def open_sqlite_readonly(path: Path, timeout: float = 5.0) -> sqlite3.Connection:
    """Open an SQLite file for reading only, never changing it.

    With no WAL beside it (no ``-wal`` file, or an empty one), no connection has the database
    open in WAL mode (SQLite keeps that file while one does), so the file is opened
    ``immutable``: read as it is, without locks and without creating anything beside it,
    which ``mode=ro`` would (the WAL's shared-memory file) and cannot in a read-only folder.
    With a WAL, ``mode=ro`` reads it too: its transactions are part of the database.
    """
    uri = path.resolve().as_uri()
    if not _nonempty(sidecars(path)[0]):
        return sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, check_same_thread=False, isolation_level=None)
    return sqlite3.connect(f"{uri}?mode=ro", uri=True, check_same_thread=False, isolation_level=None, timeout=timeout)


def document_from_row(row) -> DocumentInfo:
    """A document from its row (``_DOC_COLUMNS`` in order; the scope as JSON)."""
    try:
        scope = Scope.from_dict(json.loads(row[8])) if row[8] else Scope()
    except (TypeError, ValueError, KeyError, IndexError):
        scope = Scope()  # unreadable scope: the document stays usable, unscoped
    return DocumentInfo(*row[:8], scope=scope)


def unreadable_token_ids(rows: Iterable[tuple[str, str]]) -> list[str]:
    """The chunk ids of (chunk id, stored token list) rows whose list does not parse."""
    bad = []
    for cid, raw in rows:
        try:
            ok = isinstance(json.loads(raw), list)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            bad.append(cid)
    return bad


def _guarded(method):
    """SQLite failures about the file become StorageErrors naming it; the rest stay as they are."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            err = from_sqlite_error(exc, self.path, self.path.parent)
            if err is None:
                raise
            raise err from exc

    return wrapper


class Catalog:
    """``read_only``: None decides by whether the folder and file may be written.

    ``has_vectors`` (optional) tells whether the vector store holds vectors: a catalog file
    without tables is then a catalog whose content was lost, not a new, empty index.
    """

    remote = False  # a local file: asking its version costs microseconds, so it is asked every time

    @classmethod
    def open(cls, settings, data_dir: Path, *, read_only: bool,
             has_vectors: Callable[[], bool] | None = None) -> "Catalog":
        return cls(data_dir / CATALOG_FILE, read_only=read_only, has_vectors=has_vectors)

    @classmethod
    def local_files(cls, settings, data_dir: Path) -> list[Path]:
        path = data_dir / CATALOG_FILE
        return [path, *sidecars(path)[:2], data_dir / WRITER_LOCK_FILE]

    @classmethod
    def writer_lock(cls, settings, data_dir: Path) -> WriterLock:
        # A file lock: it excludes writers on this machine, which are the only ones that reach the file.
        return WriterLock(data_dir / WRITER_LOCK_FILE)

    @classmethod
    def exists(cls, settings, data_dir: Path) -> bool:
        return (data_dir / CATALOG_FILE).is_file()

    @classmethod
    def location(cls, settings, data_dir: Path) -> str:
        return str(data_dir / CATALOG_FILE)

    def where(self) -> str:
        return str(self.path)

    def __init__(self, path: Path, *, read_only: bool | None = None, has_vectors: Callable[[], bool] | None = None):
        self.path = path
        self._lock = threading.RLock()
        self.writable = (can_write(path.parent) and can_write(path)) if read_only is None else not read_only
        self.in_memory = False
        self._doc_columns = _DOC_COLUMNS
        existed = path.is_file()
        self.db = self._connect()
        try:
            self._check(existed, has_vectors)
            if self.writable:
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.executescript(_SCHEMA)
                # Names this catalog among all others (a rebuilt one, a copy's successor): what a
                # saved view was built from is told by this and a version, never by a version alone.
                self.db.execute("INSERT OR IGNORE INTO meta VALUES ('catalog_id', ?)", (uuid.uuid4().hex,))
            columns = {r[1] for r in self.db.execute("PRAGMA table_info(documents)")}
            if "scope" not in columns:  # a catalog written before documents had a scope
                if self.writable:
                    self.db.execute("ALTER TABLE documents ADD COLUMN scope TEXT")
                else:
                    self._doc_columns = _DOC_COLUMNS.replace("scope", "NULL")
        except sqlite3.Error as exc:
            self.db.close()
            err = from_sqlite_error(exc, path, path.parent) or catalog_damaged(path, f"SQLite: {exc}")
            if not self.writable and _nonempty(sidecars(path)[0]) and "unable to open" in str(exc):
                wal = sidecars(path)[0]
                err = StorageError(
                    f"无法只读打开索引目录：{wal} 中有尚未合并的写入，而数据目录只读；让数据目录可写一次（任一 qa-app "
                    f"命令都会合并它们）。(The catalog cannot be read: {wal} holds writes not yet merged into "
                    f"{path.name}, which SQLite can only read with write access to {path.parent}; make the folder "
                    "writable once, and any qa-app command merges them.)",
                    kind=UNAVAILABLE, path=wal,
                )
            raise err from exc
        except BaseException:
            self.db.close()
            raise

    def _connect(self) -> sqlite3.Connection:
        path = self.path
        if self.writable:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise from_os_error(exc, path.parent, path.parent) from exc
        problem = header_problem(path)
        if problem is not None:
            raise catalog_damaged(path, *problem)
        try:
            if self.writable:
                return sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            if not path.exists():
                # Nothing was ever indexed here, and nothing may be: an empty index, read-only.
                self.in_memory = True
                db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
                db.executescript(_SCHEMA)
                return db
            return open_sqlite_readonly(path)
        except sqlite3.Error as exc:
            raise (from_sqlite_error(exc, path, path.parent) or catalog_damaged(path, f"SQLite: {exc}")) from exc

    def _check(self, existed: bool, has_vectors: Callable[[], bool] | None) -> None:
        path = self.path
        tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:
            if existed and has_vectors is not None and has_vectors():
                size = path.stat().st_size
                what = "an empty file (0 bytes)" if size == 0 else "a database without tables"
                raise catalog_damaged(
                    path, f"it is {what} while the vector store holds vectors: its content was lost",
                    f"是{'空文件（0 字节）' if size == 0 else '没有表的数据库'}，而向量库中仍有向量：内容已丢失",
                )
            return
        missing = {"documents", "chunks"} - tables
        if missing:
            raise catalog_damaged(path, f"tables are missing: {', '.join(sorted(missing))}",
                                  f"缺少表：{', '.join(sorted(missing))}")
        if not self.in_memory and path.stat().st_size <= QUICK_CHECK_MAX_BYTES:
            problem = self.integrity_problem()
            if problem is not None:
                raise catalog_damaged(path, f"SQLite's integrity check fails: {problem}",
                                      f"未通过 SQLite 完整性检查：{problem}")

    def _require_writable(self) -> None:
        if not self.writable:
            raise read_only(self.path.parent, f"{self.path.name} is open read-only")

    # --- documents -------------------------------------------------------------------
    _doc = staticmethod(document_from_row)

    def documents(self) -> list[DocumentInfo]:
        rows = self.db.execute(f"SELECT {self._doc_columns} FROM documents ORDER BY doc_id").fetchall()
        return [self._doc(r) for r in rows]

    def sources(self) -> dict[str, str]:
        """Each document's source file: {doc_id: source path}."""
        return {d: src for d, src in self.db.execute("SELECT doc_id, source_path FROM documents") if src}

    def unscoped_documents(self) -> set[str]:
        """Documents written before documents had a scope: the next ingest infers theirs."""
        return {r[0] for r in self.db.execute("SELECT doc_id FROM documents WHERE scope IS NULL")}

    def document_sha(self, doc_id: str) -> str | None:
        row = self.db.execute("SELECT sha256 FROM documents WHERE doc_id=?", (doc_id,)).fetchone()
        return row[0] if row else None

    def documents_with_sha(self, sha256: str) -> list[DocumentInfo]:
        """Documents indexed from exactly these bytes (to refuse indexing a copy twice)."""
        rows = self.db.execute(
            f"SELECT {self._doc_columns} FROM documents WHERE sha256=? ORDER BY doc_id", (sha256,)
        ).fetchall()
        return [self._doc(r) for r in rows]

    def document_info(self, doc_id: str) -> DocumentInfo | None:
        row = self.db.execute(f"SELECT {self._doc_columns} FROM documents WHERE doc_id=?", (doc_id,)).fetchone()
        return self._doc(row) if row else None

    def chunk_ids(self, doc_id: str | None = None) -> list[str]:
        if doc_id is None:
            return [r[0] for r in self.db.execute("SELECT chunk_id FROM chunks")]
        return [r[0] for r in self.db.execute("SELECT chunk_id FROM chunks WHERE doc_id=?", (doc_id,))]

    def replace_document(self, doc: DocumentInfo, chunks: list[Chunk], tokens: list[list[str]], when: str) -> None:
        """Swap a document's chunks in one transaction: readers see old or new, never half."""
        self.replace_documents([(doc, chunks, tokens)], when)

    def replace_documents(self, docs: list[tuple[DocumentInfo, list[Chunk], list[list[str]]]], when: str) -> None:
        """Swap several documents' chunks in one transaction (a benchmark pool of thousands of
        one-passage documents is one write, not thousands)."""
        with self._transaction() as touched:
            for doc, chunks, tokens in docs:
                touched.add(doc.doc_id)
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
        with self._transaction() as touched:
            touched.add(doc_id)
            self.db.execute("UPDATE documents SET source_path=? WHERE doc_id=?", (source_path, doc_id))

    def delete_document(self, doc_id: str) -> list[str]:
        with self._transaction() as touched:
            touched.add(doc_id)
            ids = self.chunk_ids(doc_id)
            self.db.execute("DELETE FROM chunks WHERE doc_id=?", (doc_id,))
            self.db.execute("DELETE FROM documents WHERE doc_id=?", (doc_id,))
        return ids

    # --- chunks ------------------------------------------------------------------------
    def all_chunks(self, tokens: bool = True) -> tuple[list[Chunk], list[list[str]]]:
        """Every chunk, by document then ordinal, with its token list (none: ``tokens=False``)."""
        rows = self.db.execute(
            'SELECT chunk_id, doc_id, ordinal, text, norm, section, start, "end", kind'
            + (", tokens" if tokens else "") + " FROM chunks ORDER BY doc_id, ordinal"
        ).fetchall()
        chunks = [Chunk(*r[:9]) for r in rows]
        return chunks, [json.loads(r[9]) for r in rows] if tokens else []

    def document_chunks(self, doc_ids: Iterable[str]) -> tuple[list[Chunk], list[list[str]]]:
        """The chunks (and token lists) of these documents, in the order ``all_chunks`` gives them."""
        doc_ids = sorted(set(doc_ids))
        rows = []
        for i in range(0, len(doc_ids), 500):
            part = doc_ids[i : i + 500]
            rows += self.db.execute(
                'SELECT chunk_id, doc_id, ordinal, text, norm, section, start, "end", kind, tokens '
                f"FROM chunks WHERE doc_id IN ({','.join('?' * len(part))}) ORDER BY doc_id, ordinal", part
            ).fetchall()
        return [Chunk(*r[:9]) for r in rows], [json.loads(r[9]) for r in rows]

    def chunks(self, chunk_ids: Iterable[str]) -> list[Chunk]:
        """The chunks with these ids (without their token lists, which may be what is broken)."""
        wanted = set(chunk_ids)
        rows = self.db.execute(
            'SELECT chunk_id, doc_id, ordinal, text, norm, section, start, "end", kind FROM chunks ORDER BY doc_id, ordinal'
        ).fetchall()
        return [Chunk(*r) for r in rows if r[0] in wanted]

    def count_chunks(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]

    def chunk_counts(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT doc_id, COUNT(*) FROM chunks GROUP BY doc_id").fetchall())

    def unreadable_tokens(self) -> list[str]:
        """Chunk ids whose stored token list does not parse (BM25 could not be rebuilt from them)."""
        return unreadable_token_ids(self.db.execute("SELECT chunk_id, tokens FROM chunks"))

    def set_tokens(self, tokens_by_id: dict[str, list[str]]) -> None:
        with self._transaction() as touched:
            ids = list(tokens_by_id)
            for i in range(0, len(ids), 500):
                part = ids[i : i + 500]
                touched.update(r[0] for r in self.db.execute(
                    f"SELECT DISTINCT doc_id FROM chunks WHERE chunk_id IN ({','.join('?' * len(part))})", part))
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
        self._require_writable()
        with self._lock:
            if value is None:
                self.db.execute("DELETE FROM meta WHERE key=?", (key,))
            else:
                self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    @contextmanager
    def _transaction(self) -> Iterator[set[str]]:
        """One atomic change of the indexed content: all of it or none of it, then a new version.

        The block adds the ids of the documents it changes to the set it is given; they are
        logged under the new version, so readers reload those documents rather than everything."""
        self._require_writable()
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                touched: set[str] = set()
                yield touched
                self._bump_version()
                version = self.version()
                self.db.executemany("INSERT INTO changes VALUES (?, ?)", [(version, d) for d in sorted(touched)])
                self.db.execute("DELETE FROM changes WHERE version <= ?", (version - CHANGE_LOG_VERSIONS,))
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    # --- versioning: lets readers notice that the index changed ---------------------------
    def version(self) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key='version'").fetchone()
        return int(row[0]) if row else 0

    def identity(self) -> str | None:
        """This catalog's id (None for one written before catalogs had ids, opened read-only)."""
        return self.get_flag("catalog_id")

    def _bump_version(self) -> None:
        self.db.execute(
            "INSERT INTO meta VALUES ('version', '1') ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1"
        )

    def changed_between(self, old: int, new: int) -> set[str] | None:
        """The documents changed after version ``old`` up to ``new``; None when the log cannot say
        (versions it no longer or never held: a catalog older than the log, a rebuilt one, one
        too far behind), and the reader must reload everything."""
        if new < old or new - old > CHANGE_LOG_VERSIONS:
            return None
        try:
            rows = self.db.execute("SELECT version, doc_id FROM changes WHERE version > ? AND version <= ?",
                                   (old, new)).fetchall()
        except sqlite3.OperationalError:
            return None  # a catalog written before the log, opened read-only
        # Every transaction logs under its version, so a version missing means an unlogged change.
        if {v for v, _ in rows} != set(range(old + 1, new + 1)):
            return None
        return {d for _, d in rows}

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
        self.cache_blobs([(model, h, np.asarray(v, dtype=np.float32).tobytes()) for h, v in items.items()])

    def cache_blobs(self, rows: list[tuple[str, str, bytes]]) -> None:
        """Store (model, text hash, float32 bytes) rows in the embedding cache."""
        self._require_writable()
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

    def count_cached(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM embedding_cache").fetchone()[0]

    def start_version_at(self, version: int) -> None:
        """Number this catalog's versions from ``version`` on, so that a catalog rebuilt in place of
        another never repeats a version number a reader already holds a snapshot of."""
        self._require_writable()
        with self._lock:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)", (str(int(version)),))

    def close(self) -> None:
        self.db.close()


for _name, _member in list(vars(Catalog).items()):
    if not _name.startswith("_") and callable(_member):
        setattr(Catalog, _name, _guarded(_member))
