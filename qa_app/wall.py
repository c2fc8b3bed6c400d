"""One deny-by-default wall in front of every route, when an API key is configured.

A request passes with ``Authorization: Bearer <key>`` (API clients) or with the session cookie
that ``/login`` gives for the key (the chat page and its internal routes: /config, the queue,
/gradio_api/*). Open without either: /healthz (a probe must not need a secret), /login and
/logout, and the API docs only when ``QA_PUBLIC_DOCS`` is set. A browser asking for a page is
sent to /login; anything else gets the API's 401.

The session is a signed expiry, not a server-side record: it survives restarts, needs no
storage, and every session ends when the key changes. The cookie is HttpOnly and
SameSite=Strict, so another site's form can neither read it nor send it along.

Gradio's own file-upload route is closed whatever the key: Gradio would keep any file posted
there. The page uploads through /v1/documents with its session cookie, under that route's limits.
"""
from __future__ import annotations

import hashlib
import hmac
import html
import logging
import time
from urllib.parse import parse_qs, quote, urlsplit

from qa_app.config import Settings

log = logging.getLogger("qa_app.wall")

COOKIE = "qa_session"
LOGIN_PATH = "/login"
LOGOUT_PATH = "/logout"
MAX_FORM_BYTES = 8 * 1024
_DOCS_PATHS = ("/docs", "/redoc", "/openapi.json")
_CLOSED_UPLOADS = ("/gradio_api/upload", "/upload")


def _sign(key: bytes, expires: int) -> str:
    return hmac.new(key, f"qa-session:{expires}".encode(), hashlib.sha256).hexdigest()


def session_token(key: str, hours: float, now: float | None = None) -> str:
    expires = int((now if now is not None else time.time()) + hours * 3600)
    return f"{expires}.{_sign(key.encode('utf-8'), expires)}"


def valid_session(key: bytes, token: str, now: float | None = None) -> bool:
    expires, _, signature = token.partition(".")
    if not expires.isdigit() or int(expires) < (now if now is not None else time.time()):
        return False
    return hmac.compare_digest(signature.encode("ascii", "replace"), _sign(key, int(expires)).encode())


def _cookies(headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in headers:
        if k.lower() == b"cookie":
            for part in v.decode("latin-1").split(";"):
                name, _, value = part.strip().partition("=")
                out.setdefault(name, value)
    return out


def bearer_ok(key: bytes, headers: list[tuple[bytes, bytes]]) -> bool:
    # Exactly one Authorization header: with two, which one a proxy or a framework reads differs.
    values = [v for k, v in headers if k.lower() == b"authorization"]
    if len(values) != 1:
        return False
    scheme, _, token = values[0].partition(b" ")
    return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), key)


def _safe_next(target: str | None) -> str:
    """Where to go after logging in: a path on this server only (never "//evil.example")."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else "/"


def login_page(next_path: str, error: str = "") -> str:
    warn = f'<p class="err" role="alert">{html.escape(error)}</p>' if error else ""
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>登录 · qa_app</title>
<style>
body{{font-family:"Noto Sans CJK SC","PingFang SC","Microsoft YaHei",system-ui,sans-serif;display:flex;
min-height:100vh;margin:0;align-items:center;justify-content:center;background:#f5f7fb;color:#1f2937}}
form{{background:#fff;padding:28px 32px;border-radius:12px;box-shadow:0 2px 12px rgba(0,0,0,.08);width:min(360px,90vw)}}
h1{{font-size:1.2em;margin:0 0 12px}} p{{font-size:.92em;line-height:1.6}} .err{{color:#a61b1b}}
input{{width:100%;box-sizing:border-box;padding:8px 10px;font-size:1em;margin:8px 0 14px;border:1px solid #cbd5e1;border-radius:6px}}
button{{padding:8px 18px;font-size:1em;border:0;border-radius:6px;background:#2563eb;color:#fff;cursor:pointer}}
@media (prefers-color-scheme: dark){{body{{background:#111827;color:#e5e7eb}}form{{background:#1f2937}}
input{{background:#111827;color:#e5e7eb;border-color:#374151}}.err{{color:#fca5a5}}}}
</style></head><body>
<form method="post" action="{LOGIN_PATH}">
<h1>请输入访问密钥</h1>
<p>这个问答服务需要密钥（服务器的 QA_API_KEY）。(This server needs its access key.)</p>
{warn}
<input type="password" name="key" autocomplete="current-password" autofocus required aria-label="密钥 key">
<input type="hidden" name="next" value="{html.escape(next_path, quote=True)}">
<button type="submit">登录 Log in</button>
</form></body></html>"""


async def _send(send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _read_form(receive) -> dict[str, str] | None:
    """The login form's fields, or None when the body is larger than a login form can be."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if len(body) > MAX_FORM_BYTES:
            return None
        if not message.get("more_body"):
            break
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in fields.items()}


class WallMiddleware:
    def __init__(self, app, settings: Settings, refuse):
        """``refuse(status, message, headers)`` is the API's JSON error response."""
        self.app = app
        self.key = settings.api_key.encode("utf-8") if settings.api_key else None
        self.hours = settings.session_hours
        self.public_docs = settings.public_docs
        self.refuse = refuse

    def _open(self, path: str) -> bool:
        if path in ("/healthz", LOGIN_PATH, LOGOUT_PATH):
            return True
        return self.public_docs and any(path == p or path.startswith(p + "/") for p in _DOCS_PATHS)

    def authorised(self, headers: list[tuple[bytes, bytes]]) -> bool:
        if self.key is None:
            return True
        token = _cookies(headers).get(COOKIE)
        return bearer_ok(self.key, headers) or (token is not None and valid_session(self.key, token))

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        if any(path == p or path.startswith(p + "/") for p in _CLOSED_UPLOADS):
            return await self.refuse(403, "此路径不接收文件：请用 POST /v1/documents 上传。"
                                          "(This route takes no files: upload through POST /v1/documents.)")(scope, receive, send)
        if self.key is None:
            return await self.app(scope, receive, send)
        if path == LOGIN_PATH:
            return await self._login(scope, receive, send)
        if path == LOGOUT_PATH:
            return await _send(send, 303, b"", [(b"location", LOGIN_PATH.encode()), (b"set-cookie", self._cookie("", 0))])
        headers = list(scope.get("headers") or [])
        if scope.get("method") == "OPTIONS" or self._open(path) or self.authorised(headers):
            return await self.app(scope, receive, send)
        # Who and where, never what they sent: a near-miss key in a log is a leaked key.
        sent = any(k.lower() == b"authorization" for k, _ in headers) or COOKIE in _cookies(headers)
        log.warning("refused %s %s from %s: %s API key", scope.get("method"), path,
                    (scope.get("client") or ("unknown",))[0], "wrong" if sent else "missing")
        accept = dict(headers).get(b"accept", b"")
        if scope["type"] == "http" and scope.get("method") in ("GET", "HEAD") and b"text/html" in accept:
            target = quote(path + ("?" + scope["query_string"].decode("latin-1") if scope.get("query_string") else ""), safe="/?=&")
            return await _send(send, 303, b"", [(b"location", f"{LOGIN_PATH}?next={target}".encode())])
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 4401})
        return await self.refuse(
            401, "缺少或错误的 API 密钥。(Missing or invalid API key: send 'Authorization: Bearer <key>', "
                 f"or log in at {LOGIN_PATH}.)", {"WWW-Authenticate": "Bearer"})(scope, receive, send)

    def _cookie(self, value: str, max_age: int, secure: bool = False) -> bytes:
        flags = f"; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Strict" + ("; Secure" if secure else "")
        return f"{COOKIE}={value}{flags}".encode()

    async def _login(self, scope, receive, send):
        html_type = (b"content-type", b"text/html; charset=utf-8")
        no_store = (b"cache-control", b"no-store")
        if scope.get("method") in ("GET", "HEAD"):
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            page = login_page(_safe_next(query.get("next", ["/"])[0])).encode()
            return await _send(send, 200, page, [html_type, no_store])
        if scope.get("method") != "POST":
            return await self.refuse(405, "登录页只接受 GET 和 POST。(Use GET or POST on /login.)",
                                     {"Allow": "GET, POST"})(scope, receive, send)
        form = await _read_form(receive)
        if form is None:
            return await self.refuse(413, "登录表单过大。(The login form is too large.)", None)(scope, receive, send)
        next_path = _safe_next(form.get("next"))
        if not hmac.compare_digest(form.get("key", "").strip().encode("utf-8"), self.key):
            log.warning("failed login from %s", (scope.get("client") or ("unknown",))[0])
            page = login_page(next_path, "密钥不对，请重试。(Wrong key: try again.)").encode()
            return await _send(send, 401, page, [html_type, no_store])
        cookie = self._cookie(session_token(self.key.decode("utf-8"), self.hours), int(self.hours * 3600),
                              secure=scope.get("scheme") == "https")
        return await _send(send, 303, b"", [(b"location", next_path.encode()), (b"set-cookie", cookie), no_store])
