"""The writer lock of a PostgreSQL catalog: one writer at a time on every machine that reaches it.

A file lock (``lock.py``) excludes writers on one machine; with the catalog on a server, API
processes elsewhere write too. So a write holds a session-level ``pg_advisory_lock`` on a
connection of its own for as long as it runs: the server grants it to one session at a time,
and drops it when that session ends, however it ends (a killed writer, a lost machine once the
server notices the connection is gone), so a crashed writer never wedges the index. Who holds
it is written beside it into the catalog's ``qa_meta`` table (pid, host, purpose, since) and
read back only while the lock is held, so a waiting writer and ``qa-app doctor`` can name it.
Same interface as ``WriterLock``: ``hold(purpose, on_wait, timeout)``, ``holder()``,
``is_held_elsewhere()``, ``held_here``.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Callable
from datetime import datetime, timezone

from qa_app.index.errors import StorageError
from qa_app.index.lock import POLL_SECONDS, IndexBusyError, ReentrantWriterLock, describe_holder
from qa_app.index.pg_connection import PREFIX, connect, lock_keys, storage_error, where

log = logging.getLogger(__name__)

HOLDER_KEY = "writer_holder"


class PgWriterLock(ReentrantWriterLock):
    """Re-entrant within a thread, exclusive between threads, processes and machines."""

    def __init__(self, url: str):
        super().__init__()
        self._url = url
        self.name = where(url)
        self._conn = None

    def _probe(self) -> tuple[bool, dict]:
        """(whether some session holds the lock, what the holder wrote about itself)."""
        try:
            conn = connect(self._url, "qa-app probe")
        except StorageError:
            raise
        try:
            keys = lock_keys(conn)
            held = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND classid = %s "
                "AND objid = %s AND objsubid = 2 AND granted)", keys).fetchone()[0]
            info: dict = {}
            if held and conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{PREFIX}meta",)).fetchone()[0]:
                row = conn.execute(f"SELECT value FROM {PREFIX}meta WHERE key = %s", (HOLDER_KEY,)).fetchone()
                try:
                    info = json.loads(row[0]) if row and row[0] else {}
                except ValueError:
                    info = {}
            return held, info if isinstance(info, dict) else {}
        except Exception as exc:
            err = storage_error(exc, self._url)
            if err is None:
                raise
            raise err from exc
        finally:
            conn.close()

    def holder(self) -> dict:
        """Who holds the lock now ({} when nobody does: the server frees a dead holder's lock)."""
        held, info = self._probe()
        return info if held else {}

    def is_held_elsewhere(self) -> bool:
        if self._depth:
            return False
        return self._probe()[0]

    def _take(self, purpose: str, on_wait: Callable[[str], None], deadline: float | None) -> None:
        self._conn = self._connect_locked(purpose, on_wait, deadline)

    def _connect_locked(self, purpose: str, on_wait: Callable[[str], None], deadline: float | None):
        conn = connect(self._url, "qa-app writer")
        try:
            keys = lock_keys(conn)
            told = False
            while not conn.execute("SELECT pg_try_advisory_lock(%s, %s)", keys).fetchone()[0]:
                if not told:
                    on_wait(f"waiting for {self._describe()} to finish writing to {self.name} …")
                    told = True
                if deadline is not None and time.monotonic() > deadline:
                    raise IndexBusyError(f"the index at {self.name} is busy: {self._describe()} is writing to it")
                time.sleep(POLL_SECONDS)
            info = {"pid": os.getpid(), "host": socket.gethostname(), "purpose": purpose,
                    "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}
            if conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{PREFIX}meta",)).fetchone()[0]:
                conn.execute(f"INSERT INTO {PREFIX}meta VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value=EXCLUDED.value",
                             (HOLDER_KEY, json.dumps(info)))
            return conn
        except IndexBusyError:
            conn.close()
            raise
        except Exception as exc:
            conn.close()
            err = storage_error(exc, self._url)
            if err is None:
                raise
            raise err from exc

    def _describe(self) -> str:
        try:
            return describe_holder(self.holder())
        except StorageError:
            return "another writer"

    def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if conn.broken:
                # The session ended under the write, and its lock with it: another writer may have
                # started meanwhile. The catalog's own transactions were each atomic; say so.
                log.warning("the connection holding the writer lock of %s broke during a write", self.name)
                return
            conn.execute(f"DELETE FROM {PREFIX}meta WHERE key = %s", (HOLDER_KEY,))
            conn.execute("SELECT pg_advisory_unlock_all()")
        except Exception as exc:  # noqa: BLE001 - closing the session frees the lock anyway
            log.info("releasing the writer lock of %s: %s", self.name, exc)
        finally:
            conn.close()
