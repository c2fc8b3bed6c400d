"""Query analysis shared by retrieval and answering: normalised text, tokens, years.

English questions are bridged to the Chinese index through a small glossary of the
reports' terms; the dense side handles the rest.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from qa_app.index.tokenize import tokens, words
from qa_app.lexicon import active
from qa_app.text import YEAR_RE, is_latin_question, normalize, plans_in

def glossary() -> dict[str, list[str]]:
    return active().glossary


def synonym_groups() -> dict[str, tuple[str, ...]]:
    return active().synonyms


def contains_term(text: str, term: str) -> bool:
    """Substring match for Chinese terms; whole-word match for Latin ones ("ai" is not in "haidian")."""
    if term.isascii():
        return re.search(rf"(?<![a-z0-9]){re.escape(term)}(?![a-z0-9])", text) is not None
    return term in text


def synonyms_in(text: str) -> list[str]:
    """The reports' own term (first of its group) for everyday words found in ``text``."""
    low = text.lower()
    out: list[str] = []
    for term, group in synonym_groups().items():
        canonical = group[0]
        if term != canonical and contains_term(low, term) and not contains_term(low, canonical) and canonical not in out:
            out.append(canonical)
    return out


def glossary_matches(text: str) -> list[tuple[str, list[str]]]:
    """(English phrase, Chinese terms) for the glossary phrases in ``text``, longest first, each
    stretch of the question used once."""
    low = " " + re.sub(r"[^a-z0-9.&+\- ]+", " ", text.lower()) + " "
    found: list[tuple[str, list[str]]] = []
    for en in sorted(glossary(), key=len, reverse=True):
        needle = f" {en} "
        if needle in low:
            found.append((en, glossary()[en]))
            low = low.replace(needle, " ")
    return found


def translate_terms(text: str) -> list[str]:
    """Chinese terms for the English phrases found in ``text``."""
    return [term for _, terms in glossary_matches(text) for term in terms]


def _strip(text: str, words: tuple[str, ...]) -> str:
    for word in sorted(set(words), key=len, reverse=True):
        text = text.replace(word, " ")
    return text


# When a question is about: a year ("2025年底", "in 2019"; not a figure: "2000万", "2050亿元"), a
# relative one (not inside a word: 目前年轻人, 过去年均), a five-year plan ("“十四五”时期"; not 三十五岁,
# 第十五届, 十五分钟: the plan's own lookahead, text.PLAN_RE).
_WHEN = re.compile(
    r"(?:\b(?:in|during|for|of|by|since)\s+)?(?<![\d.])(?:19|20)\d{2}(?![\d.%万亿千百元个])\s*年?(?:底|末|初|上半年|下半年|以来|全年)?"
    r"|(?<![目当提至过说表证聪文光])[去今明前]年(?:年?底|年?末|年?初|上半年|下半年)?(?![轻龄度均纪])"
    r"|(?<![一二三四五六七八九十第])[“\"‘]?十[一二三四五六七八九]?五[”\"’]?(?=规划|计划|时期|期间|末|初|以来|$|[^\u4e00-\u9fff]|[的发目这])"
    r"(?:时期|期间|末|初)?",
    re.I,
)


@dataclass
class Query:
    text: str  # as asked
    norm: str
    latin: bool
    years: list[int] = field(default_factory=list)
    expansion: list[str] = field(default_factory=list)  # Chinese terms for an English question
    plans: frozenset[tuple[int, int]] = frozenset()  # five-year plans named (十四五 → (2021, 2025))

    @classmethod
    def parse(cls, text: str) -> "Query":
        norm = normalize(text).strip()
        latin = is_latin_question(norm)
        years = [int(y) for y in YEAR_RE.findall(norm)]
        expansion = translate_terms(norm) if latin else []
        expansion += [t for t in synonyms_in(" ".join([norm, *expansion])) if t not in expansion]
        return cls(text=text, norm=norm, latin=latin, years=years, expansion=expansion, plans=frozenset(plans_in(norm)))

    @property
    def dense_texts(self) -> list[str]:
        """What the embedder reads; the question vector is the mean of theirs. The question as
        asked, and for an English question also its Chinese terms and years from the glossary:
        the multilingual model matches English to Chinese text, the glossary's rendering keeps
        the reports' own terms in view (English items of the seeds' sets: 0.92 answered right
        with the rendering alone, 0.64 with the English alone, 0.96 with both)."""
        if self.latin and self.expansion:
            return [self.norm, " ".join([*(f"{y}年" for y in self.years), *self.expansion])]
        return [self.norm]

    @property
    def dense_text(self) -> str:
        """The text that stands for the question in the dense store's own search."""
        return self.dense_texts[-1]

    @property
    def lexical_text(self) -> str:
        return " ".join([self.norm, *self.expansion])

    def bm25_tokens(self, without: tuple[str, ...] = ()) -> list[str]:
        """The BM25 query; ``without``: words left out (a scope's place names), unless nothing
        else would be left."""
        return tokens(_strip(self.lexical_text, without)) or tokens(self.lexical_text)

    def without(self, words: tuple[str, ...]) -> "Query":
        """The question with these words left out (itself when nothing else would be left)."""
        rest = _strip(self.norm, words).strip()
        return Query.parse(rest) if rest else self

    def topic(self) -> "Query":
        """The question without the years, relative years and five-year plans it names: what it
        asks about (itself when too little else would be left)."""
        rest = _WHEN.sub("", self.norm).strip()
        return Query.parse(rest) if len(re.sub(r"\W", "", rest)) >= 2 else self

    def title_terms(self) -> list[str]:
        """Longer terms that may name a report ("政府工作报告", "第十三个五年")."""
        return [t for t in {*words(self.lexical_text), *self.expansion} if len(t) >= 3]
