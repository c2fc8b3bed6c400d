"""What one item's run measured, and the rates over many: recall@k and MRR (a hit is a retrieved
chunk of the evidence document holding an evidence quote, in normalised form), answer accuracy
(every answer key contained), refusal accuracy, false refusals, citation precision, latency."""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any, Iterable

from qa_app.eval.sets import NO_ANSWER_CATEGORIES, EvalItem
from qa_app.text import match_form


def evidence_quotes(item: EvalItem) -> list[tuple[str | None, str]]:
    """(document or None, quote in match form) of each of the item's evidence quotes."""
    return [(e.get("doc"), match_form(e.get("quote", ""))) for e in item.evidence if e.get("quote")]


def holds_quote(quotes: list[tuple[str | None, str]], doc_id: str, text_form: str) -> bool:
    """Does a passage of ``doc_id`` (its text in match form) hold one of ``quotes``?"""
    return any((d is None or d == doc_id) and q and q in text_form for d, q in quotes)


def hit_rank(item: EvalItem, retrieved: Iterable[tuple[str, str]]) -> int | None:
    """1-based rank of the first (doc_id, text) that holds an evidence quote, else None."""
    quotes = evidence_quotes(item)
    for rank, (doc_id, text) in enumerate(retrieved, 1):
        if holds_quote(quotes, doc_id, match_form(text)):
            return rank
    return None


def answer_correct(item: EvalItem, answer_text: str) -> bool:
    t = match_form(answer_text)
    return all(match_form(k) in t for k in item.answer_keys)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    pos = (len(values) - 1) * q
    lo, hi = int(pos), min(int(pos) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


@dataclass
class ItemResult:
    item: EvalItem
    rank: int | None
    answer: str = ""
    refused: bool = False
    correct: bool = False
    cited_hits: int = 0
    cited: int = 0
    grounded: bool = True
    latency_ms: float = 0.0
    retrieved: list[dict[str, Any]] = field(default_factory=list)
    citations: list[dict[str, Any]] = field(default_factory=list)
    answered_by: str = ""  # the backend that answered: an LLM run may fall back to extractive
    reasons: list[str] = field(default_factory=list)  # the answerer's notes (checks failed, fallbacks)
    error: str = ""  # set for an error item: the item could not be run, and why

    @property
    def outcome_ok(self) -> bool:
        """Right for its kind: a correct answer when answerable, a refusal when not."""
        return self.correct if self.item.answerable else self.refused

    def result_fields(self) -> dict[str, Any]:
        """What the run produced (not the item): the checkpoint stores exactly this."""
        return {
            "rank": self.rank,
            "given_answer": self.answer,
            "refused": self.refused,
            "correct": self.correct,
            "answerable": self.item.answerable,
            "cited": self.cited,
            "cited_hits": self.cited_hits,
            "grounded": self.grounded,
            "latency_ms": round(self.latency_ms, 2),
            "retrieved": self.retrieved,
            "citations": self.citations,
            "answered_by": self.answered_by,
            "reasons": self.reasons,
            "error": self.error or None,
        }

    def to_dict(self) -> dict[str, Any]:
        # Every field of the eval item is carried, unknown ones included, so a report or a
        # later script can group by them.
        item = self.item
        core = {"id": item.id, "question": item.question, "answer_keys": item.answer_keys, "evidence": item.evidence,
                "category": item.category}
        if self.error:
            # The item as written may have fields of the wrong shape: readers get well-formed ones,
            # and the original under "raw".
            return {**item.raw, **core, "raw": item.raw, "file": item.file, **self.result_fields()}
        return {**core, **item.raw, "file": item.file, **self.result_fields()}

    @classmethod
    def from_fields(cls, item: EvalItem, fields: dict[str, Any]) -> "ItemResult":
        return cls(
            item=item,
            rank=fields["rank"],
            answer=fields["given_answer"],
            refused=fields["refused"],
            correct=fields["correct"],
            cited_hits=fields["cited_hits"],
            cited=fields["cited"],
            grounded=fields["grounded"],
            latency_ms=fields["latency_ms"],
            retrieved=fields["retrieved"],
            citations=fields["citations"],
            answered_by=fields.get("answered_by", ""),
            reasons=fields.get("reasons", []),
            error=fields.get("error") or "",
        )


def _hit_at(r: ItemResult, k: int) -> float:
    return 1.0 if r.rank and r.rank <= k else 0.0


def _with_evidence(results: list[ItemResult]) -> list[ItemResult]:
    return [r for r in _measured(results) if r.item.evidence and r.item.category not in NO_ANSWER_CATEGORIES]


def _measured(results: list[ItemResult]) -> list[ItemResult]:
    """The results that measured something: error items are counted apart (``count_errors``)."""
    return [r for r in results if not r.error]


def count_errors(results: list[ItemResult]) -> int:
    return sum(1 for r in results if r.error)


def summarise(results: list[ItemResult], ks=(1, 5, 10)) -> dict[str, float]:
    """The run's rates over the items that ran; ``n`` is how many did. Error items are left
    out of every figure here: ``count_errors`` (the results document's ``errors``) counts them."""
    results = _measured(results)
    with_evidence = _with_evidence(results)
    answerable = [r for r in results if r.item.answerable]
    unanswerable = [r for r in results if not r.item.answerable]
    answered = [r for r in answerable if not r.refused]
    m: dict[str, float] = {}
    for k in ks:
        m[f"recall@{k}"] = _mean([_hit_at(r, k) for r in with_evidence])
    m["mrr"] = _mean([1.0 / r.rank if r.rank else 0.0 for r in with_evidence])
    m["answer_accuracy"] = _mean([1.0 if r.correct else 0.0 for r in answerable])
    m["refusal_accuracy"] = _mean([1.0 if r.refused else 0.0 for r in unanswerable])
    m["false_refusal_rate"] = _mean([1.0 if r.refused else 0.0 for r in answerable])
    cited = sum(r.cited for r in answered)
    m["citation_precision"] = (sum(r.cited_hits for r in answered) / cited) if cited else 0.0
    m["grounded_rate"] = _mean([1.0 if r.grounded else 0.0 for r in results])
    m["answer_chars_median"] = float(statistics.median([len(r.answer) for r in results])) if results else 0.0
    lat = [r.latency_ms for r in results]
    m["latency_p50_ms"] = percentile(lat, 0.5)
    m["latency_p95_ms"] = percentile(lat, 0.95)
    m["n"] = len(results)
    return m


def rank_metrics(ranks: Iterable[int | None], ks: Iterable[int] = (1, 5, 10)) -> dict[str, float]:
    """recall@k (share of questions with a hit in the top k) and MRR from each question's first
    hit rank (None: no hit): the rule of ``summarise``, for the benchmarks and the bench scripts."""
    ranks = list(ranks)
    n = max(len(ranks), 1)
    m = {f"recall@{k}": sum(1 for r in ranks if r and r <= k) / n for k in ks}
    m["mrr"] = sum(1.0 / r for r in ranks if r) / n
    m["n"] = len(ranks)
    return m


def recall_curve(results: list[ItemResult], max_k: int) -> list[float]:
    """recall@k for k = 1..max_k."""
    ev = _with_evidence(results)
    return [_mean([_hit_at(r, k) for r in ev]) for k in range(1, max_k + 1)]


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0




def by_category(results: list[ItemResult]) -> dict[str, dict[str, float]]:
    cats: dict[str, list[ItemResult]] = {}
    for r in _measured(results):
        cats.setdefault(r.item.category, []).append(r)
    out = {}
    for cat, rs in sorted(cats.items()):
        ev = _with_evidence(rs)
        out[cat] = {
            "n": len(rs),
            "recall@5": _mean([_hit_at(r, 5) for r in ev]) if ev else float("nan"),
            "correct": _mean([1.0 if r.outcome_ok else 0.0 for r in rs]),
        }
    return out

