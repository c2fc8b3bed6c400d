"""/v1/documents: list, upload (staged, checked, then indexed; nothing half-saved) and delete."""
from __future__ import annotations

import hashlib
import re
import threading
import unicodedata
from pathlib import Path

from fastapi import APIRouter, File, Form, UploadFile

from qa_app.answer import Assistant
from qa_app.api.errors import MIB, ApiError
from qa_app.api.limits import API_PREFIX
from qa_app.api.views import document_dict
from qa_app.index.leftovers import upload_staging
from qa_app.ingest.loaders import LoaderError, TooLarge, supported
from qa_app.manifest import update_manifest


def safe_filename(name: str | None) -> str:
    """A plain file name: no directories, no "..", no control or reserved characters."""
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable() and ch not in '<>:"|?*\x00')
    name = re.sub(r"\.{2,}", ".", name).strip().rstrip(". ")
    if not name or name.startswith("."):
        name = "upload" + name
    if len(name.encode("utf-8")) > 180:
        suffix = Path(name).suffix[:16]
        stem = name[: len(name) - len(suffix)]
        while len((stem + suffix).encode("utf-8")) > 180:
            stem = stem[:-1]
        name = stem + suffix
    return name



def _name_conflict(original: str, name: str, given: dict[str, str], existing: set[str]) -> str:
    """Why an uploaded file may not take ``name`` (its cleaned file name), or "": two files of one
    request with the same name, or a name that cleaning made equal to a document's that is already
    there ("../../report.txt", ".txt" → upload.txt). A file sent under exactly the name it is
    indexed by is a new version of it, not a conflict."""
    if name in given:
        return (f"两个文件都会保存为 {name}（{given[name]!r} 和 {original!r}）：请改名后再上传。"
                f"(Two files would both be saved as {name} ({given[name]!r} and {original!r}): rename one.)")
    if original.strip() != name and name in existing:
        return (f"{original!r} 会保存为 {name}，而 {name} 已经存在：请改名，或用 replace=true 替换它。"
                f"({original!r} would be saved as {name}, which already exists: rename it, or send replace=true.)")
    return ""



def router(assistant: Assistant) -> APIRouter:
    router = APIRouter(tags=["documents"])
    settings = assistant.settings
    index = assistant.index
    # Uploads and deletions one at a time; queries go on meanwhile (the index swaps in a new
    # snapshot only when a write is complete).
    write_lock = threading.Lock()

    @router.get(f"{API_PREFIX}/documents", summary="The indexed documents")
    def list_documents():
        counts = index.chunk_counts()
        docs = [document_dict(d, counts.get(d.doc_id, 0)) for d in index.documents()]
        return {"documents": docs, "count": len(docs), "chunks": sum(counts.values())}

    uploads_dir = Path(index.data_dir) / "uploads"
    max_file = settings.max_upload_mb * MIB

    @router.post(f"{API_PREFIX}/documents", summary="Upload and index files (.txt .md .html .pdf .docx)")
    def upload_documents(
        files: list[UploadFile] = File(description="one or more files"),
        title: str | None = Form(None, description="the document's title (one file only); default: its first line"),
        date: str | None = Form(None, description="publication date, YYYY-MM-DD"),
        place: str | None = Form(None, description="the place it is about, by name or adcode (安徽, 北京市海淀区)"),
        kind: str | None = Form(None, description="work_report, plan_report, plan, statistics, budget_report, news …"),
        reported: str | None = Form(None, description="the year(s) it reports on: 2025 or 2021-2025"),
        planned: str | None = Form(None, description="the year(s) it plans for: 2026 or 2026-2030"),
        replace: bool = Form(False, description="replace the indexed document a file's cleaned name equals"),
    ):
        from qa_app.ingest.metadata import upload_entry
        from qa_app.ingest.pipeline import ingest, prepare

        # What the uploader says about the documents overrides what is inferred from their text,
        # now and at every later re-index (it is kept in uploads/manifest.json).
        try:
            entry = upload_entry(title, date, place, kind, reported, planned)
        except ValueError as exc:
            raise ApiError(422, str(exc)) from exc
        if "title" in entry and len(files) > 1:
            raise ApiError(422, "title 只能用于单个文件。(A title can only be given with one file.)")
        index.require_writable()  # a read-only or damaged index: one clear 503 before a byte is staged
        # The staging folder is marked in use while this runs, so a start-up sweep of a killed
        # upload's leftovers (qa_app/index/leftovers.py) never takes it for one.
        with write_lock, upload_staging(index.data_dir) as staging:
            staged: dict[str, Path] = {}
            given: dict[str, str] = {}
            existing = {d.doc_id for d in index.documents()} | {p.name for p in uploads_dir.glob("*")}
            for f in files:
                name = safe_filename(f.filename)
                conflict = _name_conflict(f.filename or "", name, given, existing)
                if conflict and not (replace and name not in given):
                    raise ApiError(409, conflict, param="files", code="name_conflict", existing=name)
                given[name] = f.filename or ""
                target = staging / name
                if target.resolve().parent != staging.resolve():  # belt and braces
                    raise ApiError(400, f"文件名无效：{name!r}。(Invalid file name.)")
                size = 0
                with target.open("wb") as out:
                    while block := f.file.read(MIB):
                        size += len(block)
                        if size > max_file:
                            raise ApiError(413, f"{name}: 文件过大（上限 {settings.max_upload_mb} MB）。"
                                                f"(The file is larger than {settings.max_upload_mb} MB.)")
                        out.write(block)
                staged[name] = target
            # Check every file reads, cleans and chunks before anything is saved or indexed.
            failed: dict[str, str] = {}
            too_large: set[str] = set()
            for name, path in staged.items():
                try:
                    prepare(path, index.settings, hashlib.sha256(path.read_bytes()).hexdigest())
                except (LoaderError, OSError, UnicodeError) as exc:
                    failed[name] = str(exc)
                    if isinstance(exc, TooLarge):
                        too_large.add(name)
            if failed:
                # What a file would become (unpacked bytes, characters, chunks) over a limit is a
                # request too large, like its bytes would be; anything else a bad or unknown file.
                if any(not supported(staged[n]) for n in failed):
                    status = 415
                else:
                    status = 413 if too_large == set(failed) else 422
                raise ApiError(status, "; ".join(failed.values()), failed=failed)
            uploads_dir.mkdir(parents=True, exist_ok=True)
            saved, previous = [], {}
            for name, path in staged.items():
                final = uploads_dir / name
                if final.exists():  # kept aside until the new version is indexed
                    previous[name] = staging / f".previous-{name}"
                    final.replace(previous[name])
                path.replace(final)
                saved.append(final)
            old_entries = update_manifest(uploads_dir, {p.name: entry for p in saved}) if entry else {}
            report = ingest(saved, index, progress=False)
            failed = {Path(k).name: v for k, v in report.failed.items()}
            # A file the index refused (a duplicate, a name taken by another document) must
            # not linger in uploads/, nor replace the version that stays indexed.
            for name in failed:
                if name in previous:
                    previous[name].replace(uploads_dir / name)
                else:
                    (uploads_dir / name).unlink(missing_ok=True)
            if entry and failed:
                update_manifest(uploads_dir, {name: old_entries.get(name) for name in failed})
        by_id = {d.doc_id: d for d in index.documents()}
        body = {
            "added": report.added, "updated": report.updated, "unchanged": report.unchanged,
            "failed": failed, "chunks": report.chunks,
            "documents": [document_dict(by_id[p.name]) for p in saved if p.name in by_id],
        }
        if failed and not (report.added or report.updated or report.unchanged):
            raise ApiError(422, "; ".join(failed.values()), **body)
        return body

    @router.delete(f"{API_PREFIX}/documents/{{doc_id}}", summary="Remove a document from the index")
    def delete_document(doc_id: str):
        index.require_writable()
        with write_lock:
            doc = index.document(doc_id)
            if doc is None or not index.delete_document(doc_id):
                raise ApiError(404, f"未知文档：{doc_id}。(No document with id {doc_id!r}.)")
            # An uploaded file goes too, so nothing brings the document back by accident.
            source = Path(doc.source_path) if doc.source_path else None
            if source is not None and source.parent == uploads_dir.resolve() and source.is_file():
                source.unlink()
                update_manifest(uploads_dir, {source.name: None})
        return {"deleted": doc_id, "chunks": len(index), "documents": len(index.documents())}

    return router
