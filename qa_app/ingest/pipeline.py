"""Ingestion: files → cleaned text → chunks → index, incrementally.

A file whose bytes are unchanged since the last ingest is skipped; a changed file
replaces its old chunks; a file that cannot be read is reported and leaves the index
as it was, while the rest of the batch goes on.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from qa_app.index.store import Index
from qa_app.index.tokenize import tokens
from qa_app.ingest.chunk import chunk_text
from qa_app.ingest.clean import clean_text
from qa_app.ingest.loaders import LoaderError, load, supported
from qa_app.ingest.metadata import document_metadata
from qa_app.models import Chunk, DocumentInfo


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


def expand_paths(paths: list[Path]) -> tuple[list[Path], dict[str, str]]:
    """Files to ingest (folders walked recursively) and the paths that are not usable."""
    files: list[Path] = []
    problems: dict[str, str] = {}
    for p in paths:
        if p.is_dir():
            files.extend(sorted(f for f in p.rglob("*") if f.is_file() and supported(f)))
        elif p.is_file():
            files.append(p)
        else:
            problems[str(p)] = "no such file or folder"
    return files, problems


def prepare(path: Path, settings, sha256: str) -> PreparedDocument:
    """Load, clean, chunk and tokenise one file (no index access)."""
    cleaned = clean_text(load(path))
    meta = document_metadata(path, cleaned)
    info = DocumentInfo(
        doc_id=path.name,
        title=str(meta.get("title") or path.stem),
        date=str(meta.get("date") or ""),
        year=int(meta["year"]) if meta.get("year") else None,
        kind=str(meta.get("kind") or ""),
        script=str(meta.get("script") or "simplified"),
        source_path=str(path.resolve()),
        sha256=sha256,
    )
    chunks = chunk_text(info.doc_id, cleaned, target=settings.chunk_chars, max_chars=settings.chunk_max_chars)
    if not chunks:
        raise LoaderError(f"{path.name}: no text left after cleaning")
    return PreparedDocument(info, chunks, [tokens(f"{info.title}\n{c.index_text()}") for c in chunks])


def ingest(paths: list[Path], index: Index, *, progress: bool = True) -> IngestReport:
    report = IngestReport()
    files, problems = expand_paths(paths)
    report.failed.update(problems)
    todo: list[PreparedDocument] = []
    for path in files:
        try:
            sha = hashlib.sha256(path.read_bytes()).hexdigest()
            if index.catalog.document_sha(path.name) == sha:
                report.unchanged.append(path.name)
                continue
            todo.append(prepare(path, index.settings, sha))
        except (LoaderError, OSError) as exc:
            report.failed[str(path)] = str(exc)
    total = sum(len(d.chunks) for d in todo)
    with tqdm(total=total, unit="chunk", desc="Embedding", disable=not progress or total == 0) as bar:
        for doc in todo:
            existed = index.catalog.document_sha(doc.info.doc_id) is not None
            texts = [c.index_text() for c in doc.chunks]
            vectors = index.embed_texts(texts, progress=bar)
            index.put_document(doc.info, doc.chunks, doc.tokens, vectors)
            (report.updated if existed else report.added).append(doc.info.doc_id)
            report.chunks += len(doc.chunks)
    return report
