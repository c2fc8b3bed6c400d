"""Saved conversations of the chat page: one SQLite file under the data dir, keyed by owner.

The owner is a random id a browser keeps for itself (the page's ``gr.BrowserState``); every
read and write names it, so one browser never reads, renames or deletes another's conversation
(an id that is not the caller's looks exactly like an id that does not exist). What is saved is
what the page needs to reopen a conversation as it was: the rendered messages and the page's
own state (the questions asked, the answers behind each message, for feedback).
"""
from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from qa_app.sqlite_store import SQLiteStore

FILE_NAME = "conversations.sqlite3"
MAX_TITLE_CHARS = 60
MAX_CONVERSATIONS = 500  # per owner; the oldest beyond it are dropped when a new one is saved
_OWNER = re.compile(r"[A-Za-z0-9_-]{16,64}")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    title TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    messages TEXT NOT NULL,
    state TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_owner ON conversations (owner, updated);
"""


class ConversationError(ValueError):
    """A request the store cannot honour: a malformed owner id, an empty title."""


@dataclass(frozen=True)
class Summary:
    id: str
    title: str
    updated: float


@dataclass
class Conversation:
    id: str
    owner: str
    title: str
    created: float
    updated: float
    messages: list[dict[str, Any]] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)


def new_owner_id() -> str:
    """A fresh owner id: unguessable, so knowing the page's address is not knowing its history."""
    return uuid.uuid4().hex + uuid.uuid4().hex[:8]


def check_owner(owner: str | None) -> str:
    if not isinstance(owner, str) or not _OWNER.fullmatch(owner):
        raise ConversationError("无效的浏览器标识，请刷新页面。(Invalid browser id: reload the page.)")
    return owner


def clean_title(title: str | None) -> str:
    """A title as it is shown in the list: one line, trimmed, at most MAX_TITLE_CHARS characters."""
    text = " ".join((title or "").split())
    if not text:
        raise ConversationError("标题不能为空。(The title cannot be empty.)")
    return text if len(text) <= MAX_TITLE_CHARS else text[: MAX_TITLE_CHARS - 1] + "…"


def title_for(question: str) -> str:
    """The default title of a conversation: its first question."""
    return clean_title(question or "新对话")


class ConversationStore(SQLiteStore):
    """Conversations in ``path`` (SQLite). Safe to share between threads: each call opens its own
    connection, and SQLite serialises the writes."""

    FILE_NAME = FILE_NAME
    SCHEMA = _SCHEMA

    def create(self, owner: str, title: str, messages: list[dict], state: dict | None = None) -> Conversation:
        owner = check_owner(owner)
        now = time.time()
        conv = Conversation(uuid.uuid4().hex, owner, clean_title(title), now, now, list(messages), dict(state or {}))
        with self._db() as db:
            db.execute(
                "INSERT INTO conversations (id, owner, title, created, updated, messages, state) VALUES (?,?,?,?,?,?,?)",
                (conv.id, owner, conv.title, now, now, _dump(conv.messages), _dump(conv.state)),
            )
            # Unbounded growth from one browser would fill the disk: keep its newest conversations.
            db.execute(
                "DELETE FROM conversations WHERE owner = ? AND id NOT IN "
                "(SELECT id FROM conversations WHERE owner = ? ORDER BY updated DESC LIMIT ?)",
                (owner, owner, MAX_CONVERSATIONS),
            )
        return conv

    def save(self, owner: str, conv_id: str, messages: list[dict], state: dict | None = None) -> bool:
        """Replace a conversation's messages and state; False when ``owner`` has no such conversation."""
        owner = check_owner(owner)
        with self._db() as db:
            cur = db.execute(
                "UPDATE conversations SET messages = ?, state = ?, updated = ? WHERE id = ? AND owner = ?",
                (_dump(list(messages)), _dump(dict(state or {})), time.time(), conv_id, owner),
            )
        return cur.rowcount == 1

    def get(self, owner: str, conv_id: str) -> Conversation | None:
        owner = check_owner(owner)
        with self._db() as db:
            row = db.execute(
                "SELECT id, owner, title, created, updated, messages, state FROM conversations WHERE id = ? AND owner = ?",
                (conv_id, owner),
            ).fetchone()
        if row is None:
            return None
        return Conversation(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]), json.loads(row[6]))

    def summaries(self, owner: str) -> list[Summary]:
        """The owner's conversations, the most recently updated first."""
        owner = check_owner(owner)
        with self._db() as db:
            rows = db.execute(
                "SELECT id, title, updated FROM conversations WHERE owner = ? ORDER BY updated DESC, created DESC",
                (owner,),
            ).fetchall()
        return [Summary(*row) for row in rows]

    def rename(self, owner: str, conv_id: str, title: str) -> bool:
        owner = check_owner(owner)
        title = clean_title(title)
        with self._db() as db:
            cur = db.execute("UPDATE conversations SET title = ? WHERE id = ? AND owner = ?", (title, conv_id, owner))
        return cur.rowcount == 1

    def delete(self, owner: str, conv_id: str) -> bool:
        owner = check_owner(owner)
        with self._db() as db:
            cur = db.execute("DELETE FROM conversations WHERE id = ? AND owner = ?", (conv_id, owner))
        return cur.rowcount == 1


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
