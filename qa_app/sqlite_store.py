"""A small SQLite file of the page's own (saved conversations, ratings), apart from the index."""
from __future__ import annotations

import sqlite3
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Iterator


class SQLiteStore:
    """Rows in ``path``; a subclass names its ``FILE_NAME`` and ``SCHEMA``. Safe to share between
    threads: each call opens its own connection, and SQLite serialises the writes. The file is
    created on the first call, not before."""

    FILE_NAME = ""
    SCHEMA = ""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._ready = False

    @classmethod
    def in_data_dir(cls, data_dir: Path):
        return cls(Path(data_dir) / cls.FILE_NAME)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        if not self._ready:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(self.path, timeout=10)) as db:
            if not self._ready:
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(self.SCHEMA)
                self._ready = True
            with db:  # one transaction: committed on success, rolled back on an error
                yield db
