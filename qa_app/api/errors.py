"""The API's errors: OpenAI's envelope on every route, and the handlers that turn the app's
exceptions into it (stack traces stay in the server log)."""
from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from qa_app import deadline
from qa_app.answer import EmptyIndexError, QuestionError
from qa_app.index.embedding_rules import EmbeddingError
from qa_app.index.errors import StorageError
from qa_app.index.hybrid import FilterError
from qa_app.llm.base import GeneratorError

log = logging.getLogger("qa_app.api")

MIB = 1024 * 1024


class ApiError(Exception):
    def __init__(self, status: int, message: str, type_: str | None = None, **extra: Any):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.extra = extra


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



def too_large_message(limit: int) -> str:
    size = f"{limit // MIB} MB" if limit >= MIB else f"{limit // 1024} KB"
    return f"请求体过大（上限 {size}）。(The request body is too large: limit {size}.)"


def _validation_message(exc: RequestValidationError) -> tuple[int, str, list[dict[str, Any]]]:
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]
    for e in errors:
        if e["type"] == "json_invalid":
            return 400, "请求体不是合法的 JSON。(Malformed JSON body.)", errors
    parts = [f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in errors]
    return 422, "请求参数无效。(Invalid request: " + "; ".join(parts) + ")", errors



def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return error_response(exc.status, exc.message, exc.type, **exc.extra)

    @app.exception_handler(QuestionError)
    async def _question_error(request: Request, exc: QuestionError):
        return error_response(400, str(exc))

    @app.exception_handler(FilterError)
    async def _filter_error(request: Request, exc: FilterError):
        return error_response(422, str(exc), param="filters")

    @app.exception_handler(deadline.DeadlineExceeded)
    async def _too_slow(request: Request, exc: deadline.DeadlineExceeded):
        return error_response(504, str(exc))

    @app.exception_handler(StorageError)
    async def _storage(request: Request, exc: StorageError):
        # A read-only folder, a damaged catalog: the message names the file and what to do.
        return error_response(503, exc.message, "storage_error", code=exc.kind)

    @app.exception_handler(EmbeddingError)
    async def _embedding_error(request: Request, exc: EmbeddingError):
        # The embedding model cannot be loaded or its server reached: the message names the URL.
        return error_response(503, str(exc), "embedding_error")

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
