"""The question-answering pipeline: check → condense → retrieve → generate → verify → Answer.

With the extractive generator, a compound question is split at "？" and each part answered
on its own. With an LLM generator (one with ``condense``/``finish``: ``openai``,
``transformers``) a follow-up is first rewritten into a standalone question by the model
(the rule ``with_topic`` when that fails), the parts' passages are pooled into one prompt,
and the model's answer is verified (``grounding.check(strict=True)``): when it fails, or
the model cannot be reached, the answer is the extractive one (``QA_LLM_FALLBACK``, the
default) or a refusal, with ``grounded: false`` and the reasons.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Generator as Steps
from typing import Iterator

from qa_app import deadline
from qa_app.config import Settings, get_settings
from qa_app.grounding import check
from qa_app.grounding import label as part_label
from qa_app.index.errors import StorageError
from qa_app.index.hybrid import FilterError, Filters, HybridSearcher
from qa_app.index.query import Query
from qa_app.index.scope import QuestionScope, coverage_text, split_compared, with_explicit_years
from qa_app.index.scope import resolve as resolve_scope
from qa_app.index.store import Index, Snapshot
from qa_app.llm.base import Generator, GeneratorError
from qa_app.llm.registry import make_generator
from qa_app.models import Answer, Citation, Passage
from qa_app.prompts import load_prompt
from qa_app.question import QuestionAnalysis, QuestionError, analyse, clean_question, question_type
from qa_app.places import gazetteer
from qa_app.text import is_latin_question, normalize

_PIECES = re.compile(r"(?<=\])(?=[^\]])|(?<=[。！？])(?=\S)")
_SUBQ_SPLIT = re.compile(r"(?<=[？?])\s*")
_YEAR = re.compile(r"(?:19|20)\d{2}\s*年?")
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
    """A follow-up that only asks ("2023年呢？", "那海淀呢？") borrows the previous question's topic;
    the years and places it names replace the previous ones, and those it does not name are kept.
    Questions with a topic of their own pass unchanged."""
    if len(_ASKING.sub("", question)) >= 4 or not previous.strip():
        return question
    topic = previous.rstrip("？?。 ")
    if _YEAR.search(question):
        topic = _YEAR.sub("", topic)
    named = _place_names(question)
    if named:
        for name in sorted(_place_names(topic) - named, key=len, reverse=True):
            topic = topic.replace(name, "")
    return f"{topic}，{question}"


def _place_names(text: str) -> set[str]:
    """The place names a text uses, short district names included (a follow-up says 海淀, not 海淀区)."""
    return {name for _, name, _ in gazetteer().find(normalize(text), short_districts=lambda p: True)}


def merge_answers(question: str, answers: list[Answer], labels: list[str] | None = None) -> Answer:
    """One answer from the answers to each sub-question, citations renumbered in order; with
    ``labels`` (the places a comparison names) each part says which place it is about."""
    merged = Answer(question=question, text="", backend=answers[0].backend)
    texts, offset = [], 0
    for i, a in enumerate(answers):
        mapping = {c.n: c.n + offset for c in a.citations}
        label = labels[i] if labels and i < len(labels) and labels[i] else ""
        text = re.sub(r"\[(\d+)\]", lambda m: f"[{mapping.get(int(m.group(1)), m.group(1))}]", a.text)
        texts.append(f"{part_label(label)}{text}" if label else text)
        merged.citations.extend(Citation(**{**c.__dict__, "n": mapping[c.n]}) for c in a.citations)
        merged.passages.extend(p for p in a.passages if p not in merged.passages)
        merged.reasons.extend(a.reasons)
        offset += len(a.citations)
    merged.text = "\n".join(texts)
    merged.refused = all(a.refused for a in answers)
    merged.grounded = all(a.grounded for a in answers)
    merged.timings = {k: sum(a.timings.get(k, 0.0) for a in answers) for k in ("retrieve_ms", "generate_ms")}
    return merged


@dataclass(frozen=True)
class Conversation:
    """What a chat client sends besides its question and earlier questions (an OpenAI request's
    other messages): its own instructions, the replies its earlier questions got, and a bound on
    the answer's tokens. An LLM generator gets the instructions below its grounding rules (they
    cannot switch verification off), the replies as context for condensing a follow-up, and the
    bound as its limit. The extractive generator quotes the reports: it has no use for
    instructions or replies (a follow-up borrows the last question's topic by rule)."""

    instructions: str = ""
    replies: tuple[str, ...] = ()  # aligned with the history: replies[i] is what history[i] got ("" for none)
    max_tokens: int | None = None


NO_CONVERSATION = Conversation()


@dataclass(frozen=True)
class Retrieved:
    """What retrieval hands to answering: the parsed query, the question's scope (its places,
    what 今年 means), and the passages it allows (none when the scope names no indexed place)."""

    query: Query
    scope: QuestionScope
    passages: list[Passage]


@dataclass(frozen=True)
class Prompted:
    """What an LLM answer starts from: the question's analysis and its passages; or, when no
    passage matched, the refusal that is the answer (``early``)."""

    analysis: QuestionAnalysis | None
    passages: list[Passage]
    early: Answer | None
    retrieve_ms: float


class EmptyIndexError(RuntimeError):
    """Nothing has been ingested yet."""


# What asking can end in that the asker should read as it is (each message says what to do),
# rather than as an internal error: the page and the MCP tools show these; the API maps each to
# its status.
USER_ERRORS: tuple[type[Exception], ...] = (
    QuestionError, EmptyIndexError, GeneratorError, StorageError, FilterError, deadline.DeadlineExceeded)


class Assistant:
    def __init__(self, settings: Settings | None = None, index: Index | None = None, generator: Generator | None = None):
        self.settings = settings or get_settings()
        self.index = index if index is not None else Index(self.settings)  # not `or`: an empty Index is falsy
        self.searcher = HybridSearcher(self.index)
        self.generator = generator or make_generator(self.settings)
        self._extractive: Generator | None = None

    @property
    def uses_llm(self) -> bool:
        """Is the generator a model whose answers must be verified (and may condense follow-ups)?"""
        return self.generator.is_llm

    @property
    def extractive(self) -> Generator:
        """The extractive generator, for fallbacks."""
        if self._extractive is None:
            from qa_app.llm.extractive import ExtractiveGenerator

            self._extractive = ExtractiveGenerator(self.settings)
        return self._extractive

    def _check_question(self, question: str) -> str:
        question = clean_question(question, self.settings.max_question_chars)
        if len(self.index) == 0:
            raise EmptyIndexError("索引为空：请先运行 `qa-app ingest seeds/`。(The index is empty: run `qa-app ingest` first.)")
        return question

    def _check_history(self, history: list[str] | None, replies: tuple[str, ...] = ()) -> tuple[list[str] | None, tuple[str, ...]]:
        """Earlier questions reach retrieval and prompts too, so binary or over-long ones are
        refused like a question; ones with nothing to search for ("", "👍") are dropped, with the
        replies they got (``replies`` stays aligned with the history)."""
        if not history:
            return None, ()
        if not isinstance(history, (list, tuple)):
            raise QuestionError("对话历史必须是问题列表。(The history must be a list of questions.)")
        limit = self.settings.max_question_chars
        checked = [clean_question(h, limit, f"对话历史第 {i} 条", f"History item {i}", require_words=False)
                   for i, h in enumerate(history, 1)]
        replies = tuple(replies) + ("",) * (len(checked) - len(replies))
        kept = [(h, r) for h, r in zip(checked, replies) if h]
        return ([h for h, _ in kept] or None), tuple(r for _, r in kept)

    def search(self, question: str, k: int | None = None, filters: Filters | None = None) -> list[Passage]:
        question = self._check_question(question)
        return self.searcher.search(Query.parse(question), k or self.settings.top_k, filters)

    def condense(self, question: str, history: list[str] | None, notes: list[str] | None = None) -> str:
        """A follow-up made standalone: by the LLM when one is configured, else (or when it
        fails) by the rule ``with_topic``. ``notes`` collects why the LLM was not used."""
        return self._condense(question, history, notes if notes is not None else [])[0]

    def _condense(self, question: str, history: list[str] | None, notes: list[str],
                  replies: tuple[str, ...] = ()) -> tuple[str, GeneratorError | None]:
        """(standalone question, the error when the model is unavailable altogether)."""
        if not history:
            return question, None
        if self.uses_llm:
            try:
                return self.generator.condense(question, list(history), list(replies)), None
            except GeneratorError as exc:
                notes.append(f"follow-up condensed by rule: {exc}")
                return with_topic(question, history[-1]), exc if exc.unavailable else None
        return with_topic(question, history[-1]), None

    def ask(
        self, question: str, filters: Filters | None = None, k: int | None = None, history: list[str] | None = None,
        conversation: Conversation = NO_CONVERSATION,
    ) -> Answer:
        """Answer ``question``; ``history`` holds the user's earlier questions, oldest first, so a
        follow-up without its own topic ("2023年呢？") borrows the last one's."""
        *_, answer = self._answer(question, filters, k, history, stream=False, conversation=conversation)
        return answer

    def _parts(self, question: str, snap: Snapshot) -> list[tuple[str, str]]:
        """(label, question) for each part of a compound question: split at "？", then by the
        places a part joins ("安徽和河南…分别…"), each part labelled with its place."""
        docs = list(snap.docs.values())
        pieces = self._bounded(split_subquestions(question))  # checked before any part is worked on
        normalized = [normalize(part) for part in pieces]
        # A part said twice ("…分别是多少？哪个更低？": the ranking borrows the figure's topic and
        # becomes the same parts) is answered once.
        parts = self._bounded(list(dict.fromkeys(piece for part in normalized
                                                 for piece in split_compared(part, docs, question_type(part) == "number"))))
        return parts if len(parts) > 1 else [("", question)]

    def _bounded(self, parts: list) -> list:
        limit = self.settings.max_subquestions
        if len(parts) > limit:
            raise QuestionError(f"一个问题最多可以包含 {limit} 个小问题，这里有 {len(parts)} 个：请分开提问。"
                                f"(A question may hold at most {limit} parts; this one has {len(parts)}: ask them separately.)")
        return parts

    def _retrieve(
        self, question: str, filters: Filters | None, k: int | None, snap: Snapshot
    ) -> Retrieved:
        scope = resolve_scope(normalize(question), list(snap.docs.values()))
        query = Query.parse(with_explicit_years(question, scope.anchor_year))
        if scope.out_of_scope:
            return Retrieved(query, scope, [])
        return Retrieved(query, scope, self.searcher.search(query, k or self.settings.answer_passages, filters,
                                                            scope=scope, snap=snap))

    def _scope_refusal(self, question: str, scope: QuestionScope, snap: Snapshot) -> str:
        """A refusal that says which places the index has nothing about, and what it covers."""
        g = gazetteer()
        names = "、".join(g.full_name(p) for p in scope.named)
        covered = coverage_text(list(snap.docs.values()))
        if is_latin_question(question):
            return f"{self._refusal(question)} (The index has no report about {names}; it covers: {covered}.)"
        return f"{self._refusal(question)}（索引中没有关于{names}的报告；已收录：{covered}。）"

    def _answer_extractive(self, question: str, filters: Filters | None, k: int | None, generator: Generator | None = None) -> Answer:
        snap = self.index.snapshot()  # one view of the index for every part of the answer
        parts = self._parts(question, snap)
        if len(parts) > 1:
            answers = [self._answer_one(p, filters, k, generator, snap) for _, p in parts]
            return merge_answers(question, answers, [label for label, _ in parts])
        return self._answer_one(question, filters, k, generator, snap)

    def _answer_one(
        self, question: str, filters: Filters | None, k: int | None, generator: Generator | None = None,
        snap: Snapshot | None = None,
    ) -> Answer:
        generator = generator or self.generator
        deadline.check()  # between the parts of a compound question
        t0 = time.perf_counter()
        snap = snap or self.index.snapshot()
        found = self._retrieve(question, filters, k, snap)
        query, scope, passages = found.query, found.scope, found.passages
        t1 = time.perf_counter()
        if scope.out_of_scope:
            answer = Answer(question=question, text=self._scope_refusal(question, scope, snap), backend=generator.name, refused=True)
            answer.reasons.append("no indexed document is about " + "、".join(p.name for p in scope.named))
        elif not passages:
            answer = Answer(question=question, text="", backend=generator.name, refused=True)
            answer.text = load_prompt("refuse_en" if query.latin else "refuse", self.settings.prompts_dir)
            answer.reasons.append("no passage matched the question")
        else:
            answer = generator.generate(analyse(query, snap.bm25.term_idf, snap.knows), passages)
        t2 = time.perf_counter()
        report = check(answer)
        answer.grounded = report.grounded
        answer.reasons.extend(report.reasons)
        answer.timings = {"retrieve_ms": (t1 - t0) * 1000, "generate_ms": (t2 - t1) * 1000, "total_ms": (t2 - t0) * 1000}
        return answer

    # --- LLM generators -------------------------------------------------------------------------
    def _llm_passages(self, question: str, filters: Filters | None, k: int | None, snap: Snapshot | None = None) -> list[Passage]:
        """The passages for one prompt: for a compound question, each part's passages in turn."""
        n = k or self.settings.answer_passages
        snap = snap or self.index.snapshot()
        lists = [self._retrieve(p, filters, n, snap).passages for _, p in self._parts(question, snap)]
        if len(lists) == 1:
            return lists[0]
        pooled: list[Passage] = []
        seen: set[str] = set()
        for rank in range(n):
            for found in lists:
                if rank < len(found) and found[rank].chunk.chunk_id not in seen:
                    seen.add(found[rank].chunk.chunk_id)
                    pooled.append(found[rank])
        return pooled[:n]

    def _llm_setup(self, question: str, filters: Filters | None, k: int | None) -> Prompted:
        t0 = time.perf_counter()
        query = Query.parse(question)
        snap = self.index.snapshot()  # one view of the index for the whole answer
        passages = self._llm_passages(question, filters, k, snap)
        retrieve_ms = (time.perf_counter() - t0) * 1000
        if not passages:
            scope = resolve_scope(normalize(question), list(snap.docs.values()))
            text = self._scope_refusal(question, scope, snap) if scope.out_of_scope else self._refusal(question)
            answer = Answer(question=question, text=text, backend=self.generator.name, refused=True)
            answer.reasons.append("no passage matched the question")
            answer.timings = {"retrieve_ms": retrieve_ms}
            return Prompted(None, [], answer, retrieve_ms)
        return Prompted(analyse(query, snap.bm25.term_idf, snap.knows), passages, None, retrieve_ms)

    def _refusal(self, question: str) -> str:
        return load_prompt("refuse_en" if is_latin_question(question) else "refuse", self.settings.prompts_dir)

    def _verify(self, answer: Answer, question: str, filters: Filters | None, k: int | None) -> Answer:
        """The LLM answer when every citation and figure holds; else the fallback or a refusal."""
        report = check(answer, strict=True)
        answer.grounded = report.grounded
        answer.reasons.extend(report.reasons)
        if report.grounded:
            return answer
        reasons = [f"{self.generator.name} answer failed verification: {r}" for r in report.reasons]
        final = self._llm_failed(question, filters, k, reasons)
        final.timings.setdefault("llm_ms", answer.timings.get("llm_ms", answer.timings.get("generate_ms", 0.0)))
        return final

    def _llm_failed(
        self, question: str, filters: Filters | None, k: int | None, reasons: list[str], error: GeneratorError | None = None
    ) -> Answer:
        """Fallback (the extractive answer) or, with QA_LLM_FALLBACK off, a refusal — or the error
        itself when the model gave nothing at all."""
        name = self.generator.name
        if self.settings.llm_fallback:
            fallback = self._answer_extractive(question, filters, k, generator=self.extractive)
            fallback.backend = f"extractive (fallback from {name})"
            fallback.reasons = reasons + ["answered extractively instead (QA_LLM_FALLBACK)"] + fallback.reasons
            fallback.grounded = False
            return fallback
        if error is not None:
            raise error
        answer = Answer(question=question, text=self._refusal(question), backend=name, refused=True, grounded=False)
        answer.passages = self._llm_passages(question, filters, k)
        answer.reasons = reasons + ["refused instead (QA_LLM_FALLBACK is off)"]
        return answer

    def _notice(self, answer: Answer, question: str) -> str:
        """What a stream adds when the text already shown was replaced."""
        why = answer.reasons[0] if answer.reasons else "unverified"
        if is_latin_question(question):
            tail = " The reports say:" if not answer.refused or answer.backend.startswith("extractive") else ""
            return f"\n\n(The answer above failed verification — {why}.{tail})\n"
        tail = "以下为报告原文摘录：" if answer.backend.startswith("extractive") else ""
        return f"\n\n（上面的回答未通过核验：{why}。{tail}）\n"

    # --- the one answer path -------------------------------------------------------------------
    def stream_answer(
        self, question: str, filters: Filters | None = None, history: list[str] | None = None, k: int | None = None,
        conversation: Conversation = NO_CONVERSATION,
    ) -> Iterator[str | Answer]:
        """Text pieces as they are produced, then the verified ``Answer`` as the last item.

        With an LLM generator the pieces are the model's tokens; when its answer then fails
        verification (or the model fails midway), a notice and the fallback answer's text
        follow, and the final ``Answer`` is the fallback (``grounded: false``, reasons).
        With the extractive generator the pieces are the answer's sentences."""
        yield from self._answer(question, filters, k, history, stream=True, conversation=conversation)

    def _answer(
        self, question: str, filters: Filters | None, k: int | None, history: list[str] | None, stream: bool,
        conversation: Conversation = NO_CONVERSATION,
    ) -> Iterator[str | Answer]:
        """check → condense → retrieve → generate → verify (→ fallback), for ``ask`` and for
        streams alike: text pieces when ``stream``, then the final ``Answer``."""
        t0 = time.perf_counter()
        question = self._check_question(question)
        history, replies = self._check_history(history, conversation.replies)
        asked = question
        notes: list[str] = []
        if not self.uses_llm:
            if history:
                question = with_topic(question, history[-1])
            final = self._answer_extractive(question, filters, k)
            if stream:
                yield from (piece for piece in _PIECES.split(final.text) if piece)
        else:
            question, down = self._condense(question, history, notes, replies)
            if history:
                condense_ms = (time.perf_counter() - t0) * 1000
            final = yield from self._answer_llm(question, filters, k, down, stream, conversation)
            if history:
                final.timings["condense_ms"] = condense_ms
        final.reasons[:0] = notes
        final.question = asked
        final.timings["total_ms"] = (time.perf_counter() - t0) * 1000
        yield final

    def _answer_llm(
        self, question: str, filters: Filters | None, k: int | None, down: GeneratorError | None, stream: bool,
        conversation: Conversation = NO_CONVERSATION,
    ) -> Steps[str, None, Answer]:
        """The model's answer, verified; its tokens as they come when ``stream``. ``down``: the
        model already failed (condensing), so it is not waited on a second time."""
        if down is not None:
            final = self._llm_failed(question, filters, k, [f"{self.generator.name} failed: {down}"], error=down)
            if stream:
                yield final.text
            return final
        setup = self._llm_setup(question, filters, k)
        if setup.early is not None:
            if stream:
                yield setup.early.text
            return setup.early
        analysis, passages = setup.analysis, setup.passages
        deadline.check()  # before the model's wait, the longest step
        t1 = time.perf_counter()
        shown: list[str] = []
        answer: Answer | None = None
        try:
            wanted, limit = conversation.instructions, conversation.max_tokens
            if stream:
                messages, given = self.generator.prepare(analysis, passages, wanted, limit)
                for piece in self.generator.stream_messages(messages, limit):
                    shown.append(piece)
                    yield piece
                answer = self.generator.finish(analysis, given, "".join(shown))
            else:
                answer = self.generator.generate(analysis, passages, wanted, limit)
        except GeneratorError as exc:
            final = self._llm_failed(question, filters, k, [f"{self.generator.name} failed: {exc}"], error=exc)
        else:
            answer.timings.update(retrieve_ms=setup.retrieve_ms, generate_ms=(time.perf_counter() - t1) * 1000)
            final = self._verify(answer, question, filters, k)
        if stream and final is not answer:
            yield (self._notice(final, question) if shown else "") + final.text
        return final

    def stream(
        self, question: str, filters: Filters | None = None, history: list[str] | None = None, k: int | None = None,
        conversation: Conversation = NO_CONVERSATION,
    ) -> Iterator[str]:
        """The answer in pieces: the model's tokens with an LLM generator (then a notice and the
        fallback when verification fails), else the verified answer sentence by sentence."""
        for item in self.stream_answer(question, filters=filters, history=history, k=k, conversation=conversation):
            if isinstance(item, str):
                yield item
