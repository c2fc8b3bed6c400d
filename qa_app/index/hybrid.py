"""Hybrid retrieval: BM25 and dense candidates fused by a weighted sum of normalised scores
(reciprocal rank fusion as an option).

Weights lean on BM25 for Chinese questions (exact terms and figures matter) and on the
dense side for English questions, whose words the lexical index cannot see.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from qa_app.index.query import Query
from qa_app.index.store import Index, Snapshot
from qa_app.models import Passage
from qa_app.text import normalize, year_scope


@dataclass(frozen=True)
class Filters:
    doc_ids: frozenset[str] | None = None
    years: frozenset[int] | None = None

    def resolve(self, snap: Snapshot) -> set[str] | None:
        """The document ids the filters allow (None: all)."""
        if self.doc_ids is None and self.years is None:
            return None
        allowed = set(snap.docs)
        if self.doc_ids is not None:
            allowed &= set(self.doc_ids)
        if self.years is not None:
            allowed &= {d.doc_id for d in snap.docs.values() if d.year in self.years}
        return allowed


def normalised(hits: list[tuple[str, float]]) -> dict[str, float]:
    """Min-max scale scores to [0, 1] over one candidate list."""
    if not hits:
        return {}
    hi, lo = max(v for _, v in hits), min(v for _, v in hits)
    span = hi - lo
    return {cid: (v - lo) / span if span > 1e-9 else 1.0 for cid, v in hits}


def score_fusion(rankings: list[tuple[list[tuple[str, float]], float]]) -> dict[str, float]:
    """Weighted sum of min-max normalised scores: keeps BM25's margins that RRF flattens."""
    fused: dict[str, float] = {}
    for hits, weight in rankings:
        for cid, v in normalised(hits).items():
            fused[cid] = fused.get(cid, 0.0) + weight * v
    return fused


def rrf(rankings: list[tuple[list[str], float]], k: int) -> dict[str, float]:
    fused: dict[str, float] = {}
    for ids, weight in rankings:
        for rank, cid in enumerate(ids):
            fused[cid] = fused.get(cid, 0.0) + weight / (k + rank + 1)
    return fused


class HybridSearcher:
    def __init__(self, index: Index):
        self.index = index
        self.settings = index.settings

    def search(self, question: str | Query, k: int | None = None, filters: Filters | None = None) -> list[Passage]:
        s = self.settings
        query = question if isinstance(question, Query) else Query.parse(question)
        k = k or s.top_k
        snap = self.index.snapshot()  # one consistent view for the whole search
        allowed = (filters or Filters()).resolve(snap)
        if allowed is not None and not allowed:
            return []
        lexical = snap.bm25.search(query.bm25_tokens(), s.candidates, snap.allowed_mask(allowed))
        dense_weight = s.dense_weight_latin if query.latin else s.dense_weight
        dense = self.index.dense_search(query.dense_text, s.candidates, allowed, snap) if dense_weight > 0 else []
        if s.fusion == "rrf":
            fused = rrf([([c for c, _ in lexical], s.bm25_weight), ([c for c, _ in dense], dense_weight)], s.rrf_k)
        else:
            fused = score_fusion([(lexical, s.bm25_weight), (dense, dense_weight)])
        if query.years and s.year_boost:
            self._boost_years(snap, fused, query.years)
        if s.title_boost:
            self._boost_titles(snap, fused, query)
        lex_scores, dense_scores = dict(lexical), dict(dense)
        ranked = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        passages = []
        for rank, (cid, score) in enumerate(ranked, 1):
            chunk = snap.chunks.get(cid)
            doc = snap.docs.get(chunk.doc_id) if chunk else None
            if chunk is None or doc is None:
                continue
            passages.append(
                Passage(chunk, doc, score, rank, {"bm25": lex_scores.get(cid, 0.0), "dense": dense_scores.get(cid, 0.0)})
            )
        return passages


    def _boost_years(self, snap: Snapshot, fused: dict[str, float], years: list[int]) -> None:
        """Prefer chunks about the asked year: they name it, or their section or report is about it."""
        for cid in fused:
            chunk = snap.chunks.get(cid)
            doc = snap.docs.get(chunk.doc_id) if chunk else None
            if chunk is not None and doc is not None and year_scope(chunk.norm, chunk.section, doc.year, set(years)):
                fused[cid] *= 1.0 + self.settings.year_boost


    def _boost_titles(self, snap: Snapshot, fused: dict[str, float], query: Query) -> None:
        """Prefer the reports a question names ("政府工作报告", "十三五规划")."""
        terms = query.title_terms()
        named = {d.doc_id for d in snap.docs.values() if any(t in normalize(d.title).lower() for t in terms)}
        if not named or len(named) == len(snap.docs):
            return
        for cid in fused:
            chunk = snap.chunks.get(cid)
            if chunk is not None and chunk.doc_id in named:
                fused[cid] *= 1.0 + self.settings.title_boost


class HybridRetriever(BaseRetriever):
    """The hybrid search as a LangChain retriever (for chains and tools built on LangChain)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    searcher: Any
    k: int = 5
    filters: Filters | None = None

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return [
            Document(
                page_content=p.chunk.text,
                metadata={**p.to_dict(), "text": None},
                id=p.chunk.chunk_id,
            )
            for p in self.searcher.search(query, self.k, self.filters)
        ]
