"""Text normalisation shared by the index, the answerer and the evaluator.

Matching happens on normalised text (Simplified script, half-width forms, folded
whitespace); display keeps the original. Normalisation must never change a digit.
"""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import opencc

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
CJK_RE = re.compile(f"[{_CJK}]")
_WS_RE = re.compile(r"[ \t\u3000\xa0]+")
YEAR_RE = re.compile(r"(?<!\d)(19[5-9]\d|20[0-4]\d)(?!\d)")


def years_in(text: str) -> set[int]:
    return {int(y) for y in YEAR_RE.findall(text)}


def year_scope(text: str, section: str, doc_year: int | None, asked: set[int]) -> set[int]:
    """Which asked years a piece of text speaks for: the years it names; else its section's
    years; else, when its section names none, the year of its report."""
    named = years_in(text) & asked
    if named:
        return named
    section_years = years_in(section)
    if section_years:
        return section_years & asked
    return {doc_year} & asked if doc_year else set()


@lru_cache(maxsize=1)
def _t2s() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    return _t2s().convert(text)


def _width_fold(text: str) -> str:
    # NFKC folds full-width letters, digits and ASCII punctuation; it would also rewrite
    # superscripts and circled digits into plain digits, so only the full-width block is folded.
    return "".join(
        unicodedata.normalize("NFKC", ch) if "\uff01" <= ch <= "\uff5e" else ch for ch in text
    )


def normalize(text: str) -> str:
    """Simplified script, half-width forms, spaces folded (newlines kept)."""
    text = _width_fold(text).replace("\u3000", " ")
    text = to_simplified(text)
    return _WS_RE.sub(" ", text)


def match_form(text: str) -> str:
    """The form used to compare answer keys and evidence quotes: normalised, no whitespace, lower case."""
    return re.sub(r"\s+", "", normalize(text)).lower()


def is_latin_question(text: str) -> bool:
    """True when a question is written mostly in Latin script (English)."""
    letters = [c for c in text if c.isalpha()]
    latin = sum(1 for c in letters if c.isascii())
    return bool(letters) and latin / len(letters) > 0.6
