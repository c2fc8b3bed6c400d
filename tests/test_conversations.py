"""The saved-conversation store: per-owner isolation, reopen after a restart, rename, delete."""
from __future__ import annotations

import pytest

from qa_app.conversations import (
    MAX_TITLE_CHARS,
    ConversationError,
    ConversationStore,
    clean_title,
    new_owner_id,
    title_for,
)

MESSAGES = [{"role": "user", "content": "2023年海淀区地区生产总值增长了多少？"},
            {"role": "assistant", "content": "增长6%[1]"}]


def test_saved_conversation_survives_a_new_store_on_the_same_file(tmp_path):
    owner = new_owner_id()
    conv = ConversationStore.in_data_dir(tmp_path).create(owner, title_for(MESSAGES[0]["content"]), MESSAGES,
                                                          {"asked": ["2023年海淀区地区生产总值增长了多少？"]})
    again = ConversationStore.in_data_dir(tmp_path)  # what a restarted server opens
    got = again.get(owner, conv.id)
    assert got is not None and got.messages == MESSAGES
    assert got.state == {"asked": ["2023年海淀区地区生产总值增长了多少？"]}
    assert got.title == "2023年海淀区地区生产总值增长了多少？"
    assert [s.id for s in again.summaries(owner)] == [conv.id]


def test_one_owner_never_sees_or_changes_anothers(tmp_path):
    store = ConversationStore(tmp_path / "c.sqlite3")
    alice, bob = new_owner_id(), new_owner_id()
    conv = store.create(alice, "甲", MESSAGES)
    assert store.summaries(bob) == []
    assert store.get(bob, conv.id) is None
    assert store.rename(bob, conv.id, "乙") is False
    assert store.save(bob, conv.id, []) is False
    assert store.delete(bob, conv.id) is False
    got = store.get(alice, conv.id)
    assert got.title == "甲" and got.messages == MESSAGES


def test_save_rename_delete_and_order(tmp_path):
    store = ConversationStore(tmp_path / "c.sqlite3")
    owner = new_owner_id()
    first = store.create(owner, "一", MESSAGES[:1])
    second = store.create(owner, "二", MESSAGES[:1])
    assert [s.title for s in store.summaries(owner)] == ["二", "一"]
    assert store.save(owner, first.id, MESSAGES, {"asked": ["q"]})  # updated: now the most recent
    assert [s.title for s in store.summaries(owner)] == ["一", "二"]
    assert store.get(owner, first.id).messages == MESSAGES
    assert store.rename(owner, second.id, "  新的\n标题 ")
    assert store.get(owner, second.id).title == "新的 标题"
    assert store.delete(owner, first.id)
    assert store.get(owner, first.id) is None
    assert [s.title for s in store.summaries(owner)] == ["新的 标题"]


def test_bad_owner_and_titles_are_clear_errors(tmp_path):
    store = ConversationStore(tmp_path / "c.sqlite3")
    for owner in ("", "short", "x" * 100, "../../etc", None):
        with pytest.raises(ConversationError):
            store.summaries(owner)
    owner = new_owner_id()
    conv = store.create(owner, "原标题", MESSAGES)
    with pytest.raises(ConversationError):
        store.rename(owner, conv.id, "   ")
    assert store.get(owner, conv.id).title == "原标题"  # nothing lost
    long = clean_title("问" * 200)
    assert len(long) == MAX_TITLE_CHARS and long.endswith("…")
    assert new_owner_id() != new_owner_id()
