"""The writer lock: one writer at a time per data folder, across processes and threads.

This is the SQLite catalog's lock (a file, for the writers of one machine); a PostgreSQL
catalog's writers, on any machine, are kept apart by ``pg_lock.PgWriterLock`` instead.

Every write to the index (ingest, delete, doctor --repair) holds an advisory ``fcntl.flock``
on ``<data dir>/writer.lock``. The kernel drops the lock when its holder dies, even on
SIGKILL, so a crashed writer can never wedge the index; the pid and purpose written into
the file only serve to tell a waiting writer (and ``qa-app doctor``) who holds it.
Readers never take the lock: they read catalog snapshots and keep answering meanwhile.
In a folder this process may not write to, taking the lock is a ``StorageError`` (read-only)
rather than a PermissionError; asking whether someone else holds it still works.
"""
from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from qa_app.index.errors import from_os_error

POLL_SECONDS = 0.2


class IndexBusyError(RuntimeError):
    """Another writer kept the index longer than we were willing to wait."""


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def describe_holder(info: dict) -> str:
    if not info:
        return "another writer"
    # A writer on another machine (a PostgreSQL catalog's lock, pg_lock.py) is named with its host.
    host = f" on {info['host']}" if info.get("host") else ""
    return f"{info.get('purpose', 'a writer')} (pid {info.get('pid', '?')}{host}, since {info.get('since', '?')})"


class ReentrantWriterLock:
    """Re-entrant within a thread, exclusive between threads; between processes, the subclass's
    ``_take`` (which returns the handle that keeps the lock) and ``_release``. ``name`` says
    where the index is, for messages."""

    name: str

    def __init__(self):
        self._threads = threading.RLock()
        self._depth = 0

    @property
    def held_here(self) -> bool:
        """True inside a hold() of this lock object (this process is the writer)."""
        return self._depth > 0

    @contextmanager
    def hold(
        self, purpose: str, on_wait: Callable[[str], None], timeout: float | None = None
    ) -> Iterator[bool]:
        """Hold the lock for a block; yields True in the outermost hold (the one that took it)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._threads.acquire(blocking=False):
            on_wait(f"waiting for another thread writing to {self.name} …")
            if not self._threads.acquire(timeout=-1 if deadline is None else max(0.0, deadline - time.monotonic())):
                raise IndexBusyError(f"the index at {self.name} stayed busy for {timeout:.0f}s")
        try:
            outermost = self._depth == 0
            if outermost:
                self._take(purpose, on_wait, deadline)
            self._depth += 1
            try:
                yield outermost
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self._release()
        finally:
            self._threads.release()

    def _take(self, purpose: str, on_wait: Callable[[str], None], deadline: float | None) -> None:
        raise NotImplementedError

    def _release(self) -> None:
        raise NotImplementedError


class WriterLock(ReentrantWriterLock):
    """Re-entrant within a thread, exclusive between threads and processes (a file lock)."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = path
        self.name = str(path.parent)
        self._fd: int | None = None

    def holder(self) -> dict:
        """Who the lock file says holds (or last held) the lock; {} when nobody wrote it."""
        try:
            text = self.path.read_text(encoding="utf-8").strip()
            return json.loads(text) if text else {}
        except (OSError, ValueError):
            return {}

    def is_held_elsewhere(self) -> bool:
        """True while another process (or another open of the file here) holds the lock."""
        if self._depth:
            return False
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:
            return False  # no data folder yet: nobody writes to it
        except PermissionError:
            try:  # a read-only folder or file: flock works on a descriptor opened for reading too
                fd = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:
                return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing drops our probe lock
        return False

    def _take(self, purpose: str, on_wait: Callable[[str], None], deadline: float | None) -> None:
        self._fd = self._take_file(purpose, on_wait, deadline)

    def _take_file(self, purpose: str, on_wait: Callable[[str], None], deadline: float | None) -> int:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise from_os_error(exc, self.path, self.path.parent) from exc
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not told:
                    on_wait(f"waiting for {describe_holder(self.holder())} to finish writing to {self.path.parent} …")
                    told = True
                if deadline is not None and time.monotonic() > deadline:
                    os.close(fd)
                    raise IndexBusyError(
                        f"the index at {self.path.parent} is busy: {describe_holder(self.holder())} is writing to it"
                    ) from None
                time.sleep(POLL_SECONDS)
        info = {"pid": os.getpid(), "purpose": purpose, "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
        except OSError as exc:
            os.close(fd)
            raise from_os_error(exc, self.path, self.path.parent) from exc
        return fd

    def _release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        os.ftruncate(fd, 0)  # an empty file means "nobody is writing"
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
