"""Bad questions get a precise error, everywhere a question comes in; odd but sensible ones
(emoji, mixed scripts, invisible characters) still get answered.

Through the Python API (``Assistant.ask`` / ``stream_answer`` / ``search``) the error is a
``QuestionError`` naming the problem; through HTTP it is a 400 (413 for a body over the size
limit) JSON error with that message, for /v1/ask, /v1/search and /v1/chat/completions with
and without streaming — never a 500 and never a stack trace.
"""
from __future__ import annotations

import json

import httpx
import pytest

from qa_app.answer import QuestionError

from .test_api import GDP_DOC, GDP_Q, base, error_message, post  # noqa: F401  (base: the seeds server fixture)

# (question, words the error message must contain)
BAD = {
    "empty": ("", "问题为空"),
    "whitespace": (" \t\n\u3000 ", "问题为空"),
    "invisible only": ("\u200b\ufeff\u202e", "问题为空"),
    "too long": ("海" * 2001, "问题过长（2001 字符，上限 2000）"),
    "NUL byte": ("2023年海淀区\x00地区生产总值增长了多少？", "无效字符 U+0000（第 9 个字符）"),
    "control bytes": ("\x01\x02\x1b[31m", "无效字符 U+0001"),
    "unpaired surrogate": ("2023年海淀区GDP\ud800增长了多少？", "无效字符 U+D800"),
    "punctuation only": ("？？？!!", "没有文字或数字"),
    "emoji only": ("🤔🤔👍", "没有文字或数字"),
}


def _raises(call, fragment: str) -> None:
    with pytest.raises(QuestionError) as err:
        call()
    assert fragment in str(err.value)
    assert "(" in str(err.value)  # and an English sentence for non-Chinese readers


@pytest.mark.parametrize("case", list(BAD))
def test_assistant_names_the_problem(assistant, case):
    question, fragment = BAD[case]
    _raises(lambda: assistant.ask(question), fragment)
    _raises(lambda: assistant.search(question), fragment)
    _raises(lambda: next(assistant.stream_answer(question)), fragment)


def test_non_text_question(assistant):
    _raises(lambda: assistant.ask(None), "必须是文本")
    _raises(lambda: assistant.search(b"2023"), "必须是文本")


def test_history_is_checked_too(assistant):
    _raises(lambda: assistant.ask("2023年呢？", history=[GDP_Q, "x\x00y"]), "对话历史第 2 条包含无效字符 U+0000")
    _raises(lambda: assistant.ask("2023年呢？", history=["海" * 2001]), "对话历史第 1 条过长")
    # Turns with nothing to search for are skipped, so the follow-up still finds its topic.
    a = assistant.ask("2023年呢？", history=["2024年海淀区地区生产总值增长了多少？", "👍", "  "])
    assert not a.refused and "6%" in a.text


@pytest.mark.parametrize("question", [
    "2023年海淀区GDP增长了多少？🤔",
    "🤔 2023年海淀区地区生产总值增长了多少？？？",
    "2023年海淀\u200b区地区生产\ufeff总值增长了多少？",  # zero-width space and BOM from a paste
    "What was 海淀区's GDP growth in 2023年?",
    "2023年海澱區地區生產總值增長了多少？👍",  # Traditional script with an emoji
])
def test_emoji_and_mixed_script_questions_are_answered(assistant, question):
    a = assistant.ask(question)
    assert not a.refused and a.grounded, (a.text, a.reasons)
    assert "6%" in a.text and a.citations[0].doc_id == GDP_DOC
    assert "\u200b" not in a.question and "\ufeff" not in a.question


# --- over HTTP ---------------------------------------------------------------------------------
def _bodies(question: str) -> dict[str, dict]:
    chat = {"model": "qa-app", "messages": [{"role": "user", "content": question}]}
    return {"/v1/ask": {"question": question}, "/v1/search": {"query": question},
            "chat": chat, "chat stream": {**chat, "stream": True}}


def _send(base_url: str, route: str, body: dict) -> httpx.Response:
    path = "/v1/chat/completions" if route.startswith("chat") else route
    # ensure_ascii keeps a lone surrogate as the JSON escape \ud800, the way a client sends it.
    data = json.dumps(body, ensure_ascii=True).encode()
    return httpx.post(base_url + path, content=data, headers={"content-type": "application/json"}, timeout=60)


@pytest.mark.parametrize("case", [c for c in BAD if c != "too long"])
def test_api_gives_400_with_the_message(base, case):  # noqa: F811
    question, fragment = BAD[case]
    for route, body in _bodies(question).items():
        r = _send(base, route, body)
        assert r.status_code == 400, (route, r.status_code, r.text[:300])
        assert r.headers["content-type"].startswith("application/json"), route
        assert fragment in error_message(r), route


def test_api_too_long_and_one_megabyte(base):  # noqa: F811
    for route, body in _bodies("海" * 2001).items():
        r = _send(base, route, body)
        assert r.status_code == 400 and "问题过长" in error_message(r), route
    for route, body in _bodies("海" * (1 << 20)).items():  # 1 M characters: refused before parsing
        r = _send(base, route, body)
        assert r.status_code == 413 and "256 KB" in error_message(r), route


def test_api_body_that_is_not_text(base):  # noqa: F811
    for payload in (b'{"question": "\xff\xfe\x00\x01"}', bytes(range(256)), b"\x00" * 1000):
        r = httpx.post(f"{base}/v1/ask", content=payload, headers={"content-type": "application/json"}, timeout=60)
        assert r.status_code == 400 and "JSON" in error_message(r), payload[:20]
    r = _send(base, "/v1/ask", {"question": ["a", "list"]})
    assert r.status_code == 422 and "question" in error_message(r)


def test_api_bad_history_and_filters(base):  # noqa: F811
    r = _send(base, "/v1/ask", {"question": "2023年呢？", "history": [GDP_Q, "\ud800"]})
    assert r.status_code == 400 and "对话历史第 2 条" in error_message(r)
    # An unknown document id that cannot even be encoded is still a plain 422, not a 500.
    r = _send(base, "/v1/ask", {"question": GDP_Q, "filters": {"docs": ["\ud800.txt"]}})
    assert r.status_code == 422 and "未知文档" in error_message(r)
    messages = [{"role": "user", "content": "x\x07"}, {"role": "user", "content": "2023年呢？"}]
    r = _send(base, "chat", {"model": "qa-app", "messages": messages})
    assert r.status_code == 400 and "对话历史第 1 条包含无效字符 U+0007" in error_message(r)


def test_api_answers_emoji_question_in_every_route(base):  # noqa: F811
    question = "2023年海淀区GDP增长了多少？🤔"
    r = post(f"{base}/v1/ask", {"question": question})
    assert r.status_code == 200 and "6%" in r.json()["answer"] and r.json()["question"] == question
    r = post(f"{base}/v1/search", {"query": question})
    assert r.status_code == 200 and GDP_DOC in {p["doc_id"] for p in r.json()["passages"]}
    body = {"model": "qa-app", "stream": True, "messages": [{"role": "user", "content": question}]}
    with httpx.stream("POST", f"{base}/v1/chat/completions", json=body, timeout=60) as s:
        assert s.status_code == 200
        raw = "".join(s.iter_text())
    chunks = [json.loads(e[6:]) for e in raw.split("\n\n") if e.startswith("data: {")]
    assert "6%" in "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert chunks[-1]["citations"][0]["doc_id"] == GDP_DOC


def test_a_question_with_too_many_parts_is_refused_before_any_work(assistant):
    limit = assistant.settings.max_subquestions
    many = "2023年海淀区地区生产总值增长了多少？" + "2024年呢？" * limit
    with pytest.raises(QuestionError, match=f"最多可以包含 {limit} 个小问题，这里有 {limit + 1} 个"):
        assistant.ask(many)
    with pytest.raises(QuestionError, match="at most"):
        assistant.ask(("2023年？" * 400)[:1000])  # took minutes of one core when every part was answered
    # Within the limit a compound question is answered part by part.
    answer = assistant.ask("2023年海淀区地区生产总值增长了多少？2024年呢？")
    assert not answer.refused and "6%" in answer.text and len(answer.citations) >= 2


def test_a_lone_surrogate_in_the_model_name_is_a_clear_error(base):  # noqa: F811
    for stream in (False, True):
        body = {"model": "qa-app\ud800", "stream": stream, "messages": [{"role": "user", "content": "2023年海淀区GDP增长了多少？"}]}
        r = _send(base, "chat", body)
        assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found", (stream, r.text[:300])
