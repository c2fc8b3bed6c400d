"""``qa-app doctor``: check that the index agrees with itself and with its source files, and repair it.

The catalog (SQLite in the data folder, or PostgreSQL: ``QA_CATALOG_URL``) is the source of
truth. The checks look for what a crash, a disk problem or a hand edit could leave behind:
- a writer running now, a lock left by a killed writer, a write that never finished;
- a catalog that cannot be opened (not SQLite, cut short, emptied while vectors remain) or
  whose pages fail SQLite's own check; a data folder this process may not write to;
- leftovers of uploads that never finished (``index/leftovers.py``);
- vectors in Chroma for chunks the catalog does not list, catalog chunks without vectors,
  or a Chroma store that cannot be read at all;
- BM25 rows (rebuilt from the catalog's token lists) that differ from the catalog's chunks,
  and documents whose recorded chunk count differs from their chunks;
- documents whose source file changed since it was indexed, or is gone.

``repair=True`` fixes what can be fixed without losing anything: a damaged catalog moved
aside (``catalog.sqlite.damaged-<time>``) and rebuilt from the source files, a damaged
Chroma store moved aside and rebuilt from the catalog, upload leftovers swept, orphan vectors
deleted, missing vectors restored (from the embedding cache, else re-embedded), token lists
re-tokenised, changed files re-ingested. A document whose file is gone stays indexed (it is
reported; ``qa-app delete`` removes it). Nothing damaged is deleted. With the catalog on a
PostgreSQL server, the file checks (SQLite's page check, a lost or damaged file moved aside and
rebuilt) are the server's to do: the rest is checked alike, and a server that cannot be reached
is a finding naming it.

No check lets a storage failure escape as a traceback: a ``StorageError`` becomes a finding.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from qa_app.data_folder import CATALOG_FILE
from qa_app.index.catalog_api import catalog_class
from qa_app.text import bilingual
from qa_app.index.bm25 import BM25Index
from qa_app.index.errors import DAMAGED, READ_ONLY, StorageError, read_only
from qa_app.index.leftovers import UPLOADS_DIR, sweep_upload_leftovers
from qa_app.index.lock import describe_holder, pid_alive
from qa_app.index.recovery import SOURCES_FILE, read_sources, salvage
from qa_app.index.store import REBUILD_FLAG, Index, VectorDrift
from qa_app.index.vector_store import store_class
from qa_app.ingest.pipeline import chunk_tokens, expand_paths, ingest

ERROR, WARNING, INFO = "error", "warning", "info"

_CJK = re.compile(r"[\u4e00-\u9fff]")
# Each kind of finding in Chinese ({n}: how many items it names); the English message keeps the details.
_CHINESE = {
    "writer_running": "有写入进程正在运行，下面的差异可能是它尚未完成的工作",
    "leftover_lock": "写入锁是一个已不在运行的进程留下的，它不再持有任何东西",
    "interrupted_write": "有一次写入没有完成",
    "catalog_damaged": "索引目录数据库未通过 SQLite 完整性检查，修复会把它移到一旁并从源文件重建",
    "upload_leftovers": "有 {n} 个未完成上传的残留",
    "vectors_unchecked": "无法检查向量",
    "vectors_unreadable": "无法读取向量库",
    "orphan_vectors": "有 {n} 个向量不属于任何目录片段",
    "missing_vectors": "有 {n} 个目录片段没有向量",
    "bm25_tokens": "有 {n} 个片段的词表无法读取，BM25 无法重建",
    "bm25_rows": "BM25 的行与目录片段不一致",
    "source_changed": "有 {n} 个文档的源文件在索引后被修改",
    "chunk_count": "有 {n} 个文档的片段数与记录不符",
    "source_missing": "有 {n} 个文档的源文件已不在（仍在索引中，`qa-app delete` 可移除）",
    "unfinished_rebuild": "索引目录的重建没有完成，修复会完成它",
}


@dataclass
class Finding:
    kind: str
    severity: str  # error: the index is inconsistent (drift); warning: worth knowing; info: context
    message: str
    items: list[str] = field(default_factory=list)
    fix: Callable[[], str] | None = field(default=None, repr=False, compare=False)

    def text(self) -> str:
        """The message in the CLI's style, Chinese first: findings whose message is the storage
        layer's own are bilingual already; the others get their kind's Chinese summary."""
        if _CJK.search(self.message) or self.kind not in _CHINESE:
            return self.message
        return f"{_CHINESE[self.kind].format(n=len(self.items))}。({self.message})"

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
    catalog: str | None = None  # where a server catalog is (None: the SQLite file in data_dir)

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
            "remaining": [f.to_dict() for f in self.remaining], "notes": self.notes, "catalog": self.catalog,
        }

    def text(self) -> str:
        lines = [f"索引 {self.data_dir}：{self.documents} 个文档，{self.chunks} 个片段。"
                 f"(Index at {self.data_dir}: {self.documents} documents, {self.chunks} chunks.)"]
        if self.catalog:
            lines.append(f"· 索引目录在 {self.catalog}。(The catalog is on {self.catalog}.)")
        marks = {ERROR: "✗", WARNING: "!", INFO: "·"}
        for f in self.found:
            fixed = self.repaired and f.severity == ERROR and not any(r.kind == f.kind for r in self.remaining)
            lines.append(f"{marks[f.severity]} {f.text()}" + ("  → 已修复 repaired" if fixed else ""))
        lines += [f"  修复 repair: {n}" for n in self.notes]
        if self.ok:
            lines.append("✓ 没有偏差：目录、向量、BM25 与源文件一致。(no drift: catalog, vectors, BM25 and source files agree)")
        elif self.repaired:
            lines.append(f"修复后仍有 {len(self.drift)} 个问题（见上）。({len(self.drift)} problem(s) remain after repair, see above.)")
        else:
            lines.append(f"发现 {len(self.drift)} 个问题：运行 `qa-app doctor --repair` 修复。"
                         f"({len(self.drift)} problem(s) found: run `qa-app doctor --repair` to fix them.)")
        return "\n".join(lines)


# --- the checks: each returns findings, with a fix where one is safe ---------------------------
def check_storage(index: Index) -> list[Finding]:
    """Whether the catalog opens at all, and whether the folder can be written."""
    try:
        _ = index.catalog
    except StorageError as exc:
        damaged = exc.kind == DAMAGED
        return [Finding("catalog_damaged" if damaged else "catalog_unusable", ERROR, exc.message,
                        [str(exc.path)] if exc.path else [], fix=(lambda: "; ".join(repair_catalog(index))) if damaged else None)]
    if not index.writable:
        blocked = index.unwritable_paths()
        return [Finding("read_only", WARNING, read_only(index.data_dir, f"cannot write {blocked[0]}" if blocked else "").message,
                        [str(p) for p in blocked])]
    return []


def check_writer(index: Index) -> list[Finding]:
    out = _check_lock(index)
    if out and out[0].kind == "writer_running":
        return out
    interrupted = index.interrupted_write()
    if interrupted and not index.writer.held_here:  # while repairing, the mark is our own
        out.append(Finding(
            "interrupted_write", ERROR,
            f"a write never finished: {describe_holder(interrupted)}; documents it completed are indexed, "
            "the rest are not (the next ingest finishes the work); a repair reconciles the vectors first",
        ))
    return out


def _check_lock(index: Index) -> list[Finding]:
    try:
        holder = index.writer.holder()
        busy = index.writer.is_held_elsewhere()
    except StorageError:
        return []  # a server lock whose server is down: the catalog's finding says so
    if busy:
        return [Finding("writer_running", INFO, f"a writer is running now: {describe_holder(holder)}; "
                        "differences below may be its work in progress (a repair waits for it)")]
    if holder and not pid_alive(int(holder.get("pid", 0) or 0)):
        return [Finding("leftover_lock", WARNING, f"the writer lock was left by {describe_holder(holder)}, "
                        "which is no longer running (killed?); it holds nothing and is cleared by the next write")]
    return []


def check_catalog(index: Index) -> list[Finding]:
    problem = index.catalog.integrity_problem()
    if problem is None:
        return []
    return [Finding("catalog_damaged", ERROR, f"the catalog database {index.catalog_path} fails SQLite's integrity "
                    f"check ({problem}); a repair moves it aside and rebuilds it from the source files",
                    [str(index.catalog_path)], fix=lambda: "; ".join(repair_catalog(index)))]


def check_leftovers(index: Index) -> list[Finding]:
    found = sweep_upload_leftovers(index, remove=False)
    if not found:
        return []
    return [Finding("upload_leftovers", ERROR, f"{len(found)} leftovers of uploads that never finished (never indexed; "
                    "a repair removes the staging folders and moves the files to .upload_leftovers/): "
                    + ", ".join(found[:10]) + (" …" if len(found) > 10 else ""), found,
                    fix=lambda: _sweep_note(index))]


def _sweep_note(index: Index) -> str:
    swept = sweep_upload_leftovers(index, remove=True)
    if not swept:
        return bilingual("没有需要清理的上传残留。", "no upload leftovers to sweep")
    return bilingual(f"已清理 {len(swept)} 个上传残留。", f"swept {len(swept)} upload leftovers: " + ", ".join(swept[:10]))


def check_vectors(index: Index) -> list[Finding]:
    try:
        drift = index.vector_drift()
    except StorageError as exc:
        if exc.kind == READ_ONLY:
            return [Finding("vectors_unchecked", WARNING, f"the vectors cannot be checked: {exc.message}")]
        return [Finding("vectors_unreadable", ERROR, f"the vector store cannot be read: {exc.message}",
                        [str(exc.path)] if exc.path else [], fix=lambda: _rebuild_vectors_note(index))]
    except Exception as exc:  # noqa: BLE001 - any failure to read the store is the finding
        return [Finding("vectors_unreadable", ERROR, f"the vector store cannot be read ({type(exc).__name__}: {exc})",
                        fix=lambda: _rebuild_vectors_note(index))]
    fix = lambda: _drift_note(index.reconcile())
    out = []
    if drift.orphans:
        out.append(Finding("orphan_vectors", ERROR, f"{len(drift.orphans)} vectors in Chroma belong to no catalog chunk",
                           drift.orphans, fix=fix))
    if drift.missing:
        out.append(Finding("missing_vectors", ERROR, f"{len(drift.missing)} catalog chunks have no vector",
                           drift.missing, fix=fix))
    return out


def _drift_note(drift: VectorDrift) -> str:
    return bilingual(f"删除了 {len(drift.orphans)} 个孤立向量，补回了 {len(drift.missing)} 个缺失向量。",
                     f"deleted {len(drift.orphans)} orphan vectors, restored {len(drift.missing)} missing vectors")


def _rebuild_vectors_note(index: Index) -> str:
    before = len(index.moved_aside)
    count = index.rebuild_vectors()
    moved = index.moved_aside[before:]
    return bilingual((f"已将损坏的向量库移到 {moved[0]}，并" if moved else "") + f"从目录重建了向量库（{count} 个向量）。",
                     (f"moved the damaged vector store aside to {moved[0]} and " if moved else "")
                     + f"rebuilt the vector store with {count} vectors from the catalog")


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
    return bilingual(f"重新分词 {len(fresh)} 个片段。", f"re-tokenised {len(fresh)} chunks")


def _reingest(index: Index, doc_ids: list[str], force: bool) -> str:
    paths = [Path(d.source_path) for d in index.catalog.documents() if d.doc_id in set(doc_ids)]
    report = ingest(paths, index, progress=False, force=force)
    failed = "; ".join(report.failed.values())
    return bilingual(f"重新索引了 {len(paths)} 个文件。",
                     f"re-ingested {len(paths)} files: {report.summary()}" + (f" ({failed})" if failed else ""))


# --- rebuilding a lost catalog ----------------------------------------------------------------
def repair_catalog(index: Index) -> list[str]:
    """Move the damaged catalog aside and rebuild it from the source files (holding the writer lock).

    Which documents were indexed, and from which files: ``sources.json``, what can still be
    read from the damaged file, and the document ids of the stored vectors; their files are
    looked for where they were, then in the seeds and ``uploads/`` (with its manifest
    metadata). When nothing says, the seeds and every upload are indexed. Vectors come from
    the embedding cache when it can be read from the damaged file, else everything is
    embedded again.
    """
    notes: list[str] = []
    try:
        in_vectors: set[str] | None = index.vectors.doc_ids()
    except StorageError:
        in_vectors = None
    recorded = read_sources(index.data_dir)
    aside = index.replace_catalog()
    if aside is not None:
        notes.append(bilingual(f"已将损坏的目录移到 {aside}（保留，未删除）。", f"moved the damaged catalog aside to {aside} (kept, not deleted)"))
        found = salvage(aside, into=index.catalog)
    else:
        found = None
    cached = index.catalog.count_cached()
    if found is not None and found.problems:
        notes.append(bilingual("损坏的目录中的问题：", "from the damaged catalog: " + "; ".join(found.problems)))
    notes.append(bilingual(f"从损坏的目录中保留了 {cached} 个缓存的句向量。", f"kept {cached} cached sentence vectors from the damaged catalog")
                 if cached else
                 bilingual("向量缓存在损坏的目录中，无法读取：所有句子将重新计算向量。",
                           "the embedding cache was in the damaged catalog and could not be read: every sentence is embedded again"))
    paths, lost, guessed = _rebuild_sources(index, found.documents if found else {}, recorded, in_vectors)
    if guessed:
        notes.append(bilingual("没有记录索引过哪些文档：将索引内置报告和所有上传文件。",
                               "nothing recorded which documents were indexed: indexing the seeds and every upload"))
    if index.vector_store_damaged():
        notes.append(_rebuild_vectors_note(index))
    index.catalog.set_flag(REBUILD_FLAG, json.dumps({"paths": [str(p) for p in paths], "lost": lost,
                                                     "aside": str(aside) if aside else None}, ensure_ascii=False))
    notes += _finish_rebuild(index, cached)
    return notes


def _finish_rebuild(index: Index, cached: int | None = None) -> list[str]:
    """Ingest what the rebuild plan lists (files already indexed are skipped), drop the vectors
    no rebuilt document has, then clear the plan."""
    plan = index.unfinished_rebuild() or {}
    paths = [Path(p) for p in plan.get("paths", [])]
    gone = [p for p in paths if not p.is_file()]
    cached = index.catalog.count_cached() if cached is None else cached
    report = ingest([p for p in paths if p.is_file()], index, progress=False)
    embedded = index.catalog.count_cached() - cached
    notes = [bilingual(f"已从 {len(paths) - len(gone)} 个源文件重建目录。",
                       f"rebuilt the catalog from {len(paths) - len(gone)} source files: {report.summary()}"
                       + (f"; {embedded} sentences embedded again" if embedded else "; all vectors from the embedding cache"))]
    if report.failed:
        notes.append(bilingual("以下文件无法索引：", "could not index: " + "; ".join(f"{Path(k).name}: {v}" for k, v in report.failed.items())))
    drift = index.reconcile()
    if drift.orphans:
        notes.append(bilingual(f"删除了 {len(drift.orphans)} 个不属于任何重建文档的向量。", f"deleted {len(drift.orphans)} vectors no rebuilt document has"))
    lost = list(plan.get("lost", [])) + [p.name for p in gone]
    if lost:
        notes.append(bilingual(
            f"{len(lost)} 个文档的源文件已不在，无法重建：请在它们现在的位置重新索引。",
            f"{len(lost)} documents could not be rebuilt, their source files are gone: " + ", ".join(lost[:20])
            + (" …" if len(lost) > 20 else "") + (f" (see {plan['aside']})" if plan.get("aside") else "")
            + "; ingest them again where they are now"))
    index.catalog.set_flag(REBUILD_FLAG, None)
    return notes


def check_rebuild(index: Index) -> list[Finding]:
    plan = index.unfinished_rebuild()
    if plan is None:
        return []
    paths = plan.get("paths", [])
    return [Finding("unfinished_rebuild", ERROR, f"a rebuild of the catalog never finished ({len(paths)} source files "
                    "to index); a repair finishes it", paths, fix=lambda: "; ".join(_finish_rebuild(index)))]


def _rebuild_sources(index: Index, salvaged: dict[str, str], recorded: dict[str, str],
                     in_vectors: set[str] | None) -> tuple[list[Path], list[str], bool]:
    """(files to ingest, document ids whose file is nowhere, whether nothing said what was indexed)."""
    folders = [Path(index.settings.seeds_dir), index.data_dir / UPLOADS_DIR]
    files, _ = expand_paths([f for f in folders if f.is_dir()])
    nearby: dict[str, Path] = {}
    for f in files:
        nearby.setdefault(f.name, f)
    known = {**recorded, **salvaged}
    wanted = set(known) | (in_vectors or set())
    if not wanted:
        return sorted(nearby.values()), [], True
    paths, lost = [], []
    for doc_id in sorted(wanted):
        source = Path(known[doc_id]) if doc_id in known else None
        if source is not None and source.is_file():
            paths.append(source)
        elif doc_id in nearby:
            paths.append(nearby[doc_id])
        else:
            lost.append(doc_id)
    return paths, lost, False


# In repair order: the catalog's own content first, since restoring vectors reads it; an unfinished
# rebuild before upload leftovers (it re-indexes uploads), and those early, so an upload that
# starts waiting for the repair's lock is not mistaken for one.
CHECKS = (check_writer, check_catalog, check_rebuild, check_leftovers, check_bm25, check_vectors, check_sources)


# --- running them ---------------------------------------------------------------------------
def _examine(index: Index) -> list[Finding]:
    out = check_storage(index)
    if out and out[0].kind.startswith("catalog_"):
        return _check_lock(index) + out  # nothing else can be checked without the catalog
    for check in CHECKS:
        try:
            found = check(index)
        except StorageError as exc:
            found = [Finding("storage", ERROR, exc.message, [str(exc.path)] if exc.path else [])]
        out += found
        if any(f.kind == "catalog_damaged" for f in found) or any(f.kind == "storage" for f in found):
            break  # the other checks read what is damaged
    return out


def _counts(index: Index) -> tuple[int, int]:
    try:
        return len(index.catalog.documents()), index.catalog.count_chunks()
    except StorageError:
        return 0, 0


def _catalog_damage(index: Index) -> bool:
    """Whether the catalog is damaged (a StorageError for other failures a repair cannot mend)."""
    try:
        return index.catalog.integrity_problem() is not None
    except StorageError as exc:
        if exc.kind != DAMAGED:
            raise
        return True


def catalog_missing(settings) -> Finding | None:
    """Without its catalog file a folder is either not an index at all (nothing to check: opening
    it would create one) or an index whose catalog was lost (its vectors or its record of sources
    remain): said without creating anything, and rebuilt by a repair like a damaged one."""
    data_dir = settings.resolved_data_dir()
    backend = catalog_class(settings)
    if backend.exists(settings, data_dir):
        return None
    if backend.remote:  # a server without the tables: nothing was indexed there (opening creates them)
        return Finding("no_index", INFO, "服务器上的索引目录还是空的，请运行 `qa-app ingest`。"
                       "(Nothing is indexed in the server catalog yet: run `qa-app ingest`.)")
    folder = store_class(settings.vector_store).local_folder(settings)
    remains = [str(p) for p in (folder, data_dir / SOURCES_FILE) if p is not None and p.exists()]
    if not remains:
        return Finding("no_index", INFO, f"{data_dir} 中还没有索引，请运行 `qa-app ingest`。"
                       f"(Nothing is indexed at {data_dir} yet: run `qa-app ingest`.)")
    return Finding("catalog_missing", ERROR, f"索引目录 {data_dir / CATALOG_FILE} 不见了，索引的其他文件还在；修复会从源文件重建它。"
                   f"(The catalog {data_dir / CATALOG_FILE} is missing while the index's other files remain "
                   f"({', '.join(remains)}); a repair rebuilds it from the source files.)", remains)


def run_doctor(settings, repair: bool, *, index: Index | None = None) -> DoctorReport:
    """Check the index at ``settings``' data folder; with ``repair``, fix what can be fixed and check again.

    Checking creates nothing: a folder without a catalog is reported as it is. A repair raises a
    StorageError when the folder is read-only (nothing can be fixed there)."""
    missing = catalog_missing(settings) if index is None else None
    if missing is not None and (not repair or missing.kind == "no_index"):
        return DoctorReport(str(settings.resolved_data_dir()), 0, 0, [missing])
    index = Index(settings) if index is None else index  # (an Index with no chunks is falsy)
    found = [missing] if missing is not None else _examine(index)
    report = DoctorReport(str(index.data_dir), *_counts(index), found,
                          catalog=index.catalog_where() if index.catalog_path is None else None)
    if not repair:
        return report
    blocked = index.unwritable_paths()
    if blocked:
        raise read_only(index.data_dir, f"cannot write {blocked[0]}; nothing was repaired")
    with index.writer.hold("doctor --repair", on_wait=report.notes.append):
        # What every other repair reads is mended first, each as its own marked write.
        if missing is not None or _catalog_damage(index):
            report.notes.extend(repair_catalog(index))
        if index.vector_store_damaged():
            report.notes.append(_rebuild_vectors_note(index))
        with index.writing("doctor --repair", on_wait=report.notes.append) as healed:
            if healed is not None:
                report.notes.append(bilingual("已完成中断的写入：", "finished the interrupted write") + " " + _drift_note(healed))
            # Re-examine under the lock: a writer that was running may have finished (or fixed) things.
            done: list[Callable] = []
            for finding in _examine(index):
                if finding.fix is not None and finding.severity == ERROR and finding.fix not in done:
                    done.append(finding.fix)
                    report.notes.append(finding.fix())
    report.repaired = True
    report.remaining = _examine(index)
    report.documents, report.chunks = _counts(index)
    return report
