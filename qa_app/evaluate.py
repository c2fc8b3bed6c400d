"""Batch evaluation of a Q&A set (JSONL, format in DESIGN.md): retrieval and answers.

Metrics: recall@k and MRR (a hit is a retrieved chunk of the evidence document that
contains an evidence quote, compared in normalised form), answer accuracy (every answer
key contained), refusal accuracy, false refusals, citation precision, latency.
"""
from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from qa_app.text import match_form

NO_ANSWER_CATEGORIES = {"unanswerable", "missing_figure"}


class EvalSetError(ValueError):
    pass


@dataclass
class EvalItem:
    id: str
    question: str
    answer_keys: list[str]
    evidence: list[dict[str, str]]
    category: str
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def answerable(self) -> bool:
        return bool(self.answer_keys) and self.category not in NO_ANSWER_CATEGORIES


def load_eval_set(path: Path) -> list[EvalItem]:
    items = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            items.append(
                EvalItem(
                    id=str(obj.get("id", f"{path.stem}-{n}")),
                    question=obj["question"],
                    answer_keys=list(obj.get("answer_keys") or []),
                    evidence=list(obj.get("evidence") or []),
                    category=str(obj.get("category", "")),
                    raw=obj,
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise EvalSetError(f"{path}:{n}: not a valid eval item ({exc})") from exc
    return items


def hit_rank(item: EvalItem, retrieved: Iterable[tuple[str, str]]) -> int | None:
    """1-based rank of the first (doc_id, text) that holds an evidence quote, else None."""
    quotes = [(e.get("doc"), match_form(e.get("quote", ""))) for e in item.evidence if e.get("quote")]
    for rank, (doc_id, text) in enumerate(retrieved, 1):
        t = match_form(text)
        if any((d is None or d == doc_id) and q and q in t for d, q in quotes):
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

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.item.raw,
            "rank": self.rank,
            "given_answer": self.answer,
            "refused": self.refused,
            "correct": self.correct,
            "grounded": self.grounded,
            "latency_ms": round(self.latency_ms, 2),
            "retrieved": self.retrieved,
        }


def summarise(results: list[ItemResult], ks=(1, 5, 10)) -> dict[str, float]:
    with_evidence = [r for r in results if r.item.evidence and r.item.category not in NO_ANSWER_CATEGORIES]
    answerable = [r for r in results if r.item.answerable]
    unanswerable = [r for r in results if not r.item.answerable]
    m: dict[str, float] = {}
    for k in ks:
        m[f"recall@{k}"] = _mean([1.0 if r.rank and r.rank <= k else 0.0 for r in with_evidence])
    m["mrr"] = _mean([1.0 / r.rank if r.rank else 0.0 for r in with_evidence])
    m["answer_accuracy"] = _mean([1.0 if r.correct else 0.0 for r in answerable])
    m["refusal_accuracy"] = _mean([1.0 if r.refused else 0.0 for r in unanswerable])
    m["false_refusal_rate"] = _mean([1.0 if r.refused else 0.0 for r in answerable])
    cited = sum(r.cited for r in answerable if not r.refused)
    m["citation_precision"] = (sum(r.cited_hits for r in answerable if not r.refused) / cited) if cited else 0.0
    m["grounded_rate"] = _mean([1.0 if r.grounded else 0.0 for r in results])
    m["answer_chars_median"] = float(statistics.median([len(r.answer) for r in results])) if results else 0.0
    lat = [r.latency_ms for r in results]
    m["latency_p50_ms"] = percentile(lat, 0.5)
    m["latency_p95_ms"] = percentile(lat, 0.95)
    m["n"] = float(len(results))
    return m


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def evaluate(items: list[EvalItem], assistant, *, top_k: int = 10, progress: bool = True) -> list[ItemResult]:
    """Run every item through retrieval (top_k, for recall@k) and the answerer."""
    from tqdm import tqdm

    results = []
    for item in tqdm(items, desc="Evaluating", unit="q", disable=not progress):
        passages = assistant.search(item.question, k=top_k)
        rank = hit_rank(item, [(p.doc.doc_id, p.chunk.text) for p in passages])
        t0 = time.perf_counter()
        ans = assistant.ask(item.question)
        latency = (time.perf_counter() - t0) * 1000
        cited_hits = sum(
            1 for c in ans.citations if hit_rank(item, [(c.doc_id, _chunk_text(assistant, c.chunk_id))]) is not None
        )
        results.append(
            ItemResult(
                item=item,
                rank=rank,
                answer=ans.text,
                refused=ans.refused,
                correct=(not ans.refused) and answer_correct(item, ans.text),
                cited_hits=cited_hits,
                cited=len(ans.citations),
                grounded=ans.grounded,
                latency_ms=latency,
                retrieved=[{"doc": p.doc.doc_id, "chunk_id": p.chunk.chunk_id, "text": p.chunk.text[:300]} for p in passages[:5]],
            )
        )
    return results


def _chunk_text(assistant, chunk_id: str) -> str:
    chunk = assistant.index.chunk(chunk_id)
    return chunk.text if chunk else ""


def by_category(results: list[ItemResult]) -> dict[str, dict[str, float]]:
    cats: dict[str, list[ItemResult]] = {}
    for r in results:
        cats.setdefault(r.item.category, []).append(r)
    out = {}
    for cat, rs in sorted(cats.items()):
        ev = [r for r in rs if r.item.evidence and r.item.category not in NO_ANSWER_CATEGORIES]
        out[cat] = {
            "n": float(len(rs)),
            "recall@5": _mean([1.0 if r.rank and r.rank <= 5 else 0.0 for r in ev]) if ev else float("nan"),
            "correct": _mean([1.0 if (r.correct if r.item.answerable else r.refused) else 0.0 for r in rs]),
        }
    return out


def format_table(metrics: dict[str, float]) -> str:
    lines = ["| metric | value |", "|---|---|"]
    for k, v in metrics.items():
        lines.append(f"| {k} | {int(v) if k == 'n' else (f'{v:.1f}' if 'ms' in k or 'chars' in k else f'{v:.3f}')} |")
    return "\n".join(lines)
