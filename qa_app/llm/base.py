"""The generator interface every backend implements."""
from __future__ import annotations

from typing import Iterator, Protocol

from qa_app.models import Answer, Passage
from qa_app.question import QuestionAnalysis


class Generator(Protocol):
    name: str

    def generate(self, question: QuestionAnalysis, passages: list[Passage]) -> Answer:
        """Answer from the given passages only, citing them as [n]."""
        ...

    def stream(self, question: QuestionAnalysis, passages: list[Passage]) -> Iterator[str]:
        """The answer text in pieces, as it is produced."""
        ...
