"""Ratings of answers (👍/👎 and an optional comment), kept in SQLite under the data dir, and
their export as an eval set (the JSONL format of qa_app/eval/sets.py) so what users confirmed
or disputed becomes something ``qa-app eval`` measures.

Each rating keeps what is needed to reproduce and judge the answer: the question, the answer's
text, its citations (document, quote), whether it was a refusal, and the settings it was made
with (generator, model, filters).
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from qa_app.sqlite_store import SQLiteStore

FILE_NAME = "feedback.sqlite3"
RATINGS = ("up", "down")
MAX_COMMENT_CHARS = 2000
MAX_KEYS = 3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    owner TEXT NOT NULL,
    conversation TEXT NOT NULL,
    rating TEXT NOT NULL,
    comment TEXT NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    refused INTEGER NOT NULL,
    grounded INTEGER NOT NULL,
    citations TEXT NOT NULL,
    settings TEXT NOT NULL
);
"""
_MARKER = re.compile(r"\[\d+\]")
# A figure with its unit: what an answer to a numeric question must contain (6%, 53家, 11分钟, 1.2万亿元).
_FIGURE = re.compile(
    r"\d+(?:[.,]\d+)*\s*(?:%|％|‰|个百分点|[十百千万亿]*(?:元|美元|人次|人|家|个|项|所|座|条|件|台|户|次|倍|天|分钟|小时|"
    r"公里|千米|平方米|平方公里|亩|吨|辆|张|套|场|名|位|万)?)"
)


class FeedbackError(ValueError):
    """A rating that cannot be stored: an unknown rating, a comment too long, no question."""


@dataclass
class Feedback:
    rating: str  # "up" | "down"
    question: str
    answer: str
    citations: list[dict[str, Any]] = field(default_factory=list)  # Citation.to_dict()
    refused: bool = False
    grounded: bool = True
    settings: dict[str, Any] = field(default_factory=dict)
    comment: str = ""
    owner: str = ""
    conversation: str = ""
    created: float = 0.0
    id: int | None = None


def check(item: Feedback) -> Feedback:
    """``item`` if it can be stored, else a FeedbackError that says why."""
    if item.rating not in RATINGS:
        raise FeedbackError(f"未知评价：{item.rating!r}（应为 up 或 down）。(Unknown rating {item.rating!r}: use up or down.)")
    if not item.question.strip():
        raise FeedbackError("评价缺少问题。(A rating needs the question it is about.)")
    if len(item.comment) > MAX_COMMENT_CHARS:
        raise FeedbackError(f"评论过长（上限 {MAX_COMMENT_CHARS} 字）。(The comment is longer than {MAX_COMMENT_CHARS} characters.)")
    return item


class FeedbackStore(SQLiteStore):
    """Ratings in ``path`` (SQLite); each call opens its own connection, so threads may share it."""

    FILE_NAME = FILE_NAME
    SCHEMA = _SCHEMA

    def add(self, item: Feedback) -> int:
        """Store a rating; its id (for a comment added later)."""
        item = check(item)
        with self._db() as db:
            cur = db.execute(
                "INSERT INTO feedback (created, owner, conversation, rating, comment, question, answer, refused,"
                " grounded, citations, settings) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (item.created or time.time(), item.owner, item.conversation, item.rating, item.comment.strip(),
                 item.question, item.answer, int(item.refused), int(item.grounded),
                 json.dumps(item.citations, ensure_ascii=False), json.dumps(item.settings, ensure_ascii=False)),
            )
        return int(cur.lastrowid)

    def set_comment(self, feedback_id: int, owner: str, comment: str) -> bool:
        """Add or replace the comment of one of ``owner``'s ratings; False when there is no such rating."""
        if len(comment) > MAX_COMMENT_CHARS:
            raise FeedbackError(f"评论过长（上限 {MAX_COMMENT_CHARS} 字）。(The comment is longer than {MAX_COMMENT_CHARS} characters.)")
        with self._db() as db:
            cur = db.execute("UPDATE feedback SET comment = ? WHERE id = ? AND owner = ?",
                             (comment.strip(), feedback_id, owner))
        return cur.rowcount == 1

    def items(self) -> list[Feedback]:
        """Every rating, oldest first."""
        if not self.path.exists():
            return []
        with self._db() as db:
            rows = db.execute(
                "SELECT id, created, owner, conversation, rating, comment, question, answer, refused, grounded,"
                " citations, settings FROM feedback ORDER BY id"
            ).fetchall()
        return [
            Feedback(id=r[0], created=r[1], owner=r[2], conversation=r[3], rating=r[4], comment=r[5], question=r[6],
                     answer=r[7], refused=bool(r[8]), grounded=bool(r[9]), citations=json.loads(r[10]),
                     settings=json.loads(r[11]))
            for r in rows
        ]


def answer_keys(question: str, answer: str, citations: Iterable[dict[str, Any]] = ()) -> list[str]:
    """Strings a correct answer to ``question`` must contain, taken from an answer a user confirmed:
    its figures (with their units) that the question does not already name, else the first cited
    quote the answer repeats, else the answer's first clause."""
    text = _MARKER.sub("", answer)
    keys: list[str] = []
    for m in _FIGURE.finditer(text):
        key = re.sub(r"\s+", "", m.group(0)).rstrip(",.")
        if key and key not in question and key not in keys and not re.fullmatch(r"\d{4}", key):
            keys.append(key)
        if len(keys) == MAX_KEYS:
            break
    if keys:
        return keys
    for c in citations:
        quote = str(c.get("quote") or "").strip()
        if quote and quote in text:
            return [quote]
    first = re.split(r"[。！？!?；;\n]", text.strip(), maxsplit=1)[0].strip()
    return [first[:40]] if first else []


def eval_item(item: Feedback, include_disliked: bool = False) -> dict[str, Any] | None:
    """One rating as an eval-set item (None when it is not exported).

    👍 on an answer: an answerable item, its keys from ``answer_keys`` and its evidence the cited
    quotes. 👍 on a refusal: an unanswerable item (the refusal was right). 👎 (only with
    ``include_disliked``): category "disliked" with no answer keys and the rejected answer and
    comment kept beside it; a person must write its answer_keys (or make it "unanswerable")
    before it measures anything, which ``needs_review`` says."""
    base = {
        "id": f"fb{item.id}",
        "question": item.question,
        "source": "feedback",
        "rating": item.rating,
        "settings": item.settings,
    }
    if item.comment:
        base["comment"] = item.comment
    evidence = [{"doc": str(c.get("doc_id", "")), "quote": str(c.get("quote", ""))}
                for c in item.citations if c.get("doc_id") and c.get("quote")]
    if item.rating == "up":
        if item.refused:
            return {**base, "answer": "", "answer_keys": [], "evidence": [], "category": "unanswerable"}
        keys = answer_keys(item.question, item.answer, item.citations)
        if not keys:
            return None
        return {**base, "answer": _MARKER.sub("", item.answer).strip(), "answer_keys": keys, "evidence": evidence,
                "category": "feedback"}
    if not include_disliked:
        return None
    return {**base, "answer": "", "answer_keys": [], "evidence": [], "category": "disliked", "needs_review": True,
            "rejected_answer": item.answer, "rejected_evidence": evidence, "was_refused": item.refused}


def export_eval_set(db_path: Path, out_path: Path, *, include_disliked: bool = False) -> int:
    """Write the ratings in ``db_path`` (a FeedbackStore file, e.g. ``<data_dir>/feedback.sqlite3``)
    as an eval set at ``out_path`` (JSONL, read by ``qa_app.eval.sets.load_eval_set``), one item
    per rating as ``eval_item`` describes; the same question rated again keeps only its latest
    rating. Returns the number of items written. The file is written whole or not at all."""
    latest: dict[str, Feedback] = {}
    for item in FeedbackStore(db_path).items():
        latest.pop(item.question.strip(), None)  # re-inserted last: the file keeps rating order
        latest[item.question.strip()] = item
    rows = [row for row in (eval_item(i, include_disliked) for i in latest.values()) if row is not None]
    out_path = Path(out_path)
    tmp = out_path.with_name(out_path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(out_path)
    return len(rows)
