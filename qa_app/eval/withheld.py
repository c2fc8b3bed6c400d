"""Questions asked with their evidence withheld: how often the answerer answers from neighbours.

An answerable item's evidence chunks (every indexed chunk that holds one of its quotes) are kept
out of retrieval, as if they had never been indexed; what remains are the passages nearest to
the question — the same report's neighbouring figures, another year, a plan instead of a result.
Nothing left states the answer, so the right outcome is a refusal: the item becomes an
unanswerable one (category ``withheld``) and the run's "unanswerable refused" is the share the
answerer declined. The same questions, unchanged, measure the answering side; together they show
whether a decision to answer rests on the evidence or on resemblance.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Iterable

from qa_app.eval.metrics import evidence_quotes, holds_quote
from qa_app.eval.sets import EvalItem
from qa_app.models import Chunk
from qa_app.text import match_form

CATEGORY = "withheld"


def evidence_chunks(item: EvalItem, chunks: Iterable[Chunk], forms: dict[str, str]) -> frozenset[str]:
    """The ids of the chunks that hold one of ``item``'s quotes (in their document, when it names one);
    ``forms`` caches each chunk's match form by id."""
    quotes = evidence_quotes(item)
    found = set()
    for c in chunks:
        text = forms.get(c.chunk_id)
        if text is None:
            text = forms[c.chunk_id] = match_form(c.text)
        if holds_quote(quotes, c.doc_id, text):
            found.add(c.chunk_id)
    return frozenset(found)


def withheld_items(items: list[EvalItem], chunks: list[Chunk]) -> tuple[list[EvalItem], int]:
    """(the answerable items with evidence, each turned into an unanswerable one with its evidence
    chunks withheld; how many items had nothing to withhold and were left out). An item whose
    quotes no indexed chunk holds becomes an error item: its evidence cannot be withheld."""
    forms: dict[str, str] = {}
    out, skipped = [], 0
    for item in items:
        if item.error or not item.answerable or not item.evidence:
            skipped += 1
            continue
        hide = evidence_chunks(item, chunks, forms)
        raw = {**item.raw, "withheld": sorted(hide)}  # changes the digest: never mixed with a plain run's result
        error = "" if hide else (f"{item.file}: id {item.id}: no indexed passage holds its evidence, "
                                 "so there is nothing to withhold")
        out.append(replace(item, category=CATEGORY, evidence=[], raw=raw, withhold=hide, error=error))
    return out, skipped
