"""``StorageError``: the index's files cannot be used as they are, said in words a user can act on.

Raised at the storage edges (the catalog, the vector store, the writer lock, the data folder)
instead of sqlite3, chromadb or OSError exceptions, so every caller (the CLI, the API, the
MCP server) can show one bilingual message naming the file and what to do, instead of a
traceback or an "Internal server error".
"""
from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

READ_ONLY, DAMAGED, UNAVAILABLE = "read_only", "damaged", "unavailable"

REPAIR_HINT = "运行 `qa-app doctor --repair`"
REPAIR_HINT_EN = "run `qa-app doctor --repair`"


class StorageError(RuntimeError):
    """The index's storage cannot do what was asked.

    ``kind`` is ``read_only`` (queries may still work, writes are refused), ``damaged`` (a file
    is corrupt: ``qa-app doctor --repair`` moves it aside and rebuilds) or ``unavailable`` (a
    disk, permission or server problem that is neither). ``path`` is the file or folder at fault.
    """

    def __init__(self, message: str, *, kind: str = UNAVAILABLE, path: Path | str | None = None):
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.path = Path(path) if path is not None else None


def read_only(folder: Path | str, what: str = "") -> StorageError:
    detail_zh = f"（{what}）" if what else ""
    detail_en = f" ({what})" if what else ""
    return StorageError(
        f"数据目录只读：{folder}{detail_zh}；问答和检索照常，写入（导入、上传、删除）被拒绝。"
        f"(The data folder is read-only: {folder}{detail_en}; queries still work, writes — ingest, upload, "
        "delete — are refused.)",
        kind=READ_ONLY, path=folder,
    )


def catalog_damaged(path: Path | str, what_en: str, what_zh: str | None = None) -> StorageError:
    return StorageError(
        f"索引目录损坏：{path} {what_zh or '已损坏'}；{REPAIR_HINT} 将其移到一旁并从源文件重建。"
        f"(The index catalog {path} is damaged: {what_en}; {REPAIR_HINT_EN} to move it aside and rebuild "
        "it from the source files.)",
        kind=DAMAGED, path=path,
    )


def vectors_damaged(path: Path | str, detail: str) -> StorageError:
    return StorageError(
        f"向量库损坏：{path} 无法读取（{detail}）；{REPAIR_HINT} 将其移到一旁并从索引目录重建。"
        f"(The vector store {path} is damaged: it cannot be read ({detail}); {REPAIR_HINT_EN} to move it "
        "aside and rebuild it from the catalog.)",
        kind=DAMAGED, path=path,
    )


def unavailable(path: Path | str, detail: str) -> StorageError:
    return StorageError(
        f"无法使用索引文件：{path}（{detail}）。(The index file {path} cannot be used: {detail}.)",
        kind=UNAVAILABLE, path=path,
    )


def from_os_error(exc: OSError, path: Path | str, folder: Path | str) -> StorageError:
    """A StorageError for a failed file operation in the data folder."""
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return read_only(folder, f"{path}: {exc.strerror or exc}")
    if exc.errno == errno.ENOSPC:
        return StorageError(
            f"磁盘已满：无法写入 {path}。(The disk is full: {path} cannot be written.)", kind=UNAVAILABLE, path=path
        )
    return unavailable(path, f"{type(exc).__name__}: {exc.strerror or exc}")


def from_sqlite_error(exc: sqlite3.Error, path: Path | str, folder: Path | str) -> StorageError | None:
    """A StorageError for an SQLite failure that is about the file, or None for one that is a bug
    (a constraint, a bad statement), which must stay loud."""
    if not isinstance(exc, sqlite3.DatabaseError) or isinstance(
        exc, (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.NotSupportedError, sqlite3.DataError)
    ):
        return None
    text = str(exc).lower()
    if "readonly" in text or "read-only" in text:
        return read_only(folder, f"{path}: {exc}")
    if "not a database" in text:
        return catalog_damaged(path, "it is not an SQLite database", "不是有效的 SQLite 数据库")
    if "malformed" in text or "corrupt" in text:
        return catalog_damaged(path, f"SQLite reports: {exc}", f"已损坏（SQLite：{exc}）")
    if "no such table" in text or "no such column" in text:
        return catalog_damaged(path, f"part of its schema is missing ({exc})", f"缺少表结构（{exc}）")
    if "disk is full" in text or "database or disk is full" in text:
        return StorageError(f"磁盘已满：无法写入 {path}。(The disk is full: {path} cannot be written.)",
                            kind=UNAVAILABLE, path=path)
    if "unable to open" in text:
        return unavailable(path, f"SQLite cannot open it: {exc}")
    if "locked" in text or "busy" in text:
        return None  # another connection's transaction: a wait, not a storage fault
    return unavailable(path, f"SQLite: {exc}")
