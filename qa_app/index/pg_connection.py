"""Connecting to the PostgreSQL catalog, and its failures as ``StorageError``s.

Shared by the catalog (``pg_catalog.py``) and the writer lock (``pg_lock.py``). Messages name
the server as ``postgresql://user@host:port/db``, never with the password (libpq also takes it
from ``PGPASSWORD`` or ``~/.pgpass``, which keeps it out of the settings altogether).
"""
from __future__ import annotations

import zlib

from qa_app.index.catalog_api import redact
from qa_app.index.errors import READ_ONLY, UNAVAILABLE, StorageError

try:
    import psycopg
    from psycopg import errors as pg_errors
    from psycopg.conninfo import conninfo_to_dict
except ImportError:  # the optional extra is missing: said when a PostgreSQL catalog is asked for
    psycopg = None

# Seconds to wait for the server before calling it unreachable (a query waits as long as it takes).
CONNECT_TIMEOUT_S = 5
# The advisory lock's first key (the second is the schema's): "QA" in ASCII, so it is told apart
# from other applications' locks in pg_locks.
LOCK_CLASS = 0x5141
# Table names carry this prefix, so the catalog can share a database (or a schema) with other tables.
PREFIX = "qa_"


def where(url: str) -> str:
    """The server as messages name it: postgresql://user@host:port/db (no password)."""
    try:
        info = conninfo_to_dict(url) if psycopg is not None else {}
    except Exception:  # noqa: BLE001 - an unparsable URL is shown redacted as it is
        return redact(url)
    host = info.get("host") or "localhost"
    port = info.get("port") or "5432"
    user = info.get("user") or ""
    db = info.get("dbname") or user
    return f"postgresql://{user + '@' if user else ''}{host}:{port}/{db}"


def _scrub(text: str, url: str) -> str:
    try:
        password = conninfo_to_dict(url).get("password")
    except Exception:  # noqa: BLE001
        password = None
    return text.replace(password, "***") if password else text


def connect(url: str, purpose: str = "qa-app"):
    """An autocommit connection; a StorageError (naming the server) when it cannot be made."""
    if psycopg is None:
        raise StorageError(
            "PostgreSQL 索引目录需要 psycopg：pip install 'qa_app[postgres]'。"
            "(A PostgreSQL catalog needs psycopg: pip install 'qa_app[postgres]'.)",
            kind=UNAVAILABLE, path=None)
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S, application_name=purpose)
    except psycopg.Error as exc:
        raise storage_error(exc, url) from exc


def storage_error(exc: Exception, url: str) -> StorageError | None:
    """A StorageError for a failure about the server (unreachable, gone, refused, full), or None for
    one that is a bug in a statement, which must stay loud."""
    if psycopg is None or not isinstance(exc, psycopg.Error):
        return None
    name = where(url)
    detail = _scrub(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, url)
    if isinstance(exc, pg_errors.InsufficientPrivilege):
        return StorageError(
            f"PostgreSQL 索引目录 {name} 拒绝写入（{detail}）；问答照常，写入被拒绝。"
            f"(The PostgreSQL catalog {name} refuses this role's writes: {detail}; queries still work, "
            "writes are refused.)", kind=READ_ONLY, path=None)
    if isinstance(exc, pg_errors.DiskFull):
        return StorageError(f"PostgreSQL 服务器磁盘已满：{name}。(The PostgreSQL server's disk is full: {name}.)",
                            kind=UNAVAILABLE, path=None)
    if isinstance(exc, pg_errors.UndefinedTable):
        return StorageError(
            f"PostgreSQL 索引目录 {name} 缺少表（{detail}）：有人删除了它们？重新打开会建立空表，再运行 `qa-app ingest`。"
            f"(The PostgreSQL catalog {name} lacks its tables ({detail}): were they dropped? Opening it again "
            "creates empty ones; then run `qa-app ingest`.)", kind=UNAVAILABLE, path=None)
    if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
        return StorageError(
            f"无法使用 PostgreSQL 索引目录 {name}：{detail}。请检查服务器是否运行、地址和账号是否正确"
            f"（QA_CATALOG_URL）。(The PostgreSQL catalog {name} cannot be used: {detail}. Check that the "
            "server runs and that QA_CATALOG_URL names it and a role that may log in.)",
            kind=UNAVAILABLE, path=None)
    return None


def lock_keys(conn) -> tuple[int, int]:
    """The writer lock's two keys: this app's, and the schema's the catalog's tables live in
    (one index per schema, so two indexes in one database never exclude each other)."""
    schema = conn.execute("SELECT current_schema()").fetchone()[0] or "public"
    return LOCK_CLASS, zlib.crc32(schema.encode("utf-8")) & 0x7FFFFFFF
