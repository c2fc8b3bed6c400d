"""What bounds a request, outside the routes: the body size (before a byte is read), a token
bucket per client address, and the deadline of the work a route starts."""
from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread
from starlette.exceptions import HTTPException as StarletteHTTPException

from qa_app import deadline
from qa_app.api.errors import MIB, ApiError, error_response, too_large_message
from qa_app.config import Settings
from qa_app.ratelimit import RateLimiter

log = logging.getLogger("qa_app.api")

API_PREFIX = "/v1"
UPLOAD_PATH = f"{API_PREFIX}/documents"
MULTIPART_SLACK = 64 * 1024  # boundaries and part headers around the uploaded bytes


class _BodyTooLarge(StarletteHTTPException):
    def __init__(self, limit: int):
        super().__init__(413, too_large_message(limit))


def is_api_path(path: str) -> bool:
    return path == API_PREFIX or path.startswith(API_PREFIX + "/")


def client_address(scope) -> str:
    """The peer's address. Proxy headers (X-Forwarded-For) are not trusted: any client can
    write them. Behind a reverse proxy, limit there (or run uvicorn with --proxy-headers)."""
    client = scope.get("client")
    return client[0] if client else "unknown"


# --- body size, before any body is read -------------------------------------------------------------
class GuardMiddleware:
    """For every route: the body size limit (uploads to /v1/documents get the upload limit).

    Runs before routing, so an oversized upload is refused before its bytes are read, and a
    body that lies about its length (or sends none) is cut off once it passes the limit.
    """

    def __init__(self, app, settings: Settings):
        self.app = app
        self.request_limit = settings.max_request_kb * 1024
        self.upload_limit = settings.max_upload_mb * MIB + MULTIPART_SLACK

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "")
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        limit = self.upload_limit if (path == UPLOAD_PATH and scope.get("method") == "POST") else self.request_limit
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > limit
            except ValueError:
                return await error_response(400, "Content-Length 无效。(Invalid Content-Length header.)")(scope, receive, send)
            if too_big:
                return await error_response(413, too_large_message(limit))(scope, receive, send)

        received = 0

        async def counted_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:  # a chunked body without (or lying about) its length
                    raise _BodyTooLarge(limit)
            return message

        started = False

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracking_send)
        except _BodyTooLarge:
            if started:
                raise
            await error_response(413, too_large_message(limit))(scope, receive, send)


# --- rate limits, before auth (so key guessing is throttled too) ----------------------------------
def does_work(scope) -> bool:
    """Requests that cost the server work or test a secret: every /v1 call, and anything that
    is not a read of the page (its questions go through POSTs to the page's queue; logins are
    POSTs). Page assets, /healthz and CORS preflights are free, or a page load of a few dozen
    scripts would empty the bucket."""
    method = scope.get("method")
    if method == "OPTIONS":
        return False
    return is_api_path(scope.get("path", "")) or method not in ("GET", "HEAD")


class RateLimitMiddleware:
    """A token bucket per client address (``qa_app.ratelimit``) over the requests that do work;
    429 with Retry-After when it is empty. Addresses in ``QA_RATE_LIMIT_EXEMPT`` pass."""

    def __init__(self, app, settings: Settings):
        self.app = app
        self.limiter = RateLimiter(settings.rate_limit_per_min, settings.rate_limit_burst)
        self.exempt = frozenset(settings.rate_limit_exempt)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not does_work(scope):
            return await self.app(scope, receive, send)
        client = client_address(scope)
        wait = 0.0 if client in self.exempt else self.limiter.acquire(client)
        if wait <= 0:
            return await self.app(scope, receive, send)
        seconds = max(1, math.ceil(wait))
        response = error_response(
            429, f"请求过于频繁，请 {seconds} 秒后再试。(Too many requests: retry in {seconds} s.)",
            headers={"Retry-After": str(seconds)},
        )
        await response(scope, receive, send)


# --- deadlines ------------------------------------------------------------------------------------
T = TypeVar("T")


async def within_deadline(seconds: float, work: Callable[[], T]) -> T:
    """``work()`` in the threadpool; past ``seconds`` (0 = no limit) a 504 error instead.

    The work runs under the same deadline (``qa_app.deadline``), so it stops at its next step
    instead of holding a core after the client has had its 504; the timer here answers the
    client even when a step (a model's reply) is slow to end."""
    if seconds <= 0:
        return await anyio.to_thread.run_sync(work)
    try:
        with anyio.fail_after(seconds):
            return await anyio.to_thread.run_sync(lambda: deadline.within(seconds, work), abandon_on_cancel=True)
    except (TimeoutError, deadline.DeadlineExceeded):
        log.warning("request abandoned after %.1f s", seconds)
        limit = f"{seconds:g}"
        raise ApiError(504, f"处理超时（上限 {limit} 秒），请稍后再试。(The request took longer than {limit} s.)") from None

