"""The generator interface every backend implements, and what the LLM backends share."""
from __future__ import annotations

import time
from typing import ClassVar, Iterator, Protocol

from pydantic import BaseModel, ConfigDict

from qa_app.llm.errors import GeneratorError  # noqa: F401  (re-exported: backends and callers import it from here)
from qa_app.llm.prompting import ThinkFilter, build_condense_messages, build_messages, clean_condensed, to_answer
from qa_app.models import Answer, Passage
from qa_app.question import QuestionAnalysis


class Generator(Protocol):
    """What every answer backend implements (``registry`` finds them: built in, or a plugin's
    entry point in the ``qa_app.generators`` group)."""

    name: str
    # A model backend (a ``ChatGenerator``) also declares ``Options``: the settings it reads, typed
    # (``BackendOptions``), as ``self.options``; the extractive answerer reads the answering settings.
    # A model that writes its own text: its answers are verified (grounding.check strict) and it
    # is asked to condense follow-ups; it is a ``ChatGenerator``. The extractive answerer quotes.
    is_llm: bool

    @classmethod
    def readiness(cls, settings) -> tuple[bool, str]:
        """(ready, what a person should know): configured, and reachable where that applies.
        Cheap and side-effect free: ``qa-app backends`` calls it for every backend."""
        ...

    def generate(self, question: QuestionAnalysis, passages: list[Passage]) -> Answer:
        """Answer from the given passages only, citing them as [n]."""
        ...

    def stream(self, question: QuestionAnalysis, passages: list[Passage]) -> Iterator[str]:
        """The answer text in pieces, as it is produced."""
        ...


class BackendOptions(BaseModel):
    """A model backend's options, typed and frozen: each backend declares the fields it uses, and
    they are read from the settings' ``llm_<field>`` (``QA_LLM_<FIELD>``), so a backend sees
    nothing it does not declare and a key prints as ``**********``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @classmethod
    def from_settings(cls, settings) -> BackendOptions:
        return cls(**{name: getattr(settings, f"llm_{name}") for name in cls.model_fields})


class ChatGenerator:
    """Base of the LLM backends: prompts from files, [n] citations parsed, think-blocks removed.

    A subclass implements ``chat(messages, max_tokens)`` → text and ``chat_stream(messages,
    max_tokens)`` → text pieces, raising ``GeneratorError`` on failure (``max_tokens`` None: the
    backend's configured limit). Beyond ``Generator``, it takes a client's ``instructions`` (an
    OpenAI request's system messages, put below the grounding rules) and a ``max_tokens`` for
    the answer, and the earlier replies of a conversation when condensing a follow-up. The Assistant verifies every answer
    (``grounding.check(strict=True)``) and falls back or refuses when it is not supported; it
    also calls ``condense`` to turn a follow-up into a standalone question.
    """

    name = "llm"
    is_llm = True
    Options: ClassVar[type[BackendOptions]] = BackendOptions

    def __init__(self, settings):
        self.settings = settings
        self.options = self.Options.from_settings(settings)

    @classmethod
    def readiness(cls, settings) -> tuple[bool, str]:
        return True, "no readiness check"

    # --- to implement ------------------------------------------------------------------------
    def chat(self, messages: list[dict], max_tokens: int | None = None) -> str:
        raise NotImplementedError

    def chat_stream(self, messages: list[dict], max_tokens: int | None = None) -> Iterator[str]:
        raise NotImplementedError

    # --- shared ------------------------------------------------------------------------------
    def prepare(self, question: QuestionAnalysis, passages: list[Passage], instructions: str = "",
                max_tokens: int | None = None) -> tuple[list[dict], list[Passage]]:
        """The chat messages, and the passages they number (a backend with a short context may
        give fewer, keeping room for ``max_tokens`` of answer)."""

        passages = passages[: self.settings.answer_passages]
        return self.messages(question, passages, instructions), passages

    def messages(self, question: QuestionAnalysis, passages: list[Passage], instructions: str = "") -> list[dict]:
        return build_messages(question.query.text, passages, self.settings.prompts_dir, latin=question.query.latin,
                              instructions=instructions)

    def generate(self, question: QuestionAnalysis, passages: list[Passage], instructions: str = "",
                 max_tokens: int | None = None) -> Answer:
        t0 = time.perf_counter()
        messages, given = self.prepare(question, passages, instructions, max_tokens)
        answer = self.finish(question, given, self.chat(messages, max_tokens))
        answer.timings["llm_ms"] = (time.perf_counter() - t0) * 1000
        return answer

    def stream(self, question: QuestionAnalysis, passages: list[Passage], instructions: str = "",
               max_tokens: int | None = None) -> Iterator[str]:
        messages, _ = self.prepare(question, passages, instructions, max_tokens)
        yield from self.stream_messages(messages, max_tokens)

    def stream_messages(self, messages: list[dict], max_tokens: int | None = None) -> Iterator[str]:
        """The visible answer text in pieces (reasoning blocks removed)."""

        think = ThinkFilter()
        for piece in self.chat_stream(messages, max_tokens):
            visible = think.feed(piece)
            if visible:
                yield visible
        tail = think.flush()
        if tail:
            yield tail

    def finish(self, question: QuestionAnalysis, passages: list[Passage], text: str) -> Answer:
        """The model's raw text → an ``Answer`` with its [n] markers mapped to ``passages`` (as prepared)."""

        return to_answer(question.query.text, passages, text, self.name, self.settings.prompts_dir, latin=question.query.latin)

    def condense(self, question: str, history: list[str], replies: list[str] | None = None) -> str:
        """A follow-up ("那2024年呢？") rewritten with the earlier questions (and the replies they
        got, aligned with ``history``) into one that stands alone."""

        text = self.chat(build_condense_messages(question, history, self.settings.prompts_dir, replies))
        return clean_condensed(text, question, history)
