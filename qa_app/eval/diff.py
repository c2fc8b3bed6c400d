"""Compare two results documents (``qa-app eval --json``): which items got better or worse.

Items are matched by (file, id). An item's outcome is right when an answerable item was
answered correctly or an unanswerable one was refused; its retrieval is the evidence rank
(None = not retrieved). A change counts as better or worse by the outcome first, then by
the rank; when the two move in opposite directions the item is "mixed".
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qa_app.eval.report import format_value
from qa_app.eval.sets import NO_ANSWER_CATEGORIES


def load_results(path: Path) -> dict[str, Any]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or "items" not in doc or "metrics" not in doc:
        raise ValueError(f"{path}: not an eval results file (written by `qa-app eval --json`)")
    return doc


def _answerable(item: dict[str, Any]) -> bool:
    # Results written before the "answerable" field existed: derive it as the evaluator does.
    if "answerable" in item:
        return bool(item["answerable"])
    return bool(item.get("answer_keys")) and item.get("category") not in NO_ANSWER_CATEGORIES


def outcome_ok(item: dict[str, Any]) -> bool:
    return bool(item["correct"]) if _answerable(item) else bool(item["refused"])


def _outcome_label(item: dict[str, Any]) -> str:
    if _answerable(item):
        return "refused" if item["refused"] else ("correct" if item["correct"] else "wrong")
    return "refused" if item["refused"] else "answered"


def _rank_score(rank: int | None) -> float:
    return 1.0 / rank if rank else 0.0


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def compare_item(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any] | None:
    """What changed for one item, or None when neither outcome, refusal nor rank moved."""
    outcome = _sign(outcome_ok(b) - outcome_ok(a))
    retrieval = _sign(_rank_score(b.get("rank")) - _rank_score(a.get("rank")))
    changes = []
    if _outcome_label(a) != _outcome_label(b):
        changes.append(f"{_outcome_label(a)} → {_outcome_label(b)}")
    if a.get("rank") != b.get("rank"):
        changes.append(f"rank {a.get('rank') or '—'} → {b.get('rank') or '—'}")
    if not changes:
        return None
    if outcome and retrieval and outcome != retrieval:
        verdict = "mixed"
    else:
        verdict = {1: "better", -1: "worse", 0: "changed"}[outcome or retrieval]
    return {
        "file": b.get("file", ""),
        "id": b["id"],
        "category": b.get("category", ""),
        "question": b.get("question", ""),
        "verdict": verdict,
        "changes": changes,
        "outcome": [_outcome_label(a), _outcome_label(b)],
        "rank": [a.get("rank"), b.get("rank")],
    }


def _key(item: dict[str, Any]) -> tuple[str, str]:
    return (item.get("file", ""), str(item["id"]))


def diff(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    items_a = {_key(i): i for i in a["items"]}
    items_b = {_key(i): i for i in b["items"]}
    compared = [compare_item(items_a[k], items_b[k]) for k in items_b if k in items_a]
    changed = [c for c in compared if c]
    metrics = {
        k: {"a": a["metrics"].get(k), "b": vb, "delta": _delta(a["metrics"].get(k), vb)}
        for k, vb in b["metrics"].items()
    }
    return {
        "metrics": metrics,
        "better": [c for c in changed if c["verdict"] == "better"],
        "worse": [c for c in changed if c["verdict"] == "worse"],
        "mixed": [c for c in changed if c["verdict"] == "mixed"],
        "changed": [c for c in changed if c["verdict"] == "changed"],
        "only_a": [list(k) for k in items_a if k not in items_b],
        "only_b": [list(k) for k in items_b if k not in items_a],
        "unchanged": len(compared) - len(changed),
    }


def _delta(va: float | None, vb: float | None) -> float | None:
    return None if va is None or vb is None else vb - va


_DELTA_FORMATS = {"count": ".0f", "size": ".1f"}


def _kind(key: str) -> str:
    return "count" if key == "n" else "size" if "ms" in key or "chars" in key else "rate"


def format_diff(d: dict[str, Any]) -> str:
    lines = ["| metric | A | B | Δ |", "|---|---|---|---|"]
    for k, m in d["metrics"].items():
        delta = "—" if m["delta"] is None else f"{m['delta']:+{_DELTA_FORMATS.get(_kind(k), '.3f')}}"
        lines.append(f"| {k} | {format_value(k, m['a'])} | {format_value(k, m['b'])} | {delta} |")
    for verdict in ("worse", "better", "mixed", "changed"):
        rows = d[verdict]
        if not rows and verdict in ("mixed", "changed"):
            continue
        lines.append(f"\n{verdict} ({len(rows)}):")
        lines += [f"  {c['id']} [{c['category']}] {'; '.join(c['changes'])}  {c['question']}" for c in rows]
    lines.append(f"\nunchanged: {d['unchanged']}")
    for side, label in (("only_a", "only in A"), ("only_b", "only in B")):
        if d[side]:
            lines.append(f"{label}: " + ", ".join(f"{f}:{i}" for f, i in d[side]))
    return "\n".join(lines)
