"""How answers and documents look in the API's JSON and in a chat message's text."""
from __future__ import annotations

from typing import Any

from qa_app.models import Answer, DocumentInfo


def citations_of(answer: Answer) -> list[dict[str, Any]]:
    """The answer's citations (the document as ``doc_id``, as everywhere), each with its passage's score."""
    scores = {p.chunk.chunk_id: round(p.score, 6) for p in answer.passages}
    return [{**c.to_dict(), "score": scores.get(c.chunk_id)} for c in answer.citations]


def sources_block(answer: Answer) -> str:
    lines = []
    for c in answer.citations:
        where = " · ".join(p for p in (c.title, c.section) if p)
        lines.append(f"[{c.n}] {where}：“{c.quote}”")
    return "\n\n来源：\n" + "\n".join(lines) if lines else ""


def document_dict(d: DocumentInfo, chunks: int | None = None) -> dict[str, Any]:
    out = {"doc_id": d.doc_id, "title": d.title, "date": d.date, "year": d.year, "kind": d.kind,
           "script": d.script, "sha256": d.sha256, **d.scope.to_dict()}
    if chunks is not None:
        out["chunks"] = chunks
    return out

