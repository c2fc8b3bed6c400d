"""What an upload killed half-way leaves in the data folder, found and swept.

An upload (``POST /v1/documents``) streams its files into ``.upload_staging/<id>/``, checks
that each one reads, moves them into ``uploads/``, then ingests them; ``.upload_staging/<id>/``
is removed at the end, success or not. A server killed in between leaves the staging folder
and, in ``uploads/``, files no indexed document comes from. The client never got an answer,
so none of it was acknowledged.

When is a staging folder dead rather than an upload in progress in another process? The
writer lock does not tell: an upload stages and checks its files before it takes that lock
(only its ingest holds it). So:

- a staging folder made with ``upload_staging()`` holds an ``flock`` on its ``.owner`` file
  for as long as the upload runs; the kernel drops it when the process dies, even on
  SIGKILL. Free lock: dead, swept at once (a server restarted right after a kill cleans up).
- a staging folder without that mark (made by code that does not use ``upload_staging()``,
  or killed between making the folder and marking it) is dead once nothing in it changed for
  ``STALE_AFTER_S`` and no writer holds the writer lock: an upload's files are written in
  blocks and then checked within seconds, and while it is ingesting it holds the writer lock.
- ``uploads/`` files are only judged while no upload can be running (no live staging
  folder, since an upload keeps its folder until its ingest returned), no writer holds
  the lock (``qa-app ingest data/uploads`` may be indexing them right now) and no catalog
  rebuild is unfinished.

Never-indexed upload files are moved to ``.upload_leftovers/<time>/`` (with their
``manifest.json`` entries), not deleted. Deleting would be defensible, since the upload was
never acknowledged, but "no indexed document comes from this file" is also what every
upload looks like after the catalog was lost or replaced, and then these files are the only
copy of acknowledged documents. Moving costs only disk, and the folder is hidden, so
``qa-app ingest <data dir>`` does not pick it up. A file that is indexed is never touched.
"""
from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from qa_app.index.errors import from_os_error
from qa_app.index.lock import IndexBusyError
from qa_app.manifest import update_manifest

log = logging.getLogger(__name__)

STAGING_DIR = ".upload_staging"
UPLOADS_DIR = "uploads"
LEFTOVERS_DIR = ".upload_leftovers"
MANIFEST = "manifest.json"
OWNER_FILE = ".owner"
PREVIOUS_PREFIX = ".previous-"  # where an upload keeps the version it replaces until the new one is indexed
STALE_AFTER_S = 10 * 60


@contextmanager
def upload_staging(data_dir: Path) -> Iterator[Path]:
    """A new staging folder for one upload, marked in use until the block ends, then removed."""
    staging = Path(data_dir) / STAGING_DIR / uuid.uuid4().hex
    try:
        staging.mkdir(parents=True)
        fd = os.open(staging / OWNER_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise from_os_error(exc, staging, data_dir) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield staging
    finally:
        # Removed while still marked, so a sweep never takes the folder for a dead one half-way.
        shutil.rmtree(staging, ignore_errors=True)
        os.close(fd)
        try:
            staging.parent.rmdir()  # only when no other upload is staged there
        except OSError:
            pass


@dataclass
class _Found:
    dead_staging: list[Path] = field(default_factory=list)
    unindexed: list[Path] = field(default_factory=list)
    # uploads/<name> whose indexed version waits in a dead staging folder: (uploads file, that version)
    replaced: list[tuple[Path, Path]] = field(default_factory=list)
    live: bool = False  # an upload may be running: uploads/ was not judged


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _quiet_for(folder: Path, now: float) -> float:
    """Seconds since anything in the folder (or the folder itself) last changed."""
    newest = folder.lstat().st_mtime
    for entry in folder.iterdir():
        try:
            newest = max(newest, entry.lstat().st_mtime)
        except FileNotFoundError:
            continue
    return now - newest


def _staging_live(folder: Path, writer_busy: bool, now: float) -> bool:
    try:
        fd = os.open(folder / OWNER_FILE, os.O_RDONLY)
    except FileNotFoundError:
        try:
            return writer_busy or _quiet_for(folder, now) < STALE_AFTER_S
        except FileNotFoundError:
            return False  # removed meanwhile by its upload
    except OSError:
        return True  # cannot tell: leave it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the probe's lock
    return False


def _find(index, writer_busy: bool) -> _Found:
    data = Path(index.data_dir)
    found = _Found()
    now = time.time()
    staging_root = data / STAGING_DIR
    for folder in sorted(staging_root.iterdir()) if staging_root.is_dir() else []:
        if not folder.is_dir():
            continue
        if _staging_live(folder, writer_busy, now):
            found.live = True
        else:
            found.dead_staging.append(folder)
    uploads = data / UPLOADS_DIR
    # A catalog being rebuilt does not list yet every upload it will: none is judged meanwhile.
    writer_busy = writer_busy or index.unfinished_rebuild() is not None
    if found.live or writer_busy or not uploads.is_dir():
        found.live = found.live or writer_busy
        return found
    docs = {d.doc_id: d for d in index.catalog.documents()}
    for folder in found.dead_staging:
        for previous in folder.glob(PREVIOUS_PREFIX + "*"):
            name = previous.name[len(PREVIOUS_PREFIX):]
            doc, current = docs.get(name), uploads / name
            # The version the index holds was set aside for a replacement that was never indexed.
            if (doc is not None and previous.is_file() and _sha256(previous) == doc.sha256
                    and (not current.is_file() or _sha256(current) != doc.sha256)):
                found.replaced.append((current, previous))
    replaced = {current for current, _ in found.replaced}
    for path in sorted(uploads.iterdir()):
        if not path.is_file() or path.name == MANIFEST or path in replaced:
            continue
        doc = docs.get(path.name)
        if doc is None or (not _same_file(doc.source_path, path) and _sha256(path) != doc.sha256):
            found.unindexed.append(path)
    return found


def _same_file(source: str | None, path: Path) -> bool:
    return bool(source) and Path(source).resolve() == path.resolve()


def sweep_upload_leftovers(index, remove: bool) -> list[str]:
    """The leftovers of uploads that never finished, as paths relative to the data folder
    (folders end with "/"); with ``remove``, also swept: staging folders deleted, never-indexed
    upload files moved to ``.upload_leftovers/<time>/``, and a replaced upload's indexed version
    put back. Nothing is judged while an upload or a writer may be running (see the module's
    docstring), so the list is then empty.

    Raises a StorageError when the catalog cannot be read (then every upload would look
    unindexed: nothing is swept), and with ``remove`` when the folder is read-only.
    """
    data = Path(index.data_dir)
    if not remove:
        found = _find(index, writer_busy=index.writer.is_held_elsewhere())
        return _describe(found, data)
    index.require_writable()
    try:
        with index.writer.hold("sweep upload leftovers", log.info, timeout=0):
            found = _find(index, writer_busy=False)
            _sweep(found, data)
    except IndexBusyError:
        return []  # a writer is running: perhaps an upload's ingest; the next sweep decides
    return _describe(found, data)


def _describe(found: _Found, data: Path) -> list[str]:
    out = [f"{p.relative_to(data)}/" for p in found.dead_staging]
    out += [str(p.relative_to(data)) for p in found.unindexed + [c for c, _ in found.replaced]]
    return out


def _sweep(found: _Found, data: Path) -> None:
    if not (found.dead_staging or found.unindexed or found.replaced):
        return
    uploads = data / UPLOADS_DIR
    aside = data / LEFTOVERS_DIR / datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    try:
        moved = [p for p in found.unindexed + [c for c, _ in found.replaced] if p.is_file()]
        if moved:
            aside.mkdir(parents=True, exist_ok=True)
            entries = update_manifest(uploads, {p.name: None for p in found.unindexed}) if found.unindexed else {}
            for path in moved:
                path.replace(aside / path.name)
            # Their metadata goes with them: ingesting them from there later gets it back.
            kept = {name: entry for name, entry in entries.items() if entry}
            if kept:
                update_manifest(aside, kept)
            log.warning("moved %d never-indexed upload file(s) to %s", len(moved), aside)
        for current, previous in found.replaced:
            previous.replace(current)
            log.warning("put back %s: the indexed version, set aside by a replacement that never finished", current)
        for folder in found.dead_staging:
            shutil.rmtree(folder, ignore_errors=True)
            log.warning("removed %s, left by an upload that never finished", folder)
        try:
            (data / STAGING_DIR).rmdir()
        except OSError:
            pass
    except OSError as exc:
        raise from_os_error(exc, getattr(exc, "filename", None) or data, data) from exc
