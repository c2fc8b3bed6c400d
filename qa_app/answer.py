"""The question-answering pipeline: check → retrieve → generate → verify → Answer."""
from __future__ import annotations

import re
import time
from typing import Iterator

from qa_app.config import Settings, get_settings
from qa_app.grounding import check
from qa_app.index.hybrid import Filters, HybridSearcher
from qa_app.index.query import Query
from qa_app.index.store import Index
from qa_app.llm.base import Generator
from qa_app.llm.registry import make_generator
from qa_app.models import Answer, Citation, Passage
from qa_app.prompts import load_prompt
from qa_app.question import analyse

_SUBQ_SPLIT = re.compile(r"(?<=[？?])\s*")
# Words that only ask (no topic): a follow-up made of these borrows the topic of the part before it.
_ASKING = re.compile(r"(?:19|20)\d{2}年?|到|在|实际|又|呢|那|是|多少|几|降到了?|增长了?|达到了?|分别|各|哪|怎么样|如何|了|？|\?|\s")


def split_subquestions(question: str) -> list[str]:
    """"…上限是多少？到2021年实际降到了多少？" → two questions, the second given the first's topic."""
    parts = [p.strip() for p in _SUBQ_SPLIT.split(question) if len(p.strip()) >= 4]
    if len(parts) < 2:
        return [question]
    out = [parts[0]]
    for part in parts[1:]:
        out.append(with_topic(part, out[-1]))
    return out


def with_topic(question: str, previous: str) -> str:
    """A follow-up that only asks ("2023年呢？", "那2024年呢") borrows the previous question's topic;
    its own years replace the previous ones. Questions with a topic of their own pass unchanged."""
    if len(_ASKING.sub("", question)) >= 4 or not previous.strip():
        return question
    topic = re.sub(r"(?:19|20)\d{2}\s*年?", "", previous).rstrip("？?。 ")
    return f"{topic}，{question}"


def merge_answers(question: str, answers: list[Answer]) -> Answer:
    """One answer from the answers to each sub-question, citations renumbered in order."""
    merged = Answer(question=question, text="", backend=answers[0].backend)
    texts, offset = [], 0
    for a in answers:
        mapping = {c.n: c.n + offset for c in a.citations}
        texts.append(re.sub(r"\[(\d+)\]", lambda m: f"[{mapping.get(int(m.group(1)), m.group(1))}]", a.text))
        merged.citations.extend(Citation(**{**c.__dict__, "n": mapping[c.n]}) for c in a.citations)
        merged.passages.extend(p for p in a.passages if p not in merged.passages)
        merged.reasons.extend(a.reasons)
        offset += len(a.citations)
    merged.text = "\n".join(texts)
    merged.refused = all(a.refused for a in answers)
    merged.grounded = all(a.grounded for a in answers)
    merged.timings = {k: sum(a.timings.get(k, 0.0) for a in answers) for k in ("retrieve_ms", "generate_ms")}
    return merged


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

    def ask(
        self, question: str, filters: Filters | None = None, k: int | None = None, history: list[str] | None = None
    ) -> Answer:
        """Answer ``question``; ``history`` holds the user's earlier questions, oldest first, so a
        follow-up without its own topic ("2023年呢？") borrows the last one's."""
        t0 = time.perf_counter()
        question = self._check_question(question)
        asked = question
        if history:
            question = with_topic(question, history[-1])
        parts = split_subquestions(question)
        if len(parts) > 1:
            answer = merge_answers(question, [self._answer_one(p, filters, k) for p in parts])
        else:
            answer = self._answer_one(question, filters, k)
        answer.question = asked
        answer.timings["total_ms"] = (time.perf_counter() - t0) * 1000
        return answer

    def _answer_one(self, question: str, filters: Filters | None, k: int | None) -> Answer:
        t0 = time.perf_counter()
        query = Query.parse(question)
        snap = self.index.snapshot()
        passages = self.searcher.search(query, k or self.settings.answer_passages, filters)
        t1 = time.perf_counter()
        if not passages:
            answer = Answer(question=question, text="", backend=self.generator.name, refused=True)
            answer.text = load_prompt("refuse_en" if query.latin else "refuse", self.settings.prompts_dir)
            answer.reasons.append("no passage matched the question")
        else:
            answer = self.generator.generate(analyse(query, snap.bm25.term_idf, snap.knows), passages)
        t2 = time.perf_counter()
        report = check(answer)
        answer.grounded = report.grounded
        answer.reasons.extend(report.reasons)
        answer.timings = {"retrieve_ms": (t1 - t0) * 1000, "generate_ms": (t2 - t1) * 1000, "total_ms": (t2 - t0) * 1000}
        return answer

    def stream(self, question: str, filters: Filters | None = None, history: list[str] | None = None) -> Iterator[str]:
        """The verified answer in pieces (sentence by sentence, each with its citation marker)."""
        answer = self.ask(question, filters=filters, history=history)
        for piece in re.split(r"(?<=\])(?=[^\]])|(?<=[。！？])(?=\S)", answer.text):
            if piece:
                yield piece
