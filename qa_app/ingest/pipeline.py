"""Ingestion: files → cleaned text → chunks → index, incrementally.

A file whose bytes are unchanged since the last ingest is skipped; a changed file
replaces its old chunks; a file that cannot be read is reported and leaves the index
as it was (an earlier indexed version stays), while the rest of the batch goes on.

Document ids are file names, because citations, ``--doc``, eval sets and the API all name
documents that way. So two files are never allowed to claim one id silently:
- the same bytes under another name are reported as "duplicate of X" and not indexed twice;
- a different file with an indexed file's name is refused while that file still exists
  (rename one of them, or delete the indexed document first); if the indexed file is gone,
  the new one is taken as that document moved and edited, and replaces it.

Reading, cleaning, chunking and embedding (the slow part, and what a hostile file inflates) run
without the index's writer lock; the lock is taken per document for its write alone (vectors,
catalog, sweep), and what was decided about the document without it (new, changed, a duplicate,
another file's name) is checked again under it. So a large file never keeps other writers or a
delete waiting while it is embedded, and of two concurrent ingests of the same files the second
finds the first's work there and reports those files unchanged. A file over the limits of what it
may become (``Limits``, the character and chunk caps) is refused in ``prepare``, before any of it.
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from qa_app.index.store import Index
from qa_app.index.tokenize import tokens
from qa_app.ingest.chunk import chunk_text
from qa_app.ingest.clean import clean_report
from qa_app.ingest.loaders import (
    Limits,
    LoaderError,
    load,
    supported,
    too_many_chars,
    too_many_chunks,
)
from qa_app.ingest.metadata import document_metadata
from qa_app.ingest.scope import infer_scope
from qa_app.lexicon import is_pack
from qa_app.models import Chunk, DocumentInfo

log = logging.getLogger(__name__)


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    chunks: int = 0

    def summary(self) -> str:
        parts = [f"{len(self.added)} added", f"{len(self.updated)} updated", f"{len(self.unchanged)} unchanged"]
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        return ", ".join(parts) + f"; {self.chunks} chunks written"


@dataclass
class PreparedDocument:
    info: DocumentInfo
    chunks: list[Chunk]
    tokens: list[list[str]]


def expand_paths(paths: list[Path], skip: tuple[Path, ...] = ()) -> tuple[list[Path], dict[str, str]]:
    """Files to ingest (folders walked recursively) and the paths that are not usable. Hidden
    files and folders (.git, .DS_Store), the folders in ``skip`` and every corpus pack (word
    lists, not documents; ``lexicon.is_pack``) are not walked into."""
    files: list[Path] = []
    problems: dict[str, str] = {}
    skipped = {s.resolve() for s in skip}

    def wanted(f: Path, root: Path) -> bool:
        rel = f.relative_to(root).parts
        if any(part.startswith(".") for part in rel):
            return False
        # Any corpus pack's word lists, not only the active one's, are not documents.
        parents = f.resolve().parents
        return not any(parent in skipped or is_pack(parent) for parent in parents)

    for p in map(Path, paths):  # a path given as text works the same
        if p.is_dir():
            files.extend(sorted(f for f in p.rglob("*") if f.is_file() and supported(f) and wanted(f, p)))
        elif p.is_file():
            files.append(p)
        else:
            problems[str(p)] = "no such file or folder"
    return files, problems


def prepare(path: Path, settings, sha256: str) -> PreparedDocument:
    """Load, clean, chunk and tokenise one file (no index access). A file over the settings' limits
    on what it may become (unpacked bytes, characters of clean text, chunks) raises ``TooLarge``
    with the numbers: before any embedding, before any lock."""
    cleaned = clean_report(load(path, Limits.of(settings)))
    if len(cleaned) > settings.max_document_chars:
        raise too_many_chars(path.name, len(cleaned), settings.max_document_chars)
    meta = document_metadata(path, cleaned)
    title = str(meta.get("title") or path.stem)
    scope, kind = infer_scope(title, cleaned, meta)
    info = DocumentInfo(
        doc_id=path.name,
        title=title,
        date=str(meta.get("date") or ""),
        year=int(meta["year"]) if meta.get("year") else None,
        kind=kind,
        script=str(meta.get("script") or "simplified"),
        source_path=str(path.resolve()),
        sha256=sha256,
        scope=scope,
    )
    chunks = chunk_text(info.doc_id, cleaned, target=settings.chunk_chars, max_chars=settings.chunk_max_chars)
    if not chunks:
        raise LoaderError(f"{path.name}: no text left after cleaning")
    if len(chunks) > settings.max_document_chunks:
        raise too_many_chunks(path.name, len(chunks), settings.max_document_chunks)
    return PreparedDocument(info, chunks, [chunk_tokens(info.title, c) for c in chunks])


def chunk_tokens(title: str, chunk: Chunk) -> list[str]:
    """What BM25 indexes for a chunk: its document title, section path and text."""
    return tokens(f"{title}\n{chunk.index_text()}")


class Skip(Exception):
    """A file left out of this batch, with the message saying why."""


class _Batch:
    """Decides, file by file, what a batch does; remembers what it already took.

    It decides without the writer lock, from the catalog as it then is; ``recheck`` decides again
    under the lock, just before a document is written, from the catalog as another writer may have
    left it meanwhile."""

    def __init__(self, index: Index, force: bool):
        self.index, self.force = index, force
        self.by_sha: dict[str, Path] = {}
        self.by_name: dict[str, Path] = {}
        self.unscoped = index.catalog.unscoped_documents()
        self.moved: list[tuple[Path, str]] = []  # unchanged files found at a new path: followed under the lock

    def is_unchanged(self, path: Path, sha: str) -> bool:
        indexed = self.index.catalog.document_info(path.name)
        if self.force or indexed is None or indexed.sha256 != sha or path.name in self.by_name:
            return False
        if path.name in self.unscoped:
            return False  # indexed before scopes existed: prepared again (its vectors are cached)
        here = str(path.resolve())
        if indexed.source_path != here and not Path(indexed.source_path).is_file():
            self.moved.append((path, sha))  # the same file, moved: follow it
        self.take(path, sha)
        return True

    def follow_moves(self) -> None:
        """Point the catalog at the new paths of moved unchanged files (under the writer lock)."""
        for path, sha in self.moved:
            indexed = self.index.catalog.document_info(path.name)
            here = str(path.resolve())
            if indexed is not None and indexed.sha256 == sha and indexed.source_path != here \
                    and not Path(indexed.source_path).is_file():
                self.index.catalog.set_source_path(path.name, here)

    def recheck(self, doc: PreparedDocument) -> bool:
        """Under the writer lock: False when another writer has meanwhile indexed these very bytes
        under this name (nothing left to do); Skip when it made this file a duplicate or gave its
        name to another file."""
        name, sha = doc.info.doc_id, doc.info.sha256
        indexed = self.index.catalog.document_info(name)
        if (not self.force and indexed is not None and indexed.sha256 == sha
                and name not in self.index.catalog.unscoped_documents()):
            return False
        self._check_twins(name, sha)
        self._check_source(name, doc.info.source_path)
        return True

    def take(self, path: Path, sha: str) -> None:
        """Only files that will be indexed claim their bytes and name; a failed file claims nothing."""
        self.by_sha[sha] = self.by_name[path.name] = path

    def check(self, path: Path, sha: str) -> None:
        """Raise Skip when this file would index the same bytes twice or take another file's id."""
        if sha in self.by_sha:
            raise Skip(f"duplicate of {self.by_sha[sha]} (same content, sha256 {sha[:12]}…); not indexed twice")
        self._check_twins(path.name, sha)
        if path.name in self.by_name:
            raise Skip(
                f"another file named {path.name} is in this batch ({self.by_name[path.name]}); document ids are "
                "file names, so only the first was indexed: rename one of them"
            )
        self._check_source(path.name, str(path.resolve()))

    def _check_twins(self, name: str, sha: str) -> None:
        twins = [d.doc_id for d in self.index.catalog.documents_with_sha(sha) if d.doc_id != name]
        if twins:
            raise Skip(f"duplicate of {twins[0]} (same content, sha256 {sha[:12]}…, already indexed); not indexed twice")

    def _check_source(self, name: str, here: str) -> None:
        indexed = self.index.catalog.document_info(name)
        if indexed is not None and indexed.source_path not in ("", here) and Path(indexed.source_path).is_file():
            raise Skip(
                f"{name} is already indexed from another file, {indexed.source_path}; document ids are "
                f"file names, so this would replace it: rename one of them, or `qa-app delete {name}` first"
            )


def _prepared(files: list[Path], batch: _Batch, index: Index, report: IngestReport
              ) -> Iterator[tuple[Path, PreparedDocument | None]]:
    """Read, check and prepare the files one at a time, without the writer lock, as the writer
    asks for them: only one prepared document is held at once. Each file is yielded, with None
    when there is nothing to write (unchanged, or failed: recorded, and touching nothing)."""
    for path in files:
        doc = None
        try:
            sha = _sha256(path)
            if batch.is_unchanged(path, sha):
                report.unchanged.append(path.name)
            else:
                batch.check(path, sha)
                doc = prepare(path, index.settings, sha)
                batch.take(path, sha)
        except Skip as exc:
            report.failed[str(path)] = str(exc)
        except (LoaderError, OSError) as exc:
            report.failed[str(path)] = _kept(index, path, str(exc))
        except Exception as exc:  # noqa: BLE001 - one unreadable file must not stop the batch
            log.debug("preparing %s failed", path, exc_info=True)
            report.failed[str(path)] = _kept(index, path, f"{path.name}: could not be read ({type(exc).__name__}: {exc})")
        yield path, doc


def _sha256(path: Path) -> str:
    with path.open("rb") as f:  # streamed: a file too large to index is refused later, not read whole here
        return hashlib.file_digest(f, "sha256").hexdigest()


def _kept(index: Index, path: Path, message: str) -> str:
    if index.catalog.document_info(path.name) is not None:
        return message + "; the version indexed earlier is kept"
    return message


def ingest(paths: list[Path], index: Index, *, progress: bool = True, force: bool = False) -> IngestReport:
    """Index files and folders; ``force`` re-indexes files even when their bytes are unchanged."""
    report = IngestReport()
    pack = index.settings.lexicon
    files, problems = expand_paths(paths, (Path(pack),) if pack else ())
    report.failed.update(problems)
    purpose = "ingest " + " ".join(str(p) for p in paths)[:200]
    if index.interrupted_write():
        # A write left unfinished (or one running now): taking the lock reconciles the vectors with
        # the catalog (or waits for that writer) before the plan reads the catalog, even when this
        # batch turns out to have nothing to write.
        with index.writing(purpose):
            pass
    batch = _Batch(index, force)
    # Streamed: each file is prepared, embedded and committed before the next is read, so memory
    # holds one document (at most ``max_document_chunks`` chunks) and a crash loses at most it.
    with tqdm(total=len(files), unit="file", desc="Indexing", disable=not progress or not files) as bar:
        for path, doc in _prepared(files, batch, index, report):
            if doc is not None:
                _write(batch, path, doc, index, report, purpose, progress)
            bar.update(1)
    if batch.moved:
        with index.writing(purpose):
            batch.follow_moves()
    return report


def _write(batch: _Batch, path: Path, doc: PreparedDocument, index: Index, report: IngestReport, purpose: str,
           progress: bool) -> None:
    # Embedded before the lock (and cached as it goes): the lock covers only the write.
    total = index.unit_count(doc.chunks)
    with tqdm(total=total, unit="sentence", desc=f"Embedding {path.name}"[:60], leave=False,
              disable=not progress or total == 0) as bar:
        vectors = index.embed_chunks(doc.chunks, progress=bar)
    with index.writing(purpose):
        try:
            needed = batch.recheck(doc)
        except Skip as exc:
            report.failed[str(path)] = str(exc)
            return
        if not needed:
            report.unchanged.append(doc.info.doc_id)
            return
        existed = index.catalog.document_sha(doc.info.doc_id) is not None
        index.put_document(doc.info, doc.chunks, doc.tokens, vectors)
    (report.updated if existed else report.added).append(doc.info.doc_id)
    report.chunks += len(doc.chunks)
