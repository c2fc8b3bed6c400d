"""The server's defences, each tested through a real server on a loopback port: the API key
(compared in constant time, never logged), loopback bind and closed CORS by default, per-client
rate limits, request deadlines, no stack traces to clients, and uploads that stay inside the
data folder under a clean name and are never executed or served back.
"""
from __future__ import annotations

import hmac
import logging
import os
import stat
import threading
import time
import unicodedata
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from qa_app.ratelimit import RateLimiter

from .test_api import GDP_Q, KEY, error_message, post, serve, small_assistant


def app_for(assistant, **overrides):
    from qa_app.api import create_app

    settings = assistant.settings.model_copy(update=overrides)
    return create_app(settings, assistant, with_ui=False)


# --- the token bucket --------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_a_burst_then_the_rate():
    clock = Clock()
    limiter = RateLimiter(per_minute=60, burst=3, clock=clock)
    assert [limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("a") == pytest.approx(1.0)  # one token a second
    assert limiter.acquire("b") == 0.0  # another client has its own bucket
    clock.now += 0.5
    assert limiter.acquire("a") == pytest.approx(0.5)
    clock.now += 0.5
    assert limiter.acquire("a") == 0.0
    clock.now += 3600  # a long pause refills to the burst, not beyond
    assert [limiter.acquire("a") for _ in range(4)][-1] > 0


def test_bucket_memory_stays_bounded():
    clock = Clock()
    limiter = RateLimiter(per_minute=60, burst=2, clock=clock, max_clients=100)
    for i in range(1000):
        limiter.acquire(f"10.0.{i // 256}.{i % 256}")
        clock.now += 0.001
    assert len(limiter) <= 100
    with pytest.raises(ValueError):
        RateLimiter(per_minute=0, burst=1)


# --- rate limits over HTTP ---------------------------------------------------------------------
def test_rate_limit_429_with_retry_after(assistant):
    app = app_for(assistant, rate_limit_per_min=60, rate_limit_burst=3, rate_limit_exempt=[])
    with serve(app) as url:
        codes = [httpx.get(f"{url}/v1/models").status_code for _ in range(3)]
        r = post(f"{url}/v1/ask", {"question": GDP_Q})
        assert codes == [200, 200, 200]
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        assert "请求过于频繁" in error_message(r) and r.json()["error"]["type"] == "rate_limit_error"
        # Health checks are never limited.
        assert all(httpx.get(f"{url}/healthz").status_code == 200 for _ in range(10))
        time.sleep(1.5)  # more than Retry-After: a token is back
        assert httpx.get(f"{url}/v1/models").status_code == 200


def test_no_address_is_exempt_by_default_but_can_be(assistant, monkeypatch):
    """Loopback is limited too (anyone on a shared machine could otherwise guess keys
    unthrottled); an exempt list or a zero rate turns the limit off for a load bench."""
    from qa_app.config import Settings

    monkeypatch.delenv("QA_RATE_LIMIT_EXEMPT")  # the suite's own exemption (conftest.py)
    defaults = Settings()
    assert defaults.rate_limit_per_min > 0 and defaults.rate_limit_exempt == []
    many = defaults.rate_limit_burst + 5
    with serve(app_for(assistant, rate_limit_exempt=[])) as url:
        codes = [httpx.get(f"{url}/v1/models").status_code for _ in range(many)]
        assert codes[: defaults.rate_limit_burst] == [200] * defaults.rate_limit_burst and 429 in codes
    for overrides in ({"rate_limit_exempt": ["127.0.0.1"]}, {"rate_limit_per_min": 0}):
        with serve(app_for(assistant, **overrides)) as url:
            codes = {httpx.get(f"{url}/v1/models").status_code for _ in range(many)}
            assert codes == {200}, overrides


# --- the API key -------------------------------------------------------------------------------
class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(logging.Formatter("%(name)s %(message)s").format(record))  # with any traceback


LOGGERS = ["", "qa_app", "qa_app.api", "uvicorn", "uvicorn.error", "uvicorn.access"]


@pytest.fixture
def all_logs():
    """Every log record of the app and the server, access log included. Call the returned
    ``capture()`` once the server runs: uvicorn resets its loggers' handlers as it starts."""
    handler = Records()
    saved = {n: logging.getLogger(n).level for n in LOGGERS}

    def capture():
        for n in LOGGERS:
            logging.getLogger(n).addHandler(handler)
            logging.getLogger(n).setLevel(logging.DEBUG)

    yield handler, capture
    for n, level in saved.items():
        logging.getLogger(n).removeHandler(handler)
        logging.getLogger(n).setLevel(level)


def test_key_is_never_logged(assistant, all_logs):
    handler, capture = all_logs
    wrong = KEY + "-almost"
    with serve(app_for(assistant, api_key=KEY)) as url:
        capture()
        assert post(f"{url}/v1/ask", {"question": GDP_Q}).status_code == 401
        assert post(f"{url}/v1/ask", {"question": GDP_Q}, headers={"Authorization": f"Bearer {wrong}"}).status_code == 401
        r = post(f"{url}/v1/ask", {"question": GDP_Q}, headers={"Authorization": f"Bearer {KEY}"})
        assert r.status_code == 200
    text = "\n".join(handler.lines)
    assert "missing API key" in text and "wrong API key" in text  # refusals are logged …
    assert "/v1/ask" in text
    assert KEY not in text and "almost" not in text  # … without what was sent


def test_key_compared_in_constant_time(assistant, monkeypatch):
    from fastapi.testclient import TestClient

    seen: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a, b):
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    client = TestClient(app_for(assistant, api_key=KEY))
    assert client.get("/v1/models", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    # Both keys were checked by the constant-time comparison (whatever else compares digests).
    assert (b"nope", KEY.encode()) in seen and (KEY.encode(), KEY.encode()) in seen


# --- defaults: loopback bind, CORS closed ------------------------------------------------------
def test_serve_binds_loopback_by_default(tmp_path, monkeypatch):
    import uvicorn
    from typer.testing import CliRunner

    import qa_app.api
    from qa_app.cli import app as cli
    from qa_app.config import Settings

    monkeypatch.delenv("QA_HOST", raising=False)
    assert Settings().host == "127.0.0.1"
    calls: list[dict] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(kw))
    monkeypatch.setattr(qa_app.api, "create_app", lambda settings, assistant: object())
    result = CliRunner().invoke(cli, ["serve", "--no-ingest", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert calls and calls[0]["host"] == "127.0.0.1"


def test_cors_closed_by_default(assistant):
    with serve(app_for(assistant)) as url:
        pre = httpx.options(f"{url}/v1/ask", headers={"Origin": "http://evil.test", "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in pre.headers
        r = post(f"{url}/v1/ask", {"question": GDP_Q}, headers={"Origin": "http://evil.test"})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


# --- internal errors and deadlines -------------------------------------------------------------
SECRET = "/srv/secret/path.db: connection refused"


def test_internal_error_has_no_stack_trace(seeds_index, all_logs):
    from qa_app.answer import Assistant

    handler, capture = all_logs
    broken = Assistant(seeds_index.settings, index=seeds_index)

    def fail(*args, **kwargs):
        raise RuntimeError(SECRET)

    broken.searcher.search = fail
    chat = {"model": "qa-app", "messages": [{"role": "user", "content": GDP_Q}]}
    with serve(app_for(broken)) as url:
        capture()
        for path, body in (("/v1/ask", {"question": GDP_Q}), ("/v1/search", {"query": GDP_Q}),
                           ("/v1/chat/completions", chat), ("/v1/chat/completions", {**chat, "stream": True})):
            r = post(url + path, body)
            assert r.status_code == 500, (path, r.text)
            assert error_message(r) == "服务器内部错误。(Internal server error.)"
            assert "secret" not in r.text and "RuntimeError" not in r.text and ".py" not in r.text
        # A failure after the stream started ends it with a notice, not a hang or a trace.
        def half(*args, **kwargs):
            yield "地区生产总值"
            raise RuntimeError(SECRET)

        broken.stream_answer = half
        with httpx.stream("POST", f"{url}/v1/chat/completions", json={**chat, "stream": True}, timeout=30) as r:
            raw = "".join(r.iter_text())
        assert r.status_code == 200 and raw.endswith("data: [DONE]\n\n")
        assert "服务器内部错误" in raw and "secret" not in raw and "Traceback" not in raw
    assert SECRET in "\n".join(handler.lines)  # the details are in the server's log instead


def test_slow_request_gets_504(seeds_index):
    from qa_app.answer import Assistant

    release = threading.Event()
    slow = Assistant(seeds_index.settings.model_copy(update={"request_timeout_s": 0.5}), index=seeds_index)

    def stuck(*args, **kwargs):
        release.wait(60)
        raise RuntimeError("released")

    slow.searcher.search = stuck  # every answering route retrieves first
    chat = {"model": "qa-app", "messages": [{"role": "user", "content": GDP_Q}]}
    try:
        with serve(app_for(slow)) as url:
            for path, body in (("/v1/ask", {"question": GDP_Q}), ("/v1/search", {"query": GDP_Q}),
                               ("/v1/chat/completions", {**chat, "stream": True})):
                t0 = time.monotonic()
                r = post(url + path, body)
                assert r.status_code == 504, (path, r.text)
                assert time.monotonic() - t0 < 20  # generous: the point is it does not hang for 60 s
                assert "0.5" in error_message(r) and r.json()["error"]["type"] == "timeout"
            assert httpx.get(f"{url}/healthz").status_code == 200  # the server is still there
    finally:
        release.set()


def test_deadline_stops_work_between_steps():
    """``qa_app.deadline``: a check past the limit raises; a stream is bounded as a whole, not per
    step; an inner limit never extends an outer one; no limit set means no checks fire."""
    from qa_app import deadline

    deadline.check()  # no limit: nothing happens

    def steps():
        for i in range(20):
            deadline.check()
            time.sleep(0.05)
            yield i

    got: list[int] = []
    with pytest.raises(deadline.DeadlineExceeded) as caught:
        for item in deadline.bounded(steps(), 0.3):
            got.append(item)
    assert 3 <= len(got) <= 8 and "0.3" in str(caught.value)
    with deadline.limit(0.1):
        with deadline.limit(60):
            time.sleep(0.15)
            with pytest.raises(deadline.DeadlineExceeded):
                deadline.check()
    assert list(deadline.bounded(iter([1, 2]), 0)) == [1, 2]


# --- uploads -----------------------------------------------------------------------------------
BOUNDARY = "qa-test-boundary-5b1f"
CONTENT = "海淀区测试报告\n\n一、总体情况\n2025年海淀区新建口袋公园12座。\n"


def raw_upload(url: str, filename: bytes, content: bytes) -> httpx.Response:
    """A multipart upload written by hand, so the file name reaches the server byte for byte
    (httpx would percent-escape control characters)."""
    body = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="'.encode()
        + filename
        + b'"\r\nContent-Type: text/plain\r\n\r\n'
        + content
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    return httpx.post(f"{url}/v1/documents", content=body, timeout=120,
                      headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"})


TRICKY_NAMES = {
    "NUL inside": b"nul\x00byte.txt",
    "percent-encoded dots": b"..%2f..%2fpercent.txt",
    "fullwidth slashes": "..／..／fullwidth.txt".encode(),
    "fullwidth dots": "．．/．．/dots.txt".encode(),
    "windows path": b"C:\\Windows\\System32\\win.txt",
    "absolute path": b"/etc/cron.d/abs.txt",
    "right-to-left override": "report\u202etxt.exe.txt".encode(),
    "zero-width and tab": "zero\u200bwidth\tname.txt".encode(),
    "hidden dotfile": b".bashrc.txt",
    "very long": ("长" * 300 + ".txt").encode(),
}


@pytest.fixture(scope="module")
def uploads(tmp_path_factory, seeds_index):
    a = small_assistant(tmp_path_factory.mktemp("sec_uploads"), seeds_index)
    with serve(app_for(a)) as url:
        yield url, a


@pytest.mark.parametrize("case", list(TRICKY_NAMES))
def test_upload_name_stays_inside_and_clean(uploads, case):
    url, a = uploads
    data_dir = Path(a.index.data_dir).resolve()
    content = (CONTENT + f"{case}\n").encode()
    r = raw_upload(url, TRICKY_NAMES[case], content)
    assert r.status_code == 200, r.text
    [doc_id] = r.json()["added"] + r.json()["updated"]
    assert "/" not in doc_id and "\\" not in doc_id and not doc_id.startswith(".")
    assert not any(unicodedata.category(ch) in ("Cc", "Cf") for ch in doc_id), repr(doc_id)
    assert len(doc_id.encode()) <= 180 and doc_id.endswith(".txt")
    stored = data_dir / "uploads" / doc_id
    assert stored.resolve().parent == data_dir / "uploads" and stored.read_bytes() == content
    assert not stored.stat().st_mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)  # never executable
    # The only copy anywhere under the test's folder is the one in uploads/.
    copies = [p for p in data_dir.parent.rglob("*") if p.is_file() and p.stat().st_size == len(content) and p.read_bytes() == content]
    assert copies == [stored]
    for outside in ("/etc/cron.d/abs.txt", "/percent.txt", "/fullwidth.txt"):
        assert not os.path.exists(outside)
    assert httpx.delete(f"{url}/v1/documents/{quote(doc_id, safe='')}").status_code == 200
    assert not stored.exists()


def test_uploads_are_not_served_back(uploads):
    url, a = uploads
    page = "<html><body><h1>报告</h1><script>alert('x')</script><p>2025年新建口袋公园12座。</p></body></html>"
    r = httpx.post(f"{url}/v1/documents", files={"files": ("page.html", page.encode(), "text/html")}, timeout=120)
    assert r.status_code == 200, r.text
    for path in ("/v1/documents/page.html", "/uploads/page.html", "/v1/uploads/page.html", "/static/page.html"):
        got = httpx.get(url + path)
        assert got.status_code in (404, 405) and "<script>" not in got.text, path
    listing = httpx.get(f"{url}/v1/documents").text
    assert "<script>" not in listing and str(Path(a.index.data_dir)) not in listing
    found = post(f"{url}/v1/search", {"query": "口袋公园"}).json()["passages"]
    assert found and all("<script>" not in p["text"] for p in found)
    assert httpx.delete(f"{url}/v1/documents/page.html").status_code == 200


def test_oversize_upload_is_413_and_leaves_nothing(uploads):
    url, a = uploads  # max_upload_mb = 1 for this index
    uploads_dir = Path(a.index.data_dir) / "uploads"
    before = sorted(uploads_dir.iterdir()) if uploads_dir.exists() else []
    r = raw_upload(url, b"big.txt", ("海淀" * 200_000).encode())  # 1.2 MB
    assert r.status_code == 413 and "1 MB" in error_message(r)
    assert (sorted(uploads_dir.iterdir()) if uploads_dir.exists() else []) == before
