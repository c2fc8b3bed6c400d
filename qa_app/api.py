"""The HTTP API (FastAPI): OpenAI-compatible chat, ask, search, documents, health.

One ``Assistant`` is shared by every request. Handlers that call it are plain ``def``
functions, so FastAPI runs them in its threadpool and queries proceed in parallel; uploads
and deletions are serialised by a lock (queries keep running during an ingest: the index
swaps in a new snapshot only when a write is complete).

Every error is a JSON object ``{"error": {"message", "type", "code"}, "detail": message}``
(the shape OpenAI clients understand); stack traces stay in the server log.

In front of every route, outermost first: CORS (closed unless ``QA_CORS_ORIGINS``), a token
bucket per client address over the requests that do work (429, ``QA_RATE_LIMIT_PER_MIN``), the
key wall (401 or the login page, ``qa_app.wall``), body size limits (413). Answering routes run
under a deadline that stops the work (504, ``QA_REQUEST_TIMEOUT_S``; ``qa_app.deadline``).
"""
from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import re
import shutil
import threading
from contextlib import asynccontextmanager
import time
import unicodedata
import uuid
from pathlib import Path
from typing import Annotated, Any, Callable, Iterator, TypeVar

import anyio
import anyio.to_thread
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from qa_app import deadline
from qa_app.answer import Assistant, EmptyIndexError, QuestionError
from qa_app.config import Settings, get_settings
from qa_app.places import gazetteer
from qa_app.index.hybrid import Filters
from qa_app.ingest.loaders import LoaderError, supported
from qa_app.llm.base import GeneratorError
from qa_app.models import Answer, DocumentInfo
from qa_app.ratelimit import RateLimiter
from qa_app.wall import WallMiddleware

log = logging.getLogger("qa_app.api")

API_PREFIX = "/v1"
UPLOAD_PATH = f"{API_PREFIX}/documents"
MIB = 1024 * 1024
MULTIPART_SLACK = 64 * 1024  # boundaries and part headers around the uploaded bytes
MAX_TOP_K = 50


# --- errors -----------------------------------------------------------------------------------
class ApiError(Exception):
    def __init__(self, status: int, message: str, type_: str | None = None, **extra: Any):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.extra = extra


MODEL_ID = "qa-app"  # the one model this server answers as, whichever generator is configured
_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
          405: "invalid_request_error", 413: "request_too_large", 415: "unsupported_media_type",
          422: "invalid_request_error", 429: "rate_limit_error", 503: "service_unavailable", 504: "timeout"}


class SafeJSONResponse(JSONResponse):
    """JSON that renders whatever a client sent back to it: an unpaired surrogate echoed in a
    message (an unknown document id with a lone surrogate) becomes "?" instead of failing to encode (a 500)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "replace")


# OpenAI's error codes are strings ("invalid_api_key", "model_not_found"); these are the defaults by status.
_CODES = {400: "invalid_request", 401: "invalid_api_key", 404: "not_found", 405: "method_not_allowed",
          413: "request_too_large", 415: "unsupported_media_type", 422: "invalid_value", 429: "rate_limit_exceeded",
          500: "internal_error", 503: "service_unavailable", 504: "timeout"}


def error_response(status: int, message: str, type_: str | None = None, headers: dict | None = None,
                   param: str | None = None, code: str | None = None, **extra: Any) -> JSONResponse:
    """The OpenAI error envelope ``{"error": {"message", "type", "param", "code"}}`` (``detail``
    repeats the message for clients written against FastAPI's default)."""
    body = {"error": {"message": message, "type": type_ or _TYPES.get(status, "api_error"), "param": param,
                      "code": code or _CODES.get(status, "error")}, "detail": message}
    body.update(extra)
    return SafeJSONResponse(body, status_code=status, headers=headers)


class _BodyTooLarge(StarletteHTTPException):
    def __init__(self, limit: int):
        super().__init__(413, _too_large_message(limit))


def _too_large_message(limit: int) -> str:
    size = f"{limit // MIB} MB" if limit >= MIB else f"{limit // 1024} KB"
    return f"请求体过大（上限 {size}）。(The request body is too large: limit {size}.)"


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
                return await error_response(413, _too_large_message(limit))(scope, receive, send)

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
            await error_response(413, _too_large_message(limit))(scope, receive, send)


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


# --- request bodies ---------------------------------------------------------------------------
class FilterSpec(BaseModel):
    # A misspelt filter ("doc_ids") would otherwise be dropped and the answer come unfiltered.
    model_config = ConfigDict(extra="forbid")

    docs: list[str] | None = Field(default=None, description="document ids (file names), see GET /v1/documents")
    years: list[Annotated[int, Field(strict=True)]] | None = Field(default=None, description="report years, e.g. [2023]")
    places: list[str] | None = Field(
        default=None, description="places, by name or adcode, e.g. [\"安徽\", \"北京市海淀区\"]: their documents and those of places inside them"
    )
    kinds: list[str] | None = Field(default=None, description="document kinds, e.g. [\"work_report\", \"plan_report\"]")


class AskRequest(BaseModel):
    question: str = Field(description="the question (Chinese or English)", examples=["2023年海淀区地区生产总值增长了多少？"])
    history: list[str] | None = Field(default=None, description="the user's earlier questions, oldest first")
    # strict: "5" and true are not numbers of passages (a client bug to report, not to guess at)
    top_k: int | None = Field(default=None, ge=1, le=MAX_TOP_K, strict=True, description="passages to answer from")
    filters: FilterSpec | None = None


class SearchRequest(BaseModel):
    query: str = Field(description="the search text", examples=["2024年居民人均可支配收入"])
    top_k: int | None = Field(default=None, ge=1, le=MAX_TOP_K, strict=True)
    filters: FilterSpec | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):  # [{"type": "text", "text": "..."}, ...]
            return "".join(str(p.get("text", "")) for p in self.content if p.get("type", "text") == "text")
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatRequest(BaseModel):
    """OpenAI chat-completions request; sampling options (temperature, …) are accepted and ignored."""

    model_config = ConfigDict(extra="allow")
    messages: list[ChatMessage] = Field(min_length=1)
    model: str | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    filters: FilterSpec | None = Field(default=None, description="extension: restrict to documents / years")


# --- helpers ----------------------------------------------------------------------------------
def safe_filename(name: str | None) -> str:
    """A plain file name: no directories, no "..", no control or reserved characters."""
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable() and ch not in '<>:"|?*\x00')
    name = re.sub(r"\.{2,}", ".", name).strip().rstrip(". ")
    if not name or name.startswith("."):
        name = "upload" + name
    if len(name.encode("utf-8")) > 180:
        suffix = Path(name).suffix[:16]
        stem = name[: len(name) - len(suffix)]
        while len((stem + suffix).encode("utf-8")) > 180:
            stem = stem[:-1]
        name = stem + suffix
    return name


def citations_of(answer: Answer) -> list[dict[str, Any]]:
    """The answer's citations, each with its document id as ``doc`` and its passage's score."""
    scores = {p.chunk.chunk_id: round(p.score, 6) for p in answer.passages}
    out = []
    for c in answer.citations:
        d = c.to_dict()
        d["doc"] = c.doc_id
        d["score"] = scores.get(c.chunk_id)
        out.append(d)
    return out


def sources_block(answer: Answer) -> str:
    lines = []
    for c in answer.citations:
        where = " · ".join(p for p in (c.title, c.section) if p)
        lines.append(f"[{c.n}] {where}：“{c.quote}”")
    return "\n\n来源：\n" + "\n".join(lines) if lines else ""


def document_dict(d: DocumentInfo, chunks: int | None = None) -> dict[str, Any]:
    out = {"doc_id": d.doc_id, "title": d.title, "date": d.date, "year": d.year, "kind": d.kind,
           "script": d.script, "sha256": d.sha256, **d.scope.to_dict()}
    if chunks is not None:
        out["chunks"] = chunks
    return out


def _validation_message(exc: RequestValidationError) -> tuple[int, str, list[dict[str, Any]]]:
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]
    for e in errors:
        if e["type"] == "json_invalid":
            return 400, "请求体不是合法的 JSON。(Malformed JSON body.)", errors
    parts = [f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in errors]
    return 422, "请求参数无效。(Invalid request: " + "; ".join(parts) + ")", errors


# --- the app ----------------------------------------------------------------------------------
def _name_conflict(original: str, name: str, given: dict[str, str], existing: set[str]) -> str:
    """Why an uploaded file may not take ``name`` (its cleaned file name), or "": two files of one
    request with the same name, or a name that cleaning made equal to a document's that is already
    there ("../../report.txt", ".txt" → upload.txt). A file sent under exactly the name it is
    indexed by is a new version of it, not a conflict."""
    if name in given:
        return (f"两个文件都会保存为 {name}（{given[name]!r} 和 {original!r}）：请改名后再上传。"
                f"(Two files would both be saved as {name} ({given[name]!r} and {original!r}): rename one.)")
    if original.strip() != name and name in existing:
        return (f"{original!r} 会保存为 {name}，而 {name} 已经存在：请改名，或用 replace=true 替换它。"
                f"({original!r} would be saved as {name}, which already exists: rename it, or send replace=true.)")
    return ""


def _mcp_server(assistant: Assistant):
    """The assistant's MCP server, or None when the MCP SDK is not installed (an optional extra)."""
    try:
        from qa_app.mcp_server import build_server

        return build_server(assistant)
    except ImportError:
        return None


def create_app(settings: Settings | None = None, assistant: Assistant | None = None, with_ui: bool = True) -> FastAPI:
    if settings is None:
        settings = assistant.settings if assistant is not None else get_settings()
    if assistant is None:
        assistant = Assistant(settings)
    index = assistant.index
    write_lock = threading.Lock()
    mcp_server = _mcp_server(assistant)

    @asynccontextmanager
    async def lifespan(_app):
        if mcp_server is None:
            yield
            return
        async with mcp_server.session_manager.run():  # the MCP transport's task group
            yield

    app = FastAPI(
        lifespan=lifespan,
        title="qa_app API",
        version="1.0",
        description=(
            "Grounded answers from the Haidian district reports, with citations. "
            "`/v1/chat/completions` speaks the OpenAI protocol. "
            + ("All /v1 routes need `Authorization: Bearer <key>`." if settings.api_key else "")
        ),
    )
    app.state.assistant = assistant
    app.state.settings = settings

    # Inner first: size limits inside the key wall, inside the rate limit, all inside CORS, so
    # preflights, 401s and 429s carry CORS headers, and guessing keys costs tokens.
    app.add_middleware(GuardMiddleware, settings=settings)
    app.add_middleware(WallMiddleware, settings=settings,
                       refuse=lambda status, message, headers=None: error_response(status, message, headers=headers))
    if settings.rate_limit_per_min > 0:
        app.add_middleware(RateLimitMiddleware, settings=settings)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type"],
        )

    # --- error handlers ---
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return error_response(exc.status, exc.message, exc.type, **exc.extra)

    @app.exception_handler(QuestionError)
    async def _question_error(request: Request, exc: QuestionError):
        return error_response(400, str(exc))

    @app.exception_handler(deadline.DeadlineExceeded)
    async def _too_slow(request: Request, exc: deadline.DeadlineExceeded):
        return error_response(504, str(exc))

    @app.exception_handler(EmptyIndexError)
    async def _empty_index(request: Request, exc: EmptyIndexError):
        return error_response(503, str(exc), "index_empty")

    @app.exception_handler(GeneratorError)
    async def _generator_error(request: Request, exc: GeneratorError):
        # Only reached with QA_LLM_FALLBACK off: otherwise the extractive answer stands in.
        return error_response(503 if exc.unavailable else 502, f"语言模型出错：{exc}。(The LLM failed: {exc}.)", "llm_error")

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        status, message, errors = _validation_message(exc)
        # The first field in error, as OpenAI names it ("top_k", "filters.years.0"); body. is the envelope.
        first = next((".".join(str(x) for x in e["loc"] if x != "body") for e in errors if e["loc"]), None)
        return error_response(status, message, param=first or None, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        message = str(exc.detail)
        if exc.status_code == 400 and message == "There was an error parsing the body":
            # FastAPI's words for a body that is not even text (invalid UTF-8, binary).
            message = "请求体不是合法的 UTF-8 JSON。(Malformed JSON body: not valid UTF-8 text.)"
        return error_response(exc.status_code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception):
        log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, "服务器内部错误。(Internal server error.)", "api_error")

    # --- helpers bound to this app ---
    def to_filters(spec: FilterSpec | None) -> Filters | None:
        if spec is None or (not spec.docs and not spec.years and not spec.places and not spec.kinds):
            return None
        if spec.docs:
            known = {d.doc_id for d in index.documents()}
            unknown = sorted(set(spec.docs) - known)
            if unknown:
                raise ApiError(422, f"未知文档：{', '.join(unknown)}。(Unknown document id(s): {', '.join(unknown)}.)")
        if spec.places:
            unknown = [p for p in spec.places if gazetteer().get(p) is None and gazetteer().resolve(p) is None]
            if unknown:
                raise ApiError(422, f"未知地名：{', '.join(unknown)}。(Unknown place(s): {', '.join(unknown)}.)")
        return Filters(
            doc_ids=frozenset(spec.docs) if spec.docs else None,
            years=frozenset(spec.years) if spec.years else None,
            places=frozenset(spec.places) if spec.places else None,
            kinds=frozenset(spec.kinds) if spec.kinds else None,
        )

    # --- routes ---
    @app.get("/healthz", tags=["health"], summary="Index loaded? chunk count, backend")
    def healthz():
        chunks = len(index)
        return {
            "status": "ok" if chunks else "empty",
            "chunks": chunks,
            "documents": len(index.documents()),
            "backend": assistant.generator.name,
            "embedding_model": index.model_name,
        }

    time_limit = settings.request_timeout_s

    @app.post(f"{API_PREFIX}/ask", tags=["answers"], summary="Answer a question with citations")
    async def ask(req: AskRequest):
        return await within_deadline(time_limit, lambda: ask_sync(req))

    def ask_sync(req: AskRequest) -> dict[str, Any]:
        answer = assistant.ask(req.question, filters=to_filters(req.filters), k=req.top_k, history=req.history or None)
        out = answer.to_dict()
        out["citations"] = citations_of(answer)
        return out

    @app.post(f"{API_PREFIX}/search", tags=["answers"], summary="Ranked passages for a query")
    async def search(req: SearchRequest):
        return await within_deadline(time_limit, lambda: search_sync(req))

    def search_sync(req: SearchRequest) -> dict[str, Any]:
        passages = assistant.search(req.query, k=req.top_k, filters=to_filters(req.filters))
        return {"query": req.query, "passages": [p.to_dict() for p in passages]}

    @app.get(f"{API_PREFIX}/models", tags=["openai"], summary="The model list (OpenAI-compatible)")
    def models():
        return {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "qa_app",
                                            "generator": settings.generator}]}

    @app.post(f"{API_PREFIX}/chat/completions", tags=["openai"], summary="OpenAI-compatible chat completion")
    async def chat_completions(req: ChatRequest):
        # For a stream, the deadline covers the answer's first piece: after that the client
        # sees progress, and the LLM's own timeout bounds each wait for a token.
        return await within_deadline(time_limit, lambda: chat_sync(req))

    def chat_sync(req: ChatRequest):
        users = [m.text() for m in req.messages if m.role == "user"]
        if not users:
            raise ApiError(400, "没有用户消息。(No user message: the last user message is the question.)")
        question, history = users[-1], [u for u in users[:-1] if u.strip()]
        filters = to_filters(req.filters)
        cid = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        model = req.model or MODEL_ID
        if model != MODEL_ID:
            raise ApiError(404, f"没有这个模型：{model}；可用：{MODEL_ID}（见 /v1/models）。(The model {model!r} does not "
                                f"exist; use {MODEL_ID!r}, see /v1/models.)", param="model", code="model_not_found")
        extra = req.model_extra or {}
        if (extra.get("n") or 1) != 1:
            raise ApiError(400, "每次只生成一个回答（n 必须为 1）。(Only one choice per request: n must be 1.)", param="n",
                           code="unsupported_value")
        for option in ("tools", "functions", "response_format"):
            if extra.get(option) and not (option == "response_format" and extra[option] == {"type": "text"}):
                raise ApiError(400, f"不支持 {option}：回答是带引用的文本。(The {option!r} option is not supported: answers "
                                    "are text with citations.)", param=option, code="unsupported_parameter")

        def extra_of(answer: Answer) -> dict[str, Any]:
            return {"citations": citations_of(answer), "refused": answer.refused, "grounded": answer.grounded}

        def usage_of(content: str) -> dict[str, int]:
            usage = {"prompt_tokens": sum(len(u) for u in users), "completion_tokens": len(content)}
            usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
            return usage

        if not req.stream:
            answer = assistant.ask(question, filters=filters, history=history or None)
            content = answer.text + sources_block(answer)
            return {
                "id": cid, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                "usage": usage_of(content), **extra_of(answer),
            }

        def chunk(delta: dict[str, Any], finish: str | None = None, **more: Any) -> str:
            body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **more}
            return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

        # The first piece is taken before the response starts, so a bad question or a missing
        # index is still a JSON error with its status code, not a broken stream.
        pieces = assistant.stream_answer(question, filters=filters, history=history or None)
        first = next(pieces)

        def events() -> Iterator[str]:
            yield chunk({"role": "assistant", "content": ""})
            shown: list[str] = []
            answer: Answer | None = None
            try:
                for item in itertools.chain([first], pieces):
                    if isinstance(item, Answer):
                        answer = item
                    elif item:
                        shown.append(item)
                        yield chunk({"content": item})
            except Exception:  # headers are sent: end the stream with an error event, not a hang
                log.exception("stream failed")
                yield chunk({"content": "\n\n（回答中断：服务器内部错误。）"}, "stop")
                yield "data: [DONE]\n\n"
                return
            assert answer is not None
            sources = sources_block(answer)
            if sources:
                yield chunk({"content": sources})
            yield chunk({"citations": citations_of(answer)}, "stop", **extra_of(answer))
            if req.stream_options is not None and req.stream_options.include_usage:
                body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                        "choices": [], "usage": usage_of("".join(shown) + sources)}
                yield f"data: {json.dumps(body, ensure_ascii=False)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.get(f"{API_PREFIX}/documents", tags=["documents"], summary="The indexed documents")
    def list_documents():
        counts = index.chunk_counts()
        docs = [document_dict(d, counts.get(d.doc_id, 0)) for d in index.documents()]
        return {"documents": docs, "count": len(docs), "chunks": sum(counts.values())}

    uploads_dir = Path(index.data_dir) / "uploads"
    max_file = settings.max_upload_mb * MIB

    @app.post(f"{API_PREFIX}/documents", tags=["documents"], summary="Upload and index files (.txt .md .html .pdf .docx)")
    def upload_documents(
        files: list[UploadFile] = File(description="one or more files"),
        title: str | None = Form(None, description="the document's title (one file only); default: its first line"),
        date: str | None = Form(None, description="publication date, YYYY-MM-DD"),
        place: str | None = Form(None, description="the place it is about, by name or adcode (安徽, 北京市海淀区)"),
        kind: str | None = Form(None, description="work_report, plan_report, plan, statistics, budget_report, news …"),
        reported: str | None = Form(None, description="the year(s) it reports on: 2025 or 2021-2025"),
        planned: str | None = Form(None, description="the year(s) it plans for: 2026 or 2026-2030"),
        replace: bool = Form(False, description="replace the indexed document a file's cleaned name equals"),
    ):
        from qa_app.ingest.metadata import update_manifest, upload_entry
        from qa_app.ingest.pipeline import ingest, prepare

        # What the uploader says about the documents overrides what is inferred from their text,
        # now and at every later re-index (it is kept in uploads/manifest.json).
        try:
            entry = upload_entry(title, date, place, kind, reported, planned)
        except ValueError as exc:
            raise ApiError(422, str(exc)) from exc
        if "title" in entry and len(files) > 1:
            raise ApiError(422, "title 只能用于单个文件。(A title can only be given with one file.)")
        with write_lock:
            staging = Path(index.data_dir) / ".upload_staging" / uuid.uuid4().hex
            try:
                staging.mkdir(parents=True)
                staged: dict[str, Path] = {}
                given: dict[str, str] = {}
                existing = {d.doc_id for d in index.documents()} | {p.name for p in uploads_dir.glob("*")}
                for f in files:
                    name = safe_filename(f.filename)
                    conflict = _name_conflict(f.filename or "", name, given, existing)
                    if conflict and not (replace and name not in given):
                        raise ApiError(409, conflict, param="files", code="name_conflict", existing=name)
                    given[name] = f.filename or ""
                    target = staging / name
                    if target.resolve().parent != staging.resolve():  # belt and braces
                        raise ApiError(400, f"文件名无效：{name!r}。(Invalid file name.)")
                    size = 0
                    with target.open("wb") as out:
                        while block := f.file.read(MIB):
                            size += len(block)
                            if size > max_file:
                                raise ApiError(413, f"{name}: 文件过大（上限 {settings.max_upload_mb} MB）。"
                                                    f"(The file is larger than {settings.max_upload_mb} MB.)")
                            out.write(block)
                    staged[name] = target
                # Check every file reads, cleans and chunks before anything is saved or indexed.
                failed: dict[str, str] = {}
                for name, path in staged.items():
                    try:
                        prepare(path, index.settings, hashlib.sha256(path.read_bytes()).hexdigest())
                    except (LoaderError, OSError, UnicodeError) as exc:
                        failed[name] = str(exc)
                if failed:
                    status = 415 if any(not supported(staged[n]) for n in failed) else 422
                    raise ApiError(status, "; ".join(failed.values()), failed=failed)
                uploads_dir.mkdir(parents=True, exist_ok=True)
                saved, previous = [], {}
                for name, path in staged.items():
                    final = uploads_dir / name
                    if final.exists():  # kept aside until the new version is indexed
                        previous[name] = staging / f".previous-{name}"
                        final.replace(previous[name])
                    path.replace(final)
                    saved.append(final)
                old_entries = update_manifest(uploads_dir, {p.name: entry for p in saved}) if entry else {}
                report = ingest(saved, index, progress=False)
                failed = {Path(k).name: v for k, v in report.failed.items()}
                # A file the index refused (a duplicate, a name taken by another document) must
                # not linger in uploads/, nor replace the version that stays indexed.
                for name in failed:
                    if name in previous:
                        previous[name].replace(uploads_dir / name)
                    else:
                        (uploads_dir / name).unlink(missing_ok=True)
                if entry and failed:
                    update_manifest(uploads_dir, {name: old_entries.get(name) for name in failed})
            finally:
                shutil.rmtree(staging, ignore_errors=True)
                try:
                    staging.parent.rmdir()  # only when no other upload is staged there
                except OSError:
                    pass
        by_id = {d.doc_id: d for d in index.documents()}
        body = {
            "added": report.added, "updated": report.updated, "unchanged": report.unchanged,
            "failed": failed, "chunks": report.chunks,
            "documents": [document_dict(by_id[p.name]) for p in saved if p.name in by_id],
        }
        if failed and not (report.added or report.updated or report.unchanged):
            raise ApiError(422, "; ".join(failed.values()), **body)
        return body

    @app.delete(f"{API_PREFIX}/documents/{{doc_id}}", tags=["documents"], summary="Remove a document from the index")
    def delete_document(doc_id: str):
        with write_lock:
            doc = index.document(doc_id)
            if doc is None or not index.delete_document(doc_id):
                raise ApiError(404, f"未知文档：{doc_id}。(No document with id {doc_id!r}.)")
            # An uploaded file goes too, so nothing brings the document back by accident.
            source = Path(doc.source_path) if doc.source_path else None
            if source is not None and source.parent == uploads_dir.resolve() and source.is_file():
                source.unlink()
                from qa_app.ingest.metadata import update_manifest

                update_manifest(uploads_dir, {source.name: None})
        return {"deleted": doc_id, "chunks": len(index), "documents": len(index.documents())}

    if mcp_server is not None:
        # The MCP tools over streamable HTTP, at /v1/mcp/: behind the same key, size and rate limits.
        app.mount(f"{API_PREFIX}/mcp", mcp_server.streamable_http_app(streamable_http_path="/", json_response=True))

    @app.api_route(f"{API_PREFIX}/{{rest:path}}", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
                   include_in_schema=False)
    def unknown_route(request: Request, rest: str):
        # Registered last among the API's routes and before the chat page is mounted at "/", so an
        # unknown /v1 path gets the API's JSON error instead of the page's, and a known path asked
        # with the wrong method a 405 that says which methods it takes.
        path = request.url.path
        allowed = sorted({m for r in app.routes if getattr(r, "methods", None) and getattr(r, "endpoint", None) is not unknown_route
                          and r.path_regex.match(path) for m in r.methods} - {"HEAD"})
        if allowed:
            return error_response(405, f"{path} 不支持 {request.method}，可用：{', '.join(allowed)}。"
                                       f"(Method {request.method} is not allowed on {path}; use {', '.join(allowed)}.)",
                                  "invalid_request_error", headers={"Allow": ", ".join(allowed)})
        return error_response(404, f"没有这个接口：{path}。(No such endpoint: {path}; see /docs.)", "invalid_request_error")

    if with_ui:
        from qa_app.ui import mount_ui

        mounted = mount_ui(app, assistant)
        if isinstance(mounted, FastAPI):
            app = mounted
    return app
