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

The whole batch runs under the index's writer lock, so concurrent ingests (two processes,
or two server threads) run one after the other and the second sees the first's work.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from qa_app.index.store import Index
from qa_app.index.tokenize import tokens
from qa_app.ingest.chunk import chunk_text
from qa_app.ingest.clean import clean_report
from qa_app.ingest.loaders import LoaderError, load, supported
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
    """Load, clean, chunk and tokenise one file (no index access)."""
    cleaned = clean_report(load(path))
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
    return PreparedDocument(info, chunks, [chunk_tokens(info.title, c) for c in chunks])


def chunk_tokens(title: str, chunk: Chunk) -> list[str]:
    """What BM25 indexes for a chunk: its document title, section path and text."""
    return tokens(f"{title}\n{chunk.index_text()}")


class Skip(Exception):
    """A file left out of this batch, with the message saying why."""


class _Batch:
    """Decides, file by file, what a batch does; remembers what it already took."""

    def __init__(self, index: Index, force: bool):
        self.index, self.force = index, force
        self.by_sha: dict[str, Path] = {}
        self.by_name: dict[str, Path] = {}
        self.unscoped = index.catalog.unscoped_documents()

    def is_unchanged(self, path: Path, sha: str) -> bool:
        indexed = self.index.catalog.document_info(path.name)
        if self.force or indexed is None or indexed.sha256 != sha or path.name in self.by_name:
            return False
        if path.name in self.unscoped:
            return False  # indexed before scopes existed: prepared again (its vectors are cached)
        here = str(path.resolve())
        if indexed.source_path != here and not Path(indexed.source_path).is_file():
            self.index.catalog.set_source_path(path.name, here)  # the same file, moved: follow it
        self.take(path, sha)
        return True

    def take(self, path: Path, sha: str) -> None:
        """Only files that will be indexed claim their bytes and name; a failed file claims nothing."""
        self.by_sha[sha] = self.by_name[path.name] = path

    def check(self, path: Path, sha: str) -> None:
        """Raise Skip when this file would index the same bytes twice or take another file's id."""
        if sha in self.by_sha:
            raise Skip(f"duplicate of {self.by_sha[sha]} (same content, sha256 {sha[:12]}…); not indexed twice")
        twins = [d.doc_id for d in self.index.catalog.documents_with_sha(sha) if d.doc_id != path.name]
        if twins:
            raise Skip(f"duplicate of {twins[0]} (same content, sha256 {sha[:12]}…, already indexed); not indexed twice")
        if path.name in self.by_name:
            raise Skip(
                f"another file named {path.name} is in this batch ({self.by_name[path.name]}); document ids are "
                "file names, so only the first was indexed: rename one of them"
            )
        indexed = self.index.catalog.document_info(path.name)
        here = str(path.resolve())
        if indexed is not None and indexed.source_path not in ("", here) and Path(indexed.source_path).is_file():
            raise Skip(
                f"{path.name} is already indexed from another file, {indexed.source_path}; document ids are "
                f"file names, so this would replace it: rename one of them, or `qa-app delete {path.name}` first"
            )


def _plan(files: list[Path], index: Index, report: IngestReport, force: bool) -> list[PreparedDocument]:
    """Read, check and prepare every file; failures are recorded and touch nothing."""
    batch = _Batch(index, force)
    todo: list[PreparedDocument] = []
    for path in files:
        try:
            sha = hashlib.sha256(path.read_bytes()).hexdigest()
            if batch.is_unchanged(path, sha):
                report.unchanged.append(path.name)
                continue
            batch.check(path, sha)
            todo.append(prepare(path, index.settings, sha))
            batch.take(path, sha)
        except Skip as exc:
            report.failed[str(path)] = str(exc)
        except (LoaderError, OSError) as exc:
            report.failed[str(path)] = _kept(index, path, str(exc))
        except Exception as exc:  # noqa: BLE001 - one unreadable file must not stop the batch
            log.debug("preparing %s failed", path, exc_info=True)
            report.failed[str(path)] = _kept(index, path, f"{path.name}: could not be read ({type(exc).__name__}: {exc})")
    return todo


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
    with index.writing("ingest " + " ".join(str(p) for p in paths)[:200]):
        todo = _plan(files, index, report, force)
        _write(todo, index, report, progress)
    return report


def _write(todo: list[PreparedDocument], index: Index, report: IngestReport, progress: bool) -> None:
    total = sum(index.unit_count(d.chunks) for d in todo)
    with tqdm(total=total, unit="sentence", desc="Embedding", disable=not progress or total == 0) as bar:
        for doc in todo:
            existed = index.catalog.document_sha(doc.info.doc_id) is not None
            vectors = index.embed_chunks(doc.chunks, progress=bar)
            index.put_document(doc.info, doc.chunks, doc.tokens, vectors)
            (report.updated if existed else report.added).append(doc.info.doc_id)
            report.chunks += len(doc.chunks)
