"""The question-answering pipeline: check → retrieve → generate → verify → Answer."""
from __future__ import annotations

import time
from typing import Iterator

from qa_app.config import Settings, get_settings
from qa_app.grounding import check
from qa_app.index.hybrid import Filters, HybridSearcher
from qa_app.index.query import Query
from qa_app.index.store import Index
from qa_app.llm.base import Generator
from qa_app.llm.registry import make_generator
from qa_app.models import Answer, Passage
from qa_app.question import analyse


class QuestionError(ValueError):
    """A question that cannot be asked as given (empty, too long)."""


class EmptyIndexError(RuntimeError):
    """Nothing has been ingested yet."""


class Assistant:
    def __init__(self, settings: Settings | None = None, index: Index | None = None, generator: Generator | None = None):
        self.settings = settings or get_settings()
        self.index = index or Index(self.settings)
        self.searcher = HybridSearcher(self.index)
        self.generator = generator or make_generator(self.settings)

    def _check_question(self, question: str) -> str:
        if not isinstance(question, str) or not question.strip():
            raise QuestionError("问题为空：请输入一个问题。(The question is empty.)")
        if len(question) > self.settings.max_question_chars:
            raise QuestionError(
                f"问题过长（{len(question)} 字符，上限 {self.settings.max_question_chars}）。"
                f"(The question is too long: {len(question)} characters, limit {self.settings.max_question_chars}.)"
            )
        if len(self.index) == 0:
            raise EmptyIndexError("索引为空：请先运行 `qa-app ingest seeds/`。(The index is empty: run `qa-app ingest` first.)")
        return question.strip()

    def search(self, question: str, k: int | None = None, filters: Filters | None = None) -> list[Passage]:
        question = self._check_question(question)
        return self.searcher.search(Query.parse(question), k or self.settings.top_k, filters)

    def ask(self, question: str, filters: Filters | None = None, k: int | None = None) -> Answer:
        t0 = time.perf_counter()
        question = self._check_question(question)
        query = Query.parse(question)
        passages = self.searcher.search(query, k or self.settings.answer_passages, filters)
        t1 = time.perf_counter()
        analysis = analyse(query, self.index.bm25.term_idf, self.index.knows)
        if not passages:
            answer = Answer(question=question, text="", backend=self.generator.name)
            answer.refused = True
            from qa_app.prompts import load_prompt

            answer.text = load_prompt("refuse_en" if query.latin else "refuse", self.settings.prompts_dir)
            answer.reasons.append("no passage matched the question")
        else:
            answer = self.generator.generate(analysis, passages)
        t2 = time.perf_counter()
        report = check(answer)
        answer.grounded = report.grounded
        answer.reasons.extend(report.reasons)
        answer.timings = {"retrieve_ms": (t1 - t0) * 1000, "generate_ms": (t2 - t1) * 1000, "total_ms": (time.perf_counter() - t0) * 1000}
        return answer

    def stream(self, question: str, filters: Filters | None = None) -> Iterator[str]:
        question = self._check_question(question)
        query = Query.parse(question)
        passages = self.searcher.search(query, self.settings.answer_passages, filters)
        yield from self.generator.stream(analyse(query, self.index.bm25.term_idf, self.index.knows), passages)
