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

from qa_app import deadline
from qa_app.index import fusion
from qa_app.index.query import Query
from qa_app.index.sentences import units
from qa_app.index.scope import QuestionScope, docs_for_place
from qa_app.index.scope import resolve as resolve_scope
from qa_app.index.store import Index, Snapshot
from qa_app.models import Passage
from qa_app.places import gazetteer
from qa_app.text import normalize, year_scope


class FilterError(ValueError):
    """A filter naming a document or a place that the index does not know."""


def make_filters(docs=None, years=None, places=None, kinds=None, *, known_docs=()) -> Filters | None:
    """Filters from what a person asked for (the CLI's flags, the API's body, the page's menus), or
    None when nothing was. A document id the index lacks, or a place nobody can find, is an error
    rather than a filter that silently matches nothing."""
    if not docs and not years and not places and not kinds:
        return None
    unknown = sorted(set(docs or ()) - set(known_docs))
    if unknown:
        raise FilterError(f"未知文档：{', '.join(unknown)}。(Unknown document id(s): {', '.join(unknown)}; "
                          "see GET /v1/documents or `qa-app documents`.)")
    lost = [p for p in places or () if gazetteer().get(p) is None and gazetteer().resolve(p) is None]
    if lost:
        raise FilterError(f"未知地名：{', '.join(lost)}。(Unknown place(s): {', '.join(lost)}.)")
    return Filters(
        doc_ids=frozenset(docs) if docs else None,
        years=frozenset(int(y) for y in years) if years else None,
        places=frozenset(places) if places else None,
        kinds=frozenset(kinds) if kinds else None,
    )


@dataclass(frozen=True)
class Filters:
    doc_ids: frozenset[str] | None = None
    years: frozenset[int] | None = None
    places: frozenset[str] | None = None  # place names (安徽, 北京市海淀区) or adcodes
    kinds: frozenset[str] | None = None  # document kinds (work_report, plan_report …)
    # Chunks kept out as if never indexed (an eval asking with the evidence withheld).
    without_chunks: frozenset[str] = frozenset()

    def resolve(self, snap: Snapshot) -> set[str] | None:
        """The document ids the filters allow (None: all)."""
        if self.doc_ids is None and self.years is None and self.places is None and self.kinds is None:
            return None
        allowed = set(snap.docs)
        docs = list(snap.docs.values())
        if self.doc_ids is not None:
            allowed &= set(self.doc_ids)
        if self.years is not None:
            allowed &= {d.doc_id for d in docs if d.year in self.years}
        if self.places is not None:
            allowed &= {doc_id for name in self.places for doc_id in docs_for_place(name, docs)}
        if self.kinds is not None:
            allowed &= {d.doc_id for d in docs if d.kind in self.kinds}
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

    def search(
        self, question: str | Query, k: int | None = None, filters: Filters | None = None,
        scope: QuestionScope | None = None, snap: Snapshot | None = None,
    ) -> list[Passage]:
        """The top ``k`` passages, from the documents the filters and the question's scope allow
        (the scope is resolved here unless given)."""
        s = self.settings
        query = question if isinstance(question, Query) else Query.parse(question)
        k = k or s.top_k
        snap = snap or self.index.snapshot()  # one consistent view for the whole search
        scope = scope if scope is not None else resolve_scope(query.norm, list(snap.docs.values()))
        allowed = self.allowed(query, snap, filters, scope)
        if allowed is not None and not allowed:
            return []
        learned = s.fusion == "model"
        dense_weight = s.dense_weight_latin if query.latin else s.dense_weight
        lexical, dense, sentences, qv = self.channels(query, allowed, snap, learned or dense_weight > 0,
                                                      learned or s.sentence_weight > 0, scope.framing)
        hidden = filters.without_chunks if filters is not None else frozenset()
        if hidden:
            lexical, dense, sentences = ([h for h in hits if h[0] not in hidden] for hits in (lexical, dense, sentences))
        deadline.check()
        if learned:
            # The fitted model weighs the channels, the asked year and the named report itself.
            fused = fusion.fuse(fusion.load(), *fusion.feature_rows(lexical, dense, sentences, snap, query, s.candidates))
        else:
            if s.fusion == "rrf":
                fused = rrf([([c for c, _ in lexical], s.bm25_weight), ([c for c, _ in dense], dense_weight),
                             ([c for c, _ in sentences], s.sentence_weight)], s.rrf_k)
            else:
                fused = score_fusion([(lexical, s.bm25_weight), (dense, dense_weight), (sentences, s.sentence_weight)])
            if query.years and s.year_boost:
                self._boost_years(snap, fused, query.years)
            if s.title_boost:
                self._boost_titles(snap, fused, query)
        lex_scores, dense_scores, sentence_scores = dict(lexical), dict(dense), dict(sentences)
        ranked = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        passages = []
        for rank, (cid, score) in enumerate(ranked, 1):
            chunk = snap.chunks.get(cid)
            doc = snap.docs.get(chunk.doc_id) if chunk else None
            if chunk is None or doc is None:
                continue
            passages.append(
                Passage(chunk, doc, score, rank, {"bm25": lex_scores.get(cid, 0.0), "dense": dense_scores.get(cid, 0.0),
                                                  **({"sentence": sentence_scores.get(cid, 0.0)} if sentences else {})},
                        headed_years=snap.headed.get(chunk.doc_id, frozenset()))
            )
        if passages and qv is not None:
            self._sentence_sims(passages, qv, snap)
        return passages

    def allowed(self, query: Query, snap: Snapshot, filters: Filters | None = None,
                scope: QuestionScope | None = None) -> set[str] | None:
        """The documents the filters and the question's scope (resolved here unless given) allow (None: all)."""
        allowed = (filters or Filters()).resolve(snap)
        scope = scope if scope is not None else resolve_scope(query.norm, list(snap.docs.values()))
        if scope.allowed is not None:
            allowed = set(scope.allowed) if allowed is None else allowed & scope.allowed
        return allowed

    def channels(self, query: Query, allowed: set[str] | None, snap: Snapshot, dense: bool = True, sentences: bool = True,
                 framing: tuple[str, ...] = ()):
        """The three rankings of the allowed chunks, ``candidates`` deep: BM25 (without the
        ``framing`` words, ``QuestionScope.framing``), the chunk vectors (when ``dense``), the
        chunks' closest sentences (when ``sentences``); and the question's vector (None without
        the dense side; without the ``framing`` words too when ``place_words`` is "all" or
        ``question_vector`` is "topic")."""
        n = self.settings.candidates
        framing = framing if self.settings.place_words != "kept" else ()
        mask = snap.allowed_mask(allowed)
        lexical = snap.bm25.search(query.bm25_tokens(framing), n, mask)
        topic = self.settings.question_vector == "topic"
        meant = query.without(framing) if framing and (topic or self.settings.place_words == "all") else query
        qv = self.index.question_vector(meant, topic) if dense and snap.chunks else None
        by_chunk = self.index.dense_search(query.dense_text, n, allowed, snap, qv) if qv is not None else []
        by_sentence: list[tuple[str, float]] = []
        if qv is not None and sentences:
            # Chunks by their single closest sentence: a paraphrase of one fact in a long chunk
            # is lost in the chunk's mean vector.
            by_sentence = self.index.sentence_vectors(snap).best_chunks(qv, n, mask)
        return lexical, by_chunk, by_sentence, qv

    def _sentence_sims(self, passages: list[Passage], qv, snap: Snapshot) -> None:
        """How close each sentence of the passages is to the question, for choosing the one that answers."""
        vectors = self.index.sentence_vectors(snap)
        if not len(vectors):
            return
        for p in passages:
            p.sentence_sims = vectors.similarities(units(p.chunk.norm), qv)


    def _boost_years(self, snap: Snapshot, fused: dict[str, float], years: list[int]) -> None:
        """Prefer chunks about the asked year: they name it, or their section or report is about it."""
        for cid in fused:
            chunk = snap.chunks.get(cid)
            doc = snap.docs.get(chunk.doc_id) if chunk else None
            if chunk is not None and doc is not None and year_scope(chunk.norm, normalize(chunk.section), doc.years(), set(years)):
                fused[cid] *= 1.0 + self.settings.year_boost


    def _boost_titles(self, snap: Snapshot, fused: dict[str, float], query: Query) -> None:
        """Prefer the reports a question names ("政府工作报告", "十三五规划")."""
        named = fusion.named_reports(snap, query)
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
