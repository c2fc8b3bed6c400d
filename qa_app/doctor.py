"""``qa-app doctor``: check that the index agrees with itself and with its source files, and repair it.

The catalog (SQLite) is the source of truth. The checks look for what a crash, a disk
problem or a hand edit could leave behind:
- a writer running now, a lock left by a killed writer, a write that never finished;
- SQLite pages that fail the database's own check;
- vectors in Chroma for chunks the catalog does not list, catalog chunks without vectors,
  or a Chroma store that cannot be read at all;
- BM25 rows (rebuilt from the catalog's token lists) that differ from the catalog's chunks,
  and documents whose recorded chunk count differs from their chunks;
- documents whose source file changed since it was indexed, or is gone.

``repair=True`` fixes what can be fixed without losing anything: orphan vectors deleted,
missing vectors restored (from the embedding cache, else re-embedded), a damaged Chroma
store rebuilt from the catalog, token lists re-tokenised, changed files re-ingested. A
document whose file is gone stays indexed (it is reported; ``qa-app delete`` removes it).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from qa_app.index.bm25 import BM25Index
from qa_app.index.lock import describe_holder, pid_alive
from qa_app.index.store import Index, VectorDrift
from qa_app.ingest.pipeline import chunk_tokens, ingest

ERROR, WARNING, INFO = "error", "warning", "info"


@dataclass
class Finding:
    kind: str
    severity: str  # error: the index is inconsistent (drift); warning: worth knowing; info: context
    message: str
    items: list[str] = field(default_factory=list)
    fix: Optional[Callable[[], str]] = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "severity": self.severity, "message": self.message,
                "items": self.items[:50], "count": len(self.items), "repairable": self.fix is not None}


@dataclass
class DoctorReport:
    data_dir: str
    documents: int
    chunks: int
    found: list[Finding]
    repaired: bool = False
    remaining: list[Finding] = field(default_factory=list)  # after repair: what is still wrong
    notes: list[str] = field(default_factory=list)  # what the repair did

    @property
    def drift(self) -> list[Finding]:
        """Errors still standing: those found, or after a repair those that remain."""
        current = self.remaining if self.repaired else self.found
        return [f for f in current if f.severity == ERROR]

    @property
    def ok(self) -> bool:
        return not self.drift

    def to_dict(self) -> dict:
        return {
            "data_dir": self.data_dir, "documents": self.documents, "chunks": self.chunks, "ok": self.ok,
            "repaired": self.repaired, "found": [f.to_dict() for f in self.found],
            "remaining": [f.to_dict() for f in self.remaining], "notes": self.notes,
        }

    def text(self) -> str:
        lines = [f"index at {self.data_dir}: {self.documents} documents, {self.chunks} chunks"]
        marks = {ERROR: "✗", WARNING: "!", INFO: "·"}
        for f in self.found:
            fixed = self.repaired and f.severity == ERROR and not any(r.kind == f.kind for r in self.remaining)
            lines.append(f"{marks[f.severity]} {f.message}" + ("  → repaired" if fixed else ""))
        lines += [f"  repair: {n}" for n in self.notes]
        if self.ok:
            lines.append("✓ no drift: catalog, vectors, BM25 and source files agree")
        elif self.repaired:
            lines.append(f"{len(self.drift)} problem(s) remain after repair (see above)")
        else:
            lines.append(f"{len(self.drift)} problem(s) found: run `qa-app doctor --repair` to fix them")
        return "\n".join(lines)


# --- the checks: each returns findings, with a fix where one is safe ---------------------------
def check_writer(index: Index) -> list[Finding]:
    holder = index.writer.holder()
    if index.writer.is_held_elsewhere():
        return [Finding("writer_running", INFO, f"a writer is running now: {describe_holder(holder)}; "
                        "differences below may be its work in progress (a repair waits for it)")]
    out = []
    if holder and not pid_alive(int(holder.get("pid", 0) or 0)):
        out.append(Finding("leftover_lock", WARNING, f"the writer lock was left by {describe_holder(holder)}, "
                           "which is no longer running (killed?); it holds nothing and is cleared by the next write"))
    interrupted = index.interrupted_write()
    if interrupted and not index.writer.held_here:  # while repairing, the mark is our own
        out.append(Finding(
            "interrupted_write", ERROR,
            f"a write never finished: {describe_holder(interrupted)}; documents it completed are indexed, "
            "the rest are not (the next ingest finishes the work); a repair reconciles the vectors first",
        ))
    return out


def check_catalog(index: Index) -> list[Finding]:
    problem = index.catalog.integrity_problem()
    if problem is None:
        return []
    return [Finding("catalog_damaged", ERROR, f"the catalog database fails SQLite's integrity check ({problem}); "
                    "move the data folder aside and re-ingest")]


def check_vectors(index: Index) -> list[Finding]:
    try:
        drift = index.vector_drift()
    except Exception as exc:  # noqa: BLE001 - any failure to read the store is the finding
        return [Finding("vectors_unreadable", ERROR, f"the vector store cannot be read ({type(exc).__name__}: {exc})",
                        fix=lambda: f"rebuilt the vector store with {index.rebuild_vectors()} vectors")]
    fix = lambda: _drift_note(index.reconcile())  # noqa: E731 - one fix shared by both findings, run once
    out = []
    if drift.orphans:
        out.append(Finding("orphan_vectors", ERROR, f"{len(drift.orphans)} vectors in Chroma belong to no catalog chunk",
                           drift.orphans, fix=fix))
    if drift.missing:
        out.append(Finding("missing_vectors", ERROR, f"{len(drift.missing)} catalog chunks have no vector",
                           drift.missing, fix=fix))
    return out


def _drift_note(drift: VectorDrift) -> str:
    return f"deleted {len(drift.orphans)} orphan vectors, restored {len(drift.missing)} missing vectors"


def check_bm25(index: Index) -> list[Finding]:
    bad = index.catalog.unreadable_tokens()
    if bad:
        return [Finding("bm25_tokens", ERROR, f"{len(bad)} chunks have unreadable token lists, so BM25 cannot be rebuilt",
                        bad, fix=lambda: _retokenise(index, bad))]
    chunks, token_lists = index.catalog.all_chunks()
    bm25 = BM25Index.build([c.chunk_id for c in chunks], token_lists)
    listed = set(index.catalog.chunk_ids())
    if set(bm25.ids) != listed or len(bm25) != len(listed):
        return [Finding("bm25_rows", ERROR, f"BM25 has {len(bm25)} rows for {len(listed)} catalog chunks",
                        sorted(set(bm25.ids) ^ listed))]
    return []


def check_sources(index: Index) -> list[Finding]:
    changed, gone, miscounted = [], [], []
    mismatches = index.catalog.chunk_count_mismatches()
    for doc in index.catalog.documents():
        source = Path(doc.source_path) if doc.source_path else None
        if source is None or not source.is_file():
            gone.append(doc.doc_id)
        elif _sha256(source) != doc.sha256:
            changed.append(doc.doc_id)
        if doc.doc_id in mismatches:
            miscounted.append(doc.doc_id)
    out = []
    if changed:
        out.append(Finding("source_changed", ERROR, f"{len(changed)} documents changed on disk since they were indexed: "
                           + ", ".join(changed), changed, fix=lambda: _reingest(index, changed, force=False)))
    if miscounted:
        out.append(Finding("chunk_count", ERROR, f"{len(miscounted)} documents have a different number of chunks than "
                           "recorded: " + ", ".join(miscounted), miscounted,
                           fix=lambda: _reingest(index, miscounted, force=True)))
    if gone:
        out.append(Finding("source_missing", WARNING, f"{len(gone)} documents' source files are gone (still indexed; "
                           "`qa-app delete` removes them): " + ", ".join(gone), gone))
    return out


# In repair order: the catalog's own content first, since restoring vectors reads it.
CHECKS = (check_writer, check_catalog, check_bm25, check_vectors, check_sources)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _retokenise(index: Index, chunk_ids: list[str]) -> str:
    titles = {d.doc_id: d.title for d in index.catalog.documents()}
    fresh = {c.chunk_id: chunk_tokens(titles.get(c.doc_id, ""), c) for c in index.catalog.chunks(chunk_ids)}
    index.catalog.set_tokens(fresh)
    return f"re-tokenised {len(fresh)} chunks"


def _reingest(index: Index, doc_ids: list[str], force: bool) -> str:
    paths = [Path(d.source_path) for d in index.catalog.documents() if d.doc_id in set(doc_ids)]
    report = ingest(paths, index, progress=False, force=force)
    failed = "; ".join(report.failed.values())
    return f"re-ingested {len(paths)} files: {report.summary()}" + (f" ({failed})" if failed else "")


# --- running them ---------------------------------------------------------------------------
def _examine(index: Index) -> list[Finding]:
    return [finding for check in CHECKS for finding in check(index)]


def run_doctor(settings, repair: bool, *, index: Optional[Index] = None) -> DoctorReport:
    """Check the index at ``settings``' data folder; with ``repair``, fix what can be fixed and check again."""
    index = Index(settings) if index is None else index  # (an Index with no chunks is falsy)
    found = _examine(index)
    report = DoctorReport(str(index.data_dir), len(index.catalog.documents()), index.catalog.count_chunks(), found)
    if not repair:
        return report
    with index.writing("doctor --repair", on_wait=report.notes.append) as healed:
        if healed is not None:
            report.notes.append("finished the interrupted write: " + _drift_note(healed))
        # Re-examine under the lock: a writer that was running may have finished (or fixed) things.
        done: list[Callable] = []
        for finding in _examine(index):
            if finding.fix is not None and finding.severity == ERROR and finding.fix not in done:
                done.append(finding.fix)
                report.notes.append(finding.fix())
    report.repaired = True
    report.remaining = _examine(index)
    report.documents, report.chunks = len(index.catalog.documents()), index.catalog.count_chunks()
    return report
