"""Grounding checks shared by every generator.

An answer is grounded when every [n] marker points at a passage that was given, and every
number in the answer text appears in one of the passages it cites.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from qa_app.models import Answer
from qa_app.text import match_form

CITATION_RE = re.compile(r"\[(\d{1,3})\]")
# A figure: digits with an optional decimal part and percent sign; years count too.
NUMBER_RE = re.compile(r"(?<![\d.])\d+(?:\.\d+)?%?")


def numbers_in(text: str) -> list[str]:
    return NUMBER_RE.findall(match_form(CITATION_RE.sub(" ", text)).replace(",", ""))


def contains_number(haystack: str, number: str) -> bool:
    pattern = r"(?<![\d.])" + re.escape(number) + (r"" if number.endswith("%") else r"(?![\d])(?!\.\d)")
    return re.search(pattern, haystack) is not None


@dataclass
class GroundingReport:
    grounded: bool
    reasons: list[str] = field(default_factory=list)


def check(answer: Answer) -> GroundingReport:
    if answer.refused:
        return GroundingReport(True)
    reasons: list[str] = []
    given = {c.n for c in answer.citations}
    cited = {int(n) for n in CITATION_RE.findall(answer.text)}
    for n in sorted(cited - given):
        reasons.append(f"citation [{n}] points at no given passage")
    if not cited:
        reasons.append("the answer cites no passage")
    support = " ".join(
        match_form(p.chunk.text)
        for p in answer.passages
        for c in answer.citations
        if c.chunk_id == p.chunk.chunk_id and c.n in cited
    ).replace(",", "")
    for num in numbers_in(answer.text):
        if not contains_number(support, num):
            reasons.append(f"the figure {num} is not in the cited passages")
    return GroundingReport(not reasons, reasons)
