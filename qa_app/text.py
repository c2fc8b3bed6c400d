"""Text normalisation shared by the index, the answerer and the evaluator.

Matching happens on normalised text (Simplified script, half-width forms, folded
whitespace); display keeps the original. Normalisation must never change a digit.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

import opencc

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
CJK_RE = re.compile(f"[{_CJK}]")
_WS_RE = re.compile(r"[ \t\u3000\xa0]+")
_LATIN_WORD = re.compile(r"[A-Za-z]+(?:['’][A-Za-z]+)?")
YEAR_RE = re.compile(r"(?<!\d)(19[5-9]\d|20[0-4]\d)(?!\d)")


# 十四五 / 第十四个五年: China's five-year plans, numbered since 1953 (the third began in 1966
# after three years of adjustment, and every one since follows the last).
_PLAN_RE = re.compile(
    r"(十[一二三四五六七八九]?)五(?=规划|计划|时期|期间|末|初|以来|$|[^\u4e00-\u9fff]|[的发目])"
    r"|([一二三四五六七八九])五(?=规划|计划|时期)|第([一二三四五六七八九十]+)个五年"
)


def plan_span(number: int) -> tuple[int, int]:
    """The years of the n-th five-year plan (14 → 2021–2025)."""
    start = {1: 1953, 2: 1958}.get(number, 1966 + 5 * (number - 3))
    return start, start + 4


@lru_cache(maxsize=256)
def _cn_number(text: str) -> int:
    # cn2an compiles its patterns on every call (~0.5 ms): plan numerals are few, remember them.
    import cn2an

    return int(cn2an.cn2an(text, "smart"))


def plans_in(text: str) -> set[tuple[int, int]]:
    """The five-year plans a text names, as year spans: "十四五" → (2021, 2025)."""
    out = set()
    for m in _PLAN_RE.finditer(text):
        numeral = m.group(1) or m.group(2) or m.group(3)
        try:
            out.add(plan_span(_cn_number(numeral)))
        except (ValueError, TypeError):
            continue
    return out


# A figure over several years: an annual average, "N年来", a span of years, a plan period.
_SPAN_RE = re.compile(
    r"年均|年平均|每年平均|(?:\d+|[两三四五六七八九十]+)年(?:来|间|里)|(?:这|过去|近)(?:\d+|[两三四五六七八九十几些])年|期间|时期"
    r"|(?<!\d)(?:19|20)\d\d\s*(?:年)?\s*(?:[—–~〜至到-]|－)\s*(?:19|20)\d\d(?!\d)"
)


def names_span(text: str) -> bool:
    """Does normalised ``text`` name a stretch of several years (an average over them, a plan
    period, "N年来", "2021—2025年")? ("2023年和2024年分别…" names two years, not a stretch.)"""
    return bool(_SPAN_RE.search(text) or plans_in(text))


def speaks_of_span(text: str) -> bool:
    """Does a report's sentence speak of several years at once: a stretch, or a change between
    two years it names ("从2020年的…提高到2025年的…"), rather than of one year?"""
    return names_span(text) or len(years_in(text)) >= 2


def years_in(text: str) -> set[int]:
    return {int(y) for y in YEAR_RE.findall(text)}


def year_scope(text: str, section: str, doc_years: set[int] | int | None, asked: set[int],
               headed: frozenset[int] = frozenset()) -> set[int]:
    """Which asked years a piece of text speaks for: the years it names; else its section's
    years (a section about 十四五 speaks for 2021–2025); else, when its section names none,
    the years its report reports on. ``headed``: the years the report gives a heading of their
    own ("三、2026年重点工作"); a section that names only a plan period ("二、“十五五”时期主要目标
    任务") does not speak for those: its targets are the period's (2030), not that year's."""
    named = years_in(text) & asked
    if named:
        return named
    explicit = years_in(section)
    plan_years = {y for a, b in plans_in(section) for y in range(a, b + 1)}
    if explicit:
        return (explicit | plan_years) & asked
    if plan_years:
        return (plan_years - headed) & asked
    if isinstance(doc_years, int):
        doc_years = {doc_years}
    return set(doc_years or ()) & asked


def headed_years(title: str, sections: Iterable[str]) -> frozenset[int]:
    """The years a report gives a heading of their own ("三、2026年重点工作", "一、2025年和“十四五”
    时期工作回顾"): any level of a section path that names a year, the report's title excepted."""
    title = normalize(title)
    out: set[int] = set()
    for path in set(sections):
        for heading in path.split(" > "):
            heading = normalize(heading)
            if heading != title:
                out |= years_in(heading)
    return frozenset(out)


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


def tidy(text: str) -> str:
    """Half-width forms and spaces folded (newlines kept), the script left as written: what is
    shown (a section name), where ``normalize`` gives what is matched."""
    return _WS_RE.sub(" ", _width_fold(text).replace("\u3000", " "))


def normalize(text: str) -> str:
    """Simplified script, half-width forms, spaces folded (newlines kept)."""
    # An answer normalises the same sentences, headings and titles hundreds of times over; a
    # sentence-sized text is remembered (a whole document is not worth holding).
    return _normalize_short(text) if len(text) <= _REMEMBERED else _normalize(text)


_REMEMBERED = 256


def _normalize(text: str) -> str:
    text = _width_fold(text).replace("\u3000", " ")
    text = to_simplified(text)
    return _WS_RE.sub(" ", text)


_normalize_short = lru_cache(maxsize=1 << 15)(_normalize)


def match_form(text: str) -> str:
    """The form used to compare answer keys and evidence quotes: normalised, no whitespace, lower case."""
    return re.sub(r"\s+", "", normalize(text)).lower()


def is_latin_question(text: str) -> bool:
    """True when a question is written mostly in Latin script (English): by words, so that a
    Chinese question about an English name ("MIT OpenCourseWare指什么？") stays Chinese (a
    Chinese character counts as a word: it carries as much of the question's grammar)."""
    latin_words = len(_LATIN_WORD.findall(text))
    return latin_words > 0 and latin_words > len(CJK_RE.findall(text))


# A Chinese sentence already ends in one of these; the English then follows without a space.
_CJK_END = "。！？：；）」"


def bilingual(zh: str, en: str) -> str:
    """One message in both languages, the style of every message a person reads: ``中文。(English.)``."""
    return f"{zh}({en})" if zh and zh[-1] in _CJK_END else f"{zh} ({en})"
