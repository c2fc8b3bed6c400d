"""The data that flows between the stages: documents, chunks, passages, answers."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from qa_app.text import normalize


@dataclass(frozen=True)
class Scope:
    """Where and when a document speaks for: its place and the years it reports on and plans for."""

    place_code: str = ""  # adcode of the place (qa_app.places); "" when the document has none
    place: str = ""  # its full name for display: 北京市海淀区
    level: str = ""  # country | province | city | district
    reported: tuple[int, int] | None = None  # first and last year reported on
    planned: tuple[int, int] | None = None  # first and last year planned for

    def to_dict(self) -> dict[str, Any]:
        return {
            "place_code": self.place_code,
            "place": self.place,
            "level": self.level,
            "reported": list(self.reported) if self.reported else None,
            "planned": list(self.planned) if self.planned else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "Scope":
        data = data or {}
        span = lambda v: (int(v[0]), int(v[-1])) if v else None  # noqa: E731
        return cls(
            str(data.get("place_code") or ""), str(data.get("place") or ""), str(data.get("level") or ""),
            span(data.get("reported")), span(data.get("planned")),
        )


@dataclass(frozen=True)
class DocumentInfo:
    doc_id: str  # the file name; stable across re-ingests
    title: str
    date: str = ""  # ISO date, may be empty
    year: int | None = None
    kind: str = ""
    script: str = "simplified"
    source_path: str = ""
    sha256: str = ""
    scope: Scope = field(default_factory=Scope)

    def years(self) -> set[int]:
        """The years the document speaks for when a passage names none: those it reports on,
        else its year."""
        if self.scope.reported:
            return set(range(self.scope.reported[0], self.scope.reported[1] + 1))
        return {self.year} if self.year else set()


@dataclass(frozen=True)
class Chunk:
    chunk_id: str
    doc_id: str
    ordinal: int
    text: str  # original script, cleaned, for display and quoting
    norm: str  # normalised (Simplified, half-width) for matching
    section: str  # "第二章 … > 第一节 …", in the document's own script
    start: int  # offsets into the document's cleaned text
    end: int
    kind: str = "text"  # "text" | "table"

    def index_text(self) -> str:
        """What BM25 and the embedder see: the section path gives a chunk its context."""
        return f"{normalize(self.section)}\n{self.norm}" if self.section else self.norm


@dataclass
class Passage:
    """A retrieved chunk with its document and scores."""

    chunk: Chunk
    doc: DocumentInfo
    score: float
    rank: int = 0
    scores: dict[str, float] = field(default_factory=dict)
    # The question's similarity with each sentence of the chunk (by its normalised text), from
    # the embedding model; empty when the index has no sentence vectors.
    sentence_sims: dict[str, float] = field(default_factory=dict)
    # The years its report gives a heading of their own (``text.headed_years``).
    headed_years: frozenset[int] = frozenset()

    def to_dict(self) -> dict[str, Any]:
        return {
            "chunk_id": self.chunk.chunk_id,
            "doc_id": self.doc.doc_id,
            "title": self.doc.title,
            "date": self.doc.date,
            "place": self.doc.scope.place,
            "kind": self.doc.kind,
            "section": self.chunk.section,
            "text": self.chunk.text,
            "score": round(self.score, 6),
            "rank": self.rank,
        }


@dataclass(frozen=True)
class Citation:
    n: int  # the [n] marker used in the answer text
    chunk_id: str
    doc_id: str
    title: str
    date: str
    section: str
    quote: str  # the exact words used from the passage (original script)
    place: str = ""  # the document's place (its scope), for display

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Answer:
    question: str
    text: str
    citations: list[Citation] = field(default_factory=list)
    passages: list[Passage] = field(default_factory=list)
    refused: bool = False
    grounded: bool = True
    reasons: list[str] = field(default_factory=list)
    backend: str = "extractive"
    timings: dict[str, float] = field(default_factory=dict)

    def sources_text(self) -> str:
        lines = []
        for c in self.citations:
            place = c.place if c.place and c.place not in c.title and c.place[-3:] not in c.title else ""
            where = " · ".join(p for p in (c.title, place, c.date, c.section) if p)
            lines.append(f"[{c.n}] {where}\n    “{c.quote}”")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.text,
            "citations": [c.to_dict() for c in self.citations],
            "refused": self.refused,
            "grounded": self.grounded,
            "reasons": self.reasons,
            "backend": self.backend,
            "timings": {k: round(v, 2) for k, v in self.timings.items()},
            "passages": [p.to_dict() for p in self.passages],
        }
