"""The index: catalog + Chroma + BM25 kept in step, behind one object.

The catalog is SQLite in the data folder, or PostgreSQL (``QA_CATALOG_URL``; the backends are
listed in ``catalog_api.py``), whose writer lock then excludes writers on every machine. With the
catalog on a server and Chroma in server mode, any number of processes serve one index: each
keeps its own in-memory view current from the catalog's change log, asking the server for its
version at most every ``index_refresh_s`` (its own writes at once), and answers from the view it
has while the server cannot be reached.

Writes go catalog-last: vectors are upserted first, then the catalog swaps the chunk list
in one transaction, then stale vectors are deleted. Readers only trust chunk ids the
catalog lists, so a crash between steps leaves extra vectors, never missing ones. BM25 is
never stored: it is built from the catalog's token lists, so it cannot disagree with it. A
new snapshot is the previous one with the documents the catalog's change log names since
then reloaded (BM25 included: ``BM25Index.updated``), so a one-document change costs about that
document, not the collection; a snapshot the log cannot bring up to date is built whole.

Every write holds the writer lock (``lock.py``) and marks the catalog "writing" until it
ends cleanly. A writer that finds the mark left behind knows its predecessor died
mid-write and first reconciles Chroma with the catalog (orphan vectors deleted, missing
ones restored from the embedding cache), so the next ingest finishes the work.

Storage failures are ``StorageError``s (``errors.py``). A damaged catalog does not stop the
``Index`` from being built (a server can start and report it through ``health()``): every use
of the catalog raises the error, and opening is tried again at each use, so a repair is
picked up. In a folder this process may not write to, the index is read-only: the catalog
opens read-only, writes are refused before they start, and since embedded Chroma cannot
open read-only, dense search ranks chunk vectors rebuilt from the embedding cache (the
same means of the same sentence vectors that Chroma holds). That is also the fallback
while the vector store is damaged, until ``qa-app doctor --repair`` rebuilds it.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import groupby, islice
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings

from qa_app.index.bm25 import BM25Index
from qa_app.index.catalog import can_write
from qa_app.index.catalog_api import IndexCatalog, catalog_class
from qa_app.index.crash import crash_point
from qa_app.data_folder import CATALOG_FILE
from qa_app.index.embeddings import embedder_name, make_embeddings, stored_name
from qa_app.index.errors import DAMAGED, READ_ONLY, StorageError, read_only
from qa_app.index.recovery import move_aside, write_sources
from qa_app.index.sentences import SentenceVectors, clause_units, mean_vector, search_units, units
from qa_app.index.vector_store import (
    VectorStore,
    store_class,
)
from qa_app.models import Chunk, DocumentInfo
from qa_app.text import headed_years

log = logging.getLogger(__name__)

WRITING_FLAG = "writing"
# Set by `doctor --repair` while it refills a new catalog from the source files (what it is
# ingesting), cleared when done: a repair stopped half-way is finished by the next one, and no
# sweep takes the uploads not yet re-indexed for never-indexed ones meanwhile.
REBUILD_FLAG = "rebuilding"
# The most neighbours a scoped dense search fetches unfiltered before it asks the store to filter.
OVERFETCH_MAX = 1000
# Chunks whose token lists a whole build holds at once (read a few documents at a time).
TOKEN_BATCH = 5000
# BM25 as the last process to start built it (see Index._first_snapshot): a shortcut, never trusted alone.
BM25_FILE = "bm25.npz"


def text_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


@dataclass
class VectorDrift:
    """How Chroma disagrees with the catalog (the catalog is right)."""

    orphans: list[str]  # vectors of chunks the catalog does not list
    missing: list[str]  # catalog chunks without a vector

    def __bool__(self) -> bool:
        return bool(self.orphans or self.missing)


@dataclass(frozen=True)
class Snapshot:
    """One consistent view of the index for readers: swapped in whole, never mutated."""

    version: int
    chunks: dict[str, Chunk]
    docs: dict[str, DocumentInfo]
    bm25: BM25Index
    row_doc: np.ndarray
    corpus: str  # all chunk texts, normalised and lower-cased, for "does the corpus say X at all"
    # Each document's chunks and its stretch of ``corpus``: what the next version reuses.
    by_doc: dict[str, tuple[Chunk, ...]] = field(default_factory=dict, repr=False)
    spans: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False)
    # Each document's years with a heading of their own (text.headed_years): where a section
    # naming only a plan period stops speaking for a year.
    headed: dict[str, frozenset[int]] = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, version: int, docs: list[DocumentInfo], chunks: list[Chunk], token_lists: Iterable[list[str]]) -> "Snapshot":
        """The view of a whole catalog (chunks in the catalog's order: by document, then ordinal).
        ``token_lists``, one per chunk in that order, is read a document at a time: an iterator
        that reads them in batches keeps a few thousand in memory, not all of them."""
        groups = {d: tuple(part) for d, part in groupby(chunks, key=lambda c: c.doc_id)}
        lists = iter(token_lists)
        bm25 = BM25Index.from_documents((d, [c.chunk_id for c in part], list(islice(lists, len(part))))
                                        for d, part in groups.items())
        return cls._assemble(version, {d.doc_id: d for d in docs}, groups, {}, "", bm25)

    def updated(self, version: int, docs: dict[str, DocumentInfo | None], chunks: list[Chunk],
                token_lists: list[list[str]]) -> "Snapshot":
        """This view with the documents in ``docs`` reloaded: their catalog rows (None: deleted),
        chunks and token lists as they now are (in the catalog's order)."""
        changed = set(docs)
        fresh = _grouped(chunks, token_lists)
        infos = {d: info for d, info in self.docs.items() if d not in changed}
        infos |= {d: info for d, info in docs.items() if info is not None}
        groups = {d: part for d, part in self.by_doc.items() if d not in changed}
        groups |= {d: part for d, (part, _) in fresh.items()}
        bm25 = self.bm25.updated(changed, ((d, [c.chunk_id for c in part], toks) for d, (part, toks) in fresh.items()))
        spans = {d: span for d, span in self.spans.items() if d not in changed}
        headed = {d: years for d, years in self.headed.items() if d not in changed}
        return Snapshot._assemble(version, infos, groups, spans, self.corpus, bm25, headed)

    @classmethod
    def _assemble(cls, version: int, infos: dict[str, DocumentInfo], groups: dict[str, tuple[Chunk, ...]],
                  spans: dict[str, tuple[int, int]], corpus: str, bm25: BM25Index,
                  headed: dict[str, frozenset[int]] | None = None) -> "Snapshot":
        """Documents in id order and chunks in the catalog's order, whatever order the parts came in.
        A document's text in ``corpus`` is its span of the previous ``corpus`` when it has one; its
        headed years, those of ``headed`` when given there."""
        headed = headed or {}
        names = sorted(groups)
        pieces = [corpus[spans[d][0] : spans[d][1]] if d in spans else "\n".join(c.norm.lower() for c in groups[d])
                  for d in names]
        new_spans, at = {}, 0
        for d, text in zip(names, pieces):
            new_spans[d] = (at, at + len(text))
            at += len(text) + 1
        ordered = {d: groups[d] for d in names}
        return cls(
            version=version,
            chunks={c.chunk_id: c for d in names for c in ordered[d]},
            docs={d: infos[d] for d in sorted(infos)},
            bm25=bm25,
            row_doc=np.repeat(np.array(names, dtype=object), [len(ordered[d]) for d in names]) if names
            else np.array([], dtype=object),
            corpus="\n".join(pieces),
            by_doc=ordered,
            spans=new_spans,
            headed={d: headed[d] if d in headed else headed_years(infos[d].title if d in infos else "",
                                                                  (c.section for c in ordered[d])) for d in names},
        )

    def allowed_mask(self, doc_ids: set[str] | None) -> np.ndarray | None:
        """Which rows of ``row_doc`` belong to ``doc_ids``: a document's rows are one run, so the
        mask is each document's yes or no repeated (np.isin over the row strings took 50 ms at 100k)."""
        if doc_ids is None:
            return None
        names = list(self.by_doc)
        keep = np.fromiter((d in doc_ids for d in names), dtype=bool, count=len(names))
        return np.repeat(keep, [len(self.by_doc[d]) for d in names])

    def knows(self, term: str) -> bool:
        """Does the term occur anywhere in the indexed text (as a token or inside a longer word)?"""
        return self.bm25.knows(term) or term.lower() in self.corpus


def _grouped(chunks: list[Chunk], token_lists: list[list[str]]) -> dict[str, tuple[tuple[Chunk, ...], list[list[str]]]]:
    """Chunks (in the catalog's order) and their token lists by document."""
    out, i = {}, 0
    for doc_id, part in groupby(chunks, key=lambda c: c.doc_id):
        part = tuple(part)
        out[doc_id] = (part, token_lists[i : i + len(part)])
        i += len(part)
    return out


def _whole_snapshot(catalog: IndexCatalog, version: int) -> Snapshot:
    """The view of the whole catalog, its token lists read a batch of documents at a time (all of
    them at once, as Python lists, took 1.4 GB at 100k chunks)."""
    chunks, _ = catalog.all_chunks(tokens=False)
    return Snapshot.build(version, catalog.documents(), chunks, _token_lists(catalog, chunks))


def _token_lists(catalog: IndexCatalog, chunks: list[Chunk], batch_chunks: int = TOKEN_BATCH) -> Iterator[list[str]]:
    """Each chunk's token list, in order, read whole documents at a time. A chunk that another
    writer replaced since ``chunks`` was read gets an empty list: the change log names its
    document, so the next view reloads it."""
    # Both streams run in document-id order, the catalog's.
    stream = _document_tokens(catalog, Counter(c.doc_id for c in chunks), batch_chunks)
    pending = next(stream, None)
    for doc_id, part in groupby(chunks, key=lambda c: c.doc_id):
        held: dict[str, list[str]] = {}
        while pending is not None and pending[0] <= doc_id:
            if pending[0] == doc_id:
                held = dict(zip(pending[1], pending[2]))
            pending = next(stream, None)
        for c in part:
            yield held.get(c.chunk_id, [])


def _document_tokens(catalog: IndexCatalog, counts: dict[str, int], batch_chunks: int = TOKEN_BATCH
                     ) -> Iterator[tuple[str, list[str], list[list[str]]]]:
    """(document, its chunk ids, their token lists), read whole documents about ``batch_chunks``
    chunks at a time (``counts``: chunks by document)."""
    def read(batch: list[str]) -> Iterator[tuple[str, list[str], list[list[str]]]]:
        chunks, lists = catalog.document_chunks(batch)
        for doc_id, group in groupby(zip(chunks, lists), key=lambda pair: pair[0].doc_id):
            group = list(group)
            yield doc_id, [c.chunk_id for c, _ in group], [toks for _, toks in group]

    batch: list[str] = []
    size = 0
    for doc_id in sorted(counts):
        batch.append(doc_id)
        size += counts[doc_id]
        if size >= batch_chunks:
            yield from read(batch)
            batch, size = [], 0
    if batch:
        yield from read(batch)


class CachedVectors:
    """Chunk vectors rebuilt from the embedding cache, searched exactly (the read-only fallback for Chroma)."""

    def __init__(self, ids: list[str], matrix: np.ndarray, docs: np.ndarray):
        self.ids, self.matrix, self.docs = ids, matrix, docs

    def search(self, vector: np.ndarray, k: int, doc_ids: set[str] | None) -> list[tuple[str, float]]:
        if not self.ids or k <= 0:
            return []
        norm = float(np.linalg.norm(vector))
        sims = self.matrix @ (vector / norm if norm > 0 else vector)
        if doc_ids is not None:
            sims = np.where(np.isin(self.docs, list(doc_ids)), sims, -np.inf)
        n = min(k, len(self.ids))
        top = np.argpartition(-sims, n - 1)[:n]
        top = top[np.argsort(-sims[top], kind="stable")]
        return [(self.ids[i], float(sims[i])) for i in top if np.isfinite(sims[i])]


class Index:
    def __init__(self, settings, embeddings: Embeddings | None = None):
        self.settings = settings
        self.data_dir = Path(settings.resolved_data_dir())
        # SQLite in the data folder, or a server (QA_CATALOG_URL) shared with other processes.
        self._catalog_class = catalog_class(settings)
        self.catalog_path: Path | None = None if self._catalog_class.remote else self.data_dir / CATALOG_FILE
        self._embeddings = embeddings
        self._store_class = store_class(settings.vector_store)
        self._store: VectorStore | None = None
        self._store_error: StorageError | None = None  # why the vector store could not be used, last time
        self._catalog: IndexCatalog | None = None
        self._catalog_error: StorageError | None = None
        self._lock = threading.RLock()
        self._snap: Snapshot | None = None
        self._version_fresh_until = 0.0  # a server catalog's version is asked again after this (monotonic)
        # Why a server catalog could not be asked, while answers come from the last view (None: it could).
        self._catalog_unreachable: StorageError | None = None
        self._sentences: tuple[int, SentenceVectors] | None = None
        self._sentences_lock = threading.Lock()
        self._from_cache: tuple[int, CachedVectors] | None = None
        self._write_depth = 0  # writing() blocks open in the thread holding the writer lock
        self._sources: dict[str, str] | None = None  # what sources.json says, as last written here
        self.moved_aside: list[Path] = []  # damaged files this object moved aside (for the repair's report)
        self.writer = self._catalog_class.writer_lock(settings, self.data_dir)
        try:
            self._catalog = self._open_catalog()
        except StorageError:
            pass  # kept in _catalog_error: health() reports it, each use of the catalog raises it

    # --- storage: opening, checking, read-only ---------------------------------------------------
    @property
    def catalog(self) -> IndexCatalog:
        """The catalog; a StorageError when it cannot be opened (tried again at each use)."""
        cat = self._catalog
        if cat is not None:
            return cat
        with self._lock:
            if self._catalog is None:
                self._catalog = self._open_catalog()
            return self._catalog

    def _open_catalog(self) -> IndexCatalog:
        try:
            cat = self._catalog_class.open(self.settings, self.data_dir, read_only=bool(self.unwritable_paths()),
                                           has_vectors=self._vectors_on_disk)
        except StorageError as exc:
            self._catalog_error = exc
            raise
        self._catalog_error = None
        self._snap, self._sentences, self._from_cache = None, None, None
        self._version_fresh_until = 0.0
        return cat

    def catalog_where(self) -> str:
        """Where the catalog is, for messages: its file, or its server (without the password)."""
        return self._catalog_class.location(self.settings, self.data_dir)

    def _vectors_on_disk(self) -> bool:
        return self._store_class.holds_vectors(self.settings)

    def unwritable_paths(self) -> list[Path]:
        """The index's files and folders this process may not change (a few access() calls)."""
        paths = [self.data_dir, *self._catalog_class.local_files(self.settings, self.data_dir)]
        folder = self._store_class.local_folder(self.settings)
        if folder is not None:
            paths += [folder, *folder.glob("*.sqlite3")]
        return [p for p in paths if (p == self.data_dir or p.exists()) and not can_write(p)]

    @property
    def writable(self) -> bool:
        cat = self._catalog
        return cat is not None and cat.writable and not self.unwritable_paths()

    def require_writable(self) -> None:
        """Raise the StorageError that would stop a write (a read-only folder, a damaged catalog)
        before anything is written or embedded."""
        cat = self.catalog
        blocked = self.unwritable_paths()
        if blocked:
            raise read_only(self.data_dir, f"cannot write {blocked[0]}")
        if not cat.writable:
            # The folder was made writable since the catalog was opened read-only: reopen it. The
            # old connection is left to readers still using it, not closed under them.
            with self._lock:
                self._catalog = self._open_catalog()
                self._store_error = None

    def health(self) -> dict[str, Any]:
        """Whether the index can answer and take writes, for a health probe (no scan beyond the
        snapshot that queries load anyway): ``status`` ok / empty / degraded, ``reason`` (the
        bilingual message, None when ok), ``writable``, and ``queries`` (whether questions can be
        answered: false only when the catalog itself cannot be read)."""
        try:
            chunks = len(self.snapshot().chunks)
        except StorageError as exc:
            return {"status": "degraded", "reason": exc.message, "writable": False, "queries": False}
        reasons = []
        unreachable = self._catalog_unreachable
        writable = self.writable and unreachable is None
        if unreachable is not None:
            reasons.append(f"{unreachable.message} 问答使用索引的最近版本（{self._snap.version if self._snap else 0}）。"
                           f"(Answers come from the index as last seen, version "
                           f"{self._snap.version if self._snap else 0}, until the catalog is back.)")
        if not writable:
            blocked = self.unwritable_paths()
            reasons.append(read_only(self.data_dir, f"cannot write {blocked[0]}" if blocked else "").message)
            if self._store_class.local_folder(self.settings) is not None:
                reasons.append("向量库（嵌入式 Chroma）无法以只读方式打开：语义检索改用嵌入缓存中的向量。"
                               "(The embedded vector store cannot be opened read-only: dense search uses the "
                               "vectors in the embedding cache.)")
        problem = self._store_error
        if problem is not None and problem.kind != READ_ONLY:
            reasons.append(problem.message + (" 语义检索暂用嵌入缓存中的向量。(Dense search uses the embedding cache "
                                              "meanwhile.)" if problem.kind == DAMAGED else ""))
        status = "degraded" if reasons else ("ok" if chunks else "empty")
        return {"status": status, "reason": " ".join(reasons) or None, "writable": writable, "queries": True}

    def vector_store_damaged(self) -> bool:
        """Whether the vector store cannot be opened and listed because it is damaged (other
        failures, such as an unreachable server, raise)."""
        try:
            self.vectors.all_ids()
        except StorageError as exc:
            if exc.kind != DAMAGED:
                raise
            self._store_error = exc  # a rebuild then moves it aside rather than trusting it to empty
            return True
        return False

    def replace_catalog(self) -> Path | None:
        """Move the catalog file aside (never deleted) and open a new, empty one in its place.

        For ``doctor --repair``, which holds the writer lock and then refills it from the source files.
        """
        if not self.writer.held_here:
            raise RuntimeError("replace_catalog() needs the writer lock")
        if self.catalog_path is None:
            raise StorageError(
                f"索引目录在服务器上（{self.catalog.where()}），不能移到一旁重建：请用服务器的备份恢复，或清空后重新导入。"
                f"(The catalog is on a server ({self.catalog.where()}) and is not moved aside and rebuilt here: "
                "restore it from the server's backups, or empty it and ingest again.)")
        with self._lock:
            old, self._catalog = self._catalog, None
            if old is not None:
                old.close()
            aside = move_aside(self.catalog_path) if self.catalog_path.exists() else None
            if aside is not None:
                self.moved_aside.append(aside)
            cat = self._open_catalog()
            # Versions of the new catalog start above any the old one can have reached, so no
            # reader takes the new content for a snapshot it already holds.
            cat.start_version_at(time.time_ns() // 1000)
            self._catalog = cat
            self._sources = None
        return aside

    def _replace_vector_store(self) -> None:
        """Empty the vector store; one that cannot be opened or emptied is moved aside and made anew."""
        if self._store_error is None or self._store_error.kind != DAMAGED:
            try:
                self.vectors.reset()
                return
            except StorageError as exc:
                if exc.kind != DAMAGED or self._store_class.local_folder(self.settings) is None:
                    raise
        path = self._store_class.local_folder(self.settings)
        if path is None:
            raise self._store_error  # a server's store is the server's to repair
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None
            self._store_class.forget(self.settings)
            if path.exists():
                self.moved_aside.append(move_aside(path))
            self._store_error = None
        self.vectors.count()  # opens the new, empty store now: a failure shows here, not mid-refill

    # --- components, created on first use ---------------------------------------------------
    @property
    def embeddings(self) -> Embeddings:
        if self._embeddings is None:
            with self._lock:
                if self._embeddings is None:
                    self._embeddings = make_embeddings(self.settings)
        return self._embeddings

    @property
    def model_name(self) -> str:
        # Known from the settings where it can be, so read-only commands neither load a model nor
        # reach an embedding server to name the collection.
        known = stored_name(self.settings) if self._embeddings is None else None
        return known or embedder_name(self.embeddings)

    @property
    def vectors(self) -> VectorStore:
        if self._store is None:
            with self._lock:
                if self._store is None:
                    known = self._store_error
                    # Damage and a read-only folder do not mend by themselves: not retried on every query.
                    if known is not None and known.kind in (DAMAGED, READ_ONLY):
                        raise known
                    # Asked of the folder, not of the catalog: a repair reads the vectors' document
                    # ids while the catalog is damaged.
                    if self._store_class.local_folder(self.settings) is not None and self.unwritable_paths():
                        self._store_error = read_only(
                            self.data_dir, "the embedded vector store (Chroma) cannot be opened read-only; "
                            "dense search uses the vectors in the embedding cache")
                        raise self._store_error
                    try:
                        self._store = self._store_class(self.settings, self.model_name)
                    except StorageError as exc:
                        self._store_error = exc
                        raise
                    self._store_error = None
        return self._store

    # --- reading ------------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        """The current view: when the catalog changed, the previous view with the changed
        documents reloaded (everything, when the change log cannot say which changed)."""
        catalog = self.catalog
        version = self._catalog_version(catalog)
        snap = self._snap
        if snap is not None and snap.version == version:
            return snap
        with self._lock:
            snap = self._snap
            if snap is not None and snap.version == version:
                return snap
            # The version is read before the content: content newer than its label is reloaded
            # by the next call, which finds those documents in the log.
            changed = catalog.changed_between(snap.version, version) if snap is not None else None
            if snap is None:
                self._snap = self._first_snapshot(catalog, version)
            elif changed is None:
                self._snap = _whole_snapshot(catalog, version)
            else:
                docs = {d: catalog.document_info(d) for d in changed}
                self._snap = snap.updated(version, docs, *catalog.document_chunks(changed))
            return self._snap

    def _catalog_version(self, catalog: IndexCatalog) -> int:
        """The catalog's version, asked every time of a local file; of a server, at most every
        ``index_refresh_s`` (a write through another process shows here within that bound; one
        through this process at once, since ``writing()`` ends by asking again)."""
        snap = self._snap
        interval = self.settings.index_refresh_s if catalog.remote else 0.0
        now = time.monotonic()
        if snap is not None and interval > 0 and now < self._version_fresh_until:
            return snap.version
        try:
            version = catalog.version()
        except StorageError as exc:
            # A server catalog that cannot be reached: the view already built still answers (it and
            # the vectors are all a question needs), until the server is back; health() says so.
            if not catalog.remote or snap is None or exc.kind == DAMAGED:
                raise
            if self._catalog_unreachable is None:
                log.warning("answering from the index as of version %s: %s", snap.version, exc.message)
            self._catalog_unreachable = exc
            self._version_fresh_until = now + interval
            return snap.version
        self._catalog_unreachable = None
        self._version_fresh_until = now + interval
        return version

    def _first_snapshot(self, catalog: IndexCatalog, version: int) -> Snapshot:
        """This process's first view: from the BM25 file an earlier one saved, when it was built
        from this catalog and the change log brings it up to date (parsing every token list is
        most of a whole build); else built whole. Saved again when it is not the catalog's now."""
        identity = catalog.identity()
        loaded = BM25Index.load(self.data_dir / BM25_FILE) if identity else None
        if loaded is not None:
            bm25, stamp = loaded
            changed = catalog.changed_between(int(stamp.get("version", -1)), version) \
                if stamp.get("catalog") == identity else None
            if changed is not None:
                chunks, _ = catalog.all_chunks(tokens=False)
                groups = {d: tuple(part) for d, part in groupby(chunks, key=lambda c: c.doc_id)}
                base = Snapshot._assemble(version, {d.doc_id: d for d in catalog.documents()}, groups, {}, "", bm25)
                snap = base.updated(version, {d: catalog.document_info(d) for d in changed},
                                    *catalog.document_chunks(changed))
                if snap.bm25.ids == list(snap.chunks):
                    if changed:
                        self._save_bm25(snap, identity)
                    return snap
                log.warning("%s does not match the catalog; BM25 is built from the catalog", BM25_FILE)
        snap = _whole_snapshot(catalog, version)
        if identity and snap.chunks:  # an empty index is no work to save, and a read leaves no file
            self._save_bm25(snap, identity)
        return snap

    def _save_bm25(self, snap: Snapshot, identity: str) -> None:
        """Save a view's BM25 for the next process's start, in the background (a reader must not
        wait for it); a folder that cannot be written is left as it is."""
        if not self.writable:
            return

        def save() -> None:
            try:
                snap.bm25.save(self.data_dir / BM25_FILE, {"catalog": identity, "version": snap.version})
            except OSError as exc:
                log.info("could not save %s: %s", BM25_FILE, exc)

        threading.Thread(target=save, name="save-bm25").start()

    def write_start_file(self) -> bool:
        """Save BM25 for the next process's start, as a first view would, but built from the
        catalog's token lists a few documents at a time without the view itself (chunk texts,
        corpus, sentence vectors): what `qa-app ingest` leaves behind, so that its peak memory is
        the ingest's. False when there is nothing to save or no folder to save it in."""
        catalog = self.catalog
        if not self.writable:
            return False
        identity = catalog.identity()
        version = catalog.version()  # read before the content, as snapshot() does
        counts = catalog.chunk_counts()
        if not identity or not counts:
            return False
        bm25 = BM25Index.from_documents(_document_tokens(catalog, counts))
        bm25.save(self.data_dir / BM25_FILE, {"catalog": identity, "version": version})
        return True

    @property
    def bm25(self) -> BM25Index:
        return self.snapshot().bm25

    def knows(self, term: str) -> bool:
        return self.snapshot().knows(term)

    def chunk(self, chunk_id: str) -> Chunk | None:
        return self.snapshot().chunks.get(chunk_id)

    def document(self, doc_id: str) -> DocumentInfo | None:
        return self.snapshot().docs.get(doc_id)

    def documents(self) -> list[DocumentInfo]:
        return list(self.snapshot().docs.values())

    def chunks(self) -> list[Chunk]:
        return list(self.snapshot().chunks.values())

    def chunk_counts(self) -> dict[str, int]:
        """How many chunks each document has (by document id), from one snapshot."""
        return dict(Counter(c.doc_id for c in self.snapshot().chunks.values()))

    def __len__(self) -> int:
        return len(self.snapshot().chunks)

    def dense_search(
        self, query: str, k: int, doc_ids: set[str] | None = None, snap: Snapshot | None = None,
        vector: np.ndarray | None = None,
    ) -> list[tuple[str, float]]:
        """Chunks nearest the query (its ``vector`` when the caller has it already)."""
        snap = snap or self.snapshot()
        if not snap.chunks:
            return []
        vector = vector if vector is not None else self.query_vector(query)
        known = self._store_error
        if known is not None and known.kind in (DAMAGED, READ_ONLY):
            hits = self.vectors_from_cache(snap).search(vector, k, doc_ids)
        else:
            try:
                hits = self._nearest(vector.tolist(), k, doc_ids, snap)
            except StorageError as exc:
                if exc.kind not in (DAMAGED, READ_ONLY):
                    raise
                self._store_error = exc
                # Expected in a read-only folder (health() says so); damage is worth a warning.
                log.log(logging.WARNING if exc.kind == DAMAGED else logging.INFO,
                        "dense search uses the embedding cache: %s", exc.message)
                hits = self.vectors_from_cache(snap).search(vector, k, doc_ids)
        # Only chunks the catalog lists count: vectors left by an interrupted write are ignored.
        return [(cid, s) for cid, s in hits if cid in snap.chunks]

    def _nearest(self, vector: list[float], k: int, doc_ids: set[str] | None, snap: Snapshot) -> list[tuple[str, float]]:
        """The store's ``k`` nearest among ``doc_ids``' chunks. A store's filtered search costs in
        proportion to the chunks the filter lets through (Chroma: 106 ms at 30k chunks when it
        lets through all, 1.6 ms unfiltered), and a question's scope often allows most of the
        index: then the unfiltered neighbours, fetched deep enough to hold ``k`` allowed ones
        (``k / share``, twice over), are filtered here; the store filters only when that would take
        more than ``OVERFETCH_MAX`` neighbours, or when too few came back allowed."""
        if doc_ids is None:
            return self.vectors.query(vector, k)
        allowed = sum(len(snap.by_doc.get(d, ())) for d in doc_ids)
        if not allowed:
            return []
        fetch = math.ceil(2 * k * len(snap.chunks) / allowed)
        if fetch <= OVERFETCH_MAX:
            hits = [(cid, s) for cid, s in self.vectors.query(vector, fetch)
                    if cid in snap.chunks and snap.chunks[cid].doc_id in doc_ids]
            if len(hits) >= min(k, allowed):
                return hits[:k]
        return self.vectors.query(vector, k, doc_ids)

    def vectors_from_cache(self, snap: Snapshot | None = None) -> CachedVectors:
        """The snapshot's chunk vectors made from the embedding cache as ``embed_chunks`` makes them
        (built once per version); chunks with a sentence missing from the cache are left out."""
        snap = snap or self.snapshot()
        held = self._from_cache
        if held is not None and held[0] == snap.version:
            return held[1]
        limit = self.settings.embedding_max_chars
        keys = [(cid, [text_hash(u[:limit]) for u in self._units(c)]) for cid, c in snap.chunks.items()]
        found = self.catalog.cached_vectors(self.model_name, {h for _, hs in keys for h in hs})
        ids, rows = [], []
        for cid, hs in keys:
            if hs and all(h in found for h in hs):
                ids.append(cid)
                rows.append(mean_vector([found[h] for h in hs]))
        matrix = np.asarray(rows, dtype=np.float32) if rows else np.zeros((0, 0), dtype=np.float32)
        vectors = CachedVectors(ids, matrix, np.array([snap.chunks[c].doc_id for c in ids], dtype=object))
        self._from_cache = (snap.version, vectors)
        return vectors

    # --- writing ------------------------------------------------------------------------------
    @contextmanager
    def writing(
        self, purpose: str, on_wait: Callable[[str], None] = log.warning, timeout: float | None = None,
        *, reconcile: bool = True,
    ) -> Iterator[VectorDrift | None]:
        """Hold the writer lock for a block of writes (re-entrant); waits, saying why, while another writer runs.

        Yields what had to be reconciled because the previous write was interrupted (None if nothing).
        ``reconcile=False`` skips that, for a write that replaces all vectors anyway (and must
        work while the vector store cannot be read). Raises a StorageError, before taking the
        lock, when the index cannot be written (read-only folder, damaged catalog).
        """
        self.require_writable()
        # The mark is kept by the outermost writing() block, counted here rather than by the lock,
        # so a repair can hold the lock around several writes and each still marks its own.
        with self.writer.hold(purpose, on_wait, timeout):
            if self._write_depth:
                self._write_depth += 1
                try:
                    yield None
                finally:
                    self._write_depth -= 1
                return
            self._write_depth = 1
            try:
                healed = None
                left = self.catalog.get_flag(WRITING_FLAG)
                if left and reconcile:
                    log.warning("an earlier write was interrupted (%s); reconciling the vectors with the catalog", left)
                    healed = self._fix_vectors()
                marker = {"pid": os.getpid(), "purpose": purpose,
                          "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}
                self.catalog.set_flag(WRITING_FLAG, json.dumps(marker))
                yield healed
                # Only a write that ran to the end clears the mark; an exception leaves it for the next writer.
                self.catalog.set_flag(WRITING_FLAG, None)
                self._record_sources()
            finally:
                self._write_depth = 0
                self._version_fresh_until = 0.0  # this process's readers see its write at once

    def _record_sources(self) -> None:
        """Keep sources.json (doc id -> source file) in step with the catalog, for a rebuild after
        the catalog is lost. Written only when it changed; a failure is logged, not raised: the
        write itself is done."""
        try:
            current = self.catalog.sources()
            if current != self._sources:
                write_sources(self.data_dir, current)
                self._sources = current
        except (OSError, StorageError) as exc:
            log.warning("could not record the documents' sources in %s: %s", self.data_dir, exc)

    def unfinished_rebuild(self) -> dict | None:
        """What a catalog rebuild that never finished was ingesting ({"paths": [...], ...}), if any."""
        raw = self.catalog.get_flag(REBUILD_FLAG)
        if not raw:
            return None
        try:
            plan = json.loads(raw)
        except ValueError:
            return {"paths": []}
        return plan if isinstance(plan, dict) else {"paths": []}

    def interrupted_write(self) -> dict | None:
        """The mark of a write that never finished, if any (only meaningful while no writer runs)."""
        raw = self.catalog.get_flag(WRITING_FLAG)
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return {"raw": raw}

    def vector_drift(self) -> VectorDrift:
        listed = set(self.catalog.chunk_ids())
        stored = self.vectors.all_ids()
        return VectorDrift(orphans=sorted(stored - listed), missing=sorted(listed - stored))

    def reconcile(self) -> VectorDrift:
        """Make Chroma agree with the catalog under the writer lock; returns what had to be fixed."""
        with self.writing("reconcile"):
            return self._fix_vectors()

    def _fix_vectors(self) -> VectorDrift:
        drift = self.vector_drift()
        if drift.orphans:
            self.vectors.delete(drift.orphans)
        crash_point("reconcile")
        if drift.missing:
            self.restore_vectors(drift.missing)
        return drift

    def restore_vectors(self, chunk_ids: list[str]) -> None:
        """Upsert vectors for catalog chunks, from the embedding cache where it has them."""
        # Straight from the catalog, not a snapshot: this must work even when BM25 cannot be built.
        chunks = self.catalog.chunks(chunk_ids)
        docs = {d.doc_id: d for d in self.catalog.documents()}
        for doc_id in sorted({c.doc_id for c in chunks}):
            mine = [c for c in chunks if c.doc_id == doc_id]
            vectors = self.embed_chunks(mine)
            self.vectors.upsert([c.chunk_id for c in mine], vectors, self._metadatas(docs[doc_id], mine))

    def rebuild_vectors(self) -> int:
        """Empty the vector store and refill it from the catalog (for a damaged vector store, which is
        moved aside to ``chroma.damaged-<time>`` when it cannot be opened or emptied)."""
        with self.writing("rebuild vectors", reconcile=False):
            self._replace_vector_store()
            ids = self.catalog.chunk_ids()
            self.restore_vectors(ids)
            return len(ids)

    @staticmethod
    def _metadatas(doc: DocumentInfo, chunks: list[Chunk]) -> list[dict[str, Any]]:
        return [{"doc_id": c.doc_id, "year": doc.year or 0, "ordinal": c.ordinal, "kind": c.kind} for c in chunks]

    def _units(self, chunk: Chunk) -> list[str]:
        """What ``embed_chunks`` embeds for a chunk: its sentences, or (none long enough) its text."""
        return units(chunk.norm) or [chunk.index_text()[: self.settings.embedding_max_chars]]

    def _clauses(self, chunk: Chunk) -> list[str]:
        """The clauses ``embed_chunks`` embeds too, for the sentence channel (``sentence_clauses``)."""
        return clause_units(chunk.norm) if self.settings.sentence_clauses else []

    def embed_chunks(self, chunks: list[Chunk], progress=None) -> list[list[float]]:
        """A vector per chunk: the mean of its sentence units' vectors (each cached by content);
        its clauses are embedded into the cache too, for the sentence channel.

        Only writes need chunk vectors: a read-only index refuses here, before embedding anything."""
        self.require_writable()
        unit_lists = [self._units(c) for c in chunks]
        flat = self.embed_texts([u for us in unit_lists for u in us] + [u for c in chunks for u in self._clauses(c)], progress)
        out, i = [], 0
        for us in unit_lists:
            out.append(mean_vector(flat[i : i + len(us)]))
            i += len(us)
        return out

    def unit_count(self, chunks: list[Chunk]) -> int:
        """How many texts ``embed_chunks`` embeds for these chunks (for a progress bar)."""
        return sum(len(self._units(c)) + len(self._clauses(c)) for c in chunks)

    def sentence_vectors(self, snap: Snapshot | None = None) -> SentenceVectors:
        """The sentence vectors of a snapshot's chunks, from the embedding cache (built once per
        version, from the previous version's with only the changed documents looked up)."""
        snap = snap or self.snapshot()
        held = self._sentences
        if held is not None and held[0] == snap.version:
            return held[1]
        with self._sentences_lock:  # the rows are appended to in place: one builder at a time
            held = self._sentences
            if held is not None and held[0] == snap.version:
                return held[1]
            model, limit = self.model_name, self.settings.embedding_max_chars
            vectors = SentenceVectors.updated(
                held[1] if held is not None else None, snap.by_doc,
                lambda part: [(c.chunk_id, u, text_hash(u[:limit])) for c in part
                              for u in search_units(c.norm, self.settings.sentence_clauses)],
                lambda keys: self.catalog.cached_vectors(model, keys))
            self._sentences = (snap.version, vectors)
            return vectors

    def query_vector(self, text: str) -> np.ndarray:
        return np.asarray(self.embeddings.embed_query(text), dtype=np.float32)

    def question_vector(self, query, topic: bool | None = None) -> np.ndarray:
        """A question's vector: the normalised mean of its dense texts' (``Query.dense_texts``), of
        what it asks about (``Query.topic``) when ``topic`` (default: the settings' ``question_vector``)."""
        if topic is None:
            topic = self.settings.question_vector == "topic"
        if topic:
            query = query.topic()
        vectors = [self.query_vector(t) for t in query.dense_texts]
        if len(vectors) == 1:
            return vectors[0]
        mean = np.mean(vectors, axis=0)
        norm = float(np.linalg.norm(mean))
        return mean / norm if norm > 0 else mean

    def add_sentence_similarities(self, passages: list, question: str) -> None:
        """Give passages that never went through this index (benchmark passages handed over as
        text) what retrieval gives its own: each sentence's similarity with the question. Their
        sentences are embedded through this index's content-hash cache, so a passage seen before
        costs nothing."""
        from qa_app.index.query import Query

        qv = self.question_vector(Query.parse(question))
        for p in passages:
            keys = units(p.chunk.norm)
            vectors = np.asarray(self.embed_texts(keys), dtype=np.float32) if keys else np.zeros((0, len(qv)))
            p.sentence_sims = {k: float(s) for k, s in zip(keys, vectors @ qv)}

    def embed_texts(self, texts: list[str], progress=None) -> list[list[float]]:
        """Embed with a content-hash cache: a text (a sentence, mostly) is never embedded twice."""
        model = self.model_name
        limit = self.settings.embedding_max_chars
        clipped = [t[:limit] for t in texts]
        hashes = [text_hash(t) for t in clipped]
        cached = self.catalog.cached_vectors(model, set(hashes))
        if progress is not None:
            progress.update(sum(1 for h in hashes if h in cached))
        todo = sorted({h: t for h, t in zip(hashes, clipped) if h not in cached}.items())
        # An endpoint embedder takes several requests' worth per call (its concurrency × batch size).
        step = getattr(self.embeddings, "texts_per_call", self.settings.embedding_batch_size)
        for i in range(0, len(todo), step):
            batch = todo[i : i + step]
            vectors = self.embeddings.embed_documents([t for _, t in batch])
            fresh = {h: v for (h, _), v in zip(batch, vectors)}
            # Cached as soon as computed: an ingest killed later keeps this work for the next run.
            # A read-only index (a query embedding benchmark passages) keeps them in memory only.
            if self.catalog.writable:
                self.catalog.cache_vectors(model, fresh)
            cached.update(fresh)
            crash_point("embedded", len(batch))
            if progress is not None:
                progress.update(len(batch))
        return [cached[h] for h in hashes]

    def put_document(self, doc: DocumentInfo, chunks: list[Chunk], tokens: list[list[str]], vectors: list[list[float]]) -> None:
        self.put_documents([(doc, chunks, tokens, vectors)])

    def put_documents(self, docs: list[tuple[DocumentInfo, list[Chunk], list[list[str]], list[list[float]]]]) -> None:
        """Write documents (with their chunks' tokens and vectors) in the crash-safe order: every
        vector, then one catalog transaction, then the sweep of vectors no chunk has any more."""
        if not docs:
            return
        label = docs[0][0].doc_id if len(docs) == 1 else f"{len(docs)} documents"
        with self.writing(f"write {label}"):
            # A chunk id hashes its document, position and text, so a vector Chroma holds under it
            # is already this chunk's: upserting it again takes Chroma's update path (20 s under the
            # lock to rewrite a 3,700-chunk report unchanged) for nothing. Only a changed year
            # changes the metadata of chunks that stay.
            ids, vectors, metadatas = [], [], []
            for doc, chunks, _, doc_vectors in docs:
                indexed = self.catalog.document_info(doc.doc_id)
                kept = self.vectors.ids_for_docs([doc.doc_id]) if indexed is not None and indexed.year == doc.year else set()
                fresh = [(c, v) for c, v in zip(chunks, doc_vectors) if c.chunk_id not in kept]
                ids += [c.chunk_id for c, _ in fresh]
                vectors += [v for _, v in fresh]
                metadatas += self._metadatas(doc, [c for c, _ in fresh])
            if ids:
                self.vectors.upsert(ids, vectors, metadatas)
            crash_point("vectors")
            self.catalog.replace_documents([(doc, chunks, tokens) for doc, chunks, tokens, _ in docs],
                                           datetime.now(timezone.utc).isoformat(timespec="seconds"))
            crash_point("committed")
            # Asking Chroma (not the old catalog rows) also sweeps vectors an interrupted earlier write left behind.
            current = {c.chunk_id for _, chunks, _, _ in docs for c in chunks}
            stale = sorted(self.vectors.ids_for_docs([doc.doc_id for doc, *_ in docs]) - current)
            if stale:
                self.vectors.delete(stale)

    def delete_document(self, doc_id: str) -> bool:
        with self.writing(f"delete {doc_id}"):
            ids = self.catalog.delete_document(doc_id)
            if ids:
                self.vectors.delete(ids)
            return bool(ids)

    def close(self) -> None:
        """Let go of the catalog and the vector store (and the memory they hold); a later use opens them again."""
        if self._catalog is not None:
            self._catalog.close()
            self._catalog = None
        if self._store is not None:
            self._store.close()
            self._store = None
