"""Ratings stored with what produced them, and exported as an eval set `qa-app eval` reads."""
from __future__ import annotations

import json

import pytest

from qa_app.eval.sets import load_eval_set
from qa_app.feedback import Feedback, FeedbackError, FeedbackStore, answer_keys, export_eval_set
from qa_app.text import normalize

SETTINGS = {"generator": "extractive", "docs": [], "years": []}


def rated(assistant, question: str, rating: str, comment: str = "") -> Feedback:
    answer = assistant.ask(question)
    return Feedback(rating=rating, question=question, answer=answer.text,
                    citations=[c.to_dict() for c in answer.citations], refused=answer.refused,
                    grounded=answer.grounded, settings=SETTINGS, comment=comment, owner="o" * 20)


def test_ratings_of_real_answers_export_as_an_eval_set(assistant, tmp_path):
    store = FeedbackStore.in_data_dir(tmp_path)
    good = rated(assistant, "2023年海淀区地区生产总值增长了多少？", "up")
    refusal = rated(assistant, "朝阳区2023年地区生产总值增速是多少？", "up")
    bad = rated(assistant, "学院路街道有哪些养老助餐点？", "down", "没有列出地址")
    assert refusal.refused and not good.refused
    ids = [store.add(x) for x in (good, refusal, bad)]
    assert store.set_comment(ids[0], "o" * 20, "准确")
    assert not store.set_comment(ids[0], "p" * 20, "别人的")  # only the rater's own

    out = tmp_path / "feedback.jsonl"
    assert export_eval_set(store.path, out) == 2  # 👎 only on request
    items = load_eval_set(out)
    assert not [i.error for i in items if i.error]
    first, second = items
    assert first.question == good.question and first.answerable
    assert "6%" in first.answer_keys and first.raw["comment"] == "准确"
    assert first.evidence and all(e["doc"] and e["quote"] for e in first.evidence)
    assert first.raw["settings"] == SETTINGS
    # The keys hold for the answer that was confirmed, as the eval will check them.
    assert all(normalize(k) in normalize(good.answer) for k in first.answer_keys)
    assert second.category == "unanswerable" and not second.answerable

    assert export_eval_set(store.path, out, include_disliked=True) == 3
    disliked = load_eval_set(out)[2]
    assert disliked.raw["needs_review"] and disliked.raw["rejected_answer"] == bad.answer
    assert disliked.raw["comment"] == "没有列出地址"


def test_a_question_rated_again_keeps_its_latest_rating(tmp_path):
    store = FeedbackStore(tmp_path / "f.sqlite3")
    store.add(Feedback("down", "q?", "增长6%[1]"))
    store.add(Feedback("up", "q?", "增长6%[1]", citations=[{"doc_id": "a.txt", "quote": "增长6%"}]))
    out = tmp_path / "out.jsonl"
    assert export_eval_set(store.path, out) == 1
    assert json.loads(out.read_text(encoding="utf-8"))["answer_keys"] == ["6%"]


def test_bad_ratings_are_refused_and_nothing_is_stored(tmp_path):
    store = FeedbackStore(tmp_path / "f.sqlite3")
    for item in (Feedback("meh", "q?", "a"), Feedback("up", "  ", "a"), Feedback("up", "q?", "a", comment="x" * 3000)):
        with pytest.raises(FeedbackError):
            store.add(item)
    assert store.items() == []


def test_answer_keys_prefer_new_figures_over_what_the_question_names():
    assert answer_keys("2023年GDP增长多少？", "2023年全区地区生产总值增长6%[1]，达到1.2万亿元[2]。") == ["6%", "1.2万亿元"]
    assert answer_keys("北京第一家民营银行叫什么？", "中关村银行[1]",
                       [{"quote": "中关村银行", "doc_id": "d"}]) == ["中关村银行"]
