"""The app factory: the routes by concern, the limits and the key wall in front of them, the MCP
server and the chat page mounted beside them."""
from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware

from qa_app.answer import Assistant
from qa_app.api import answers, documents, health, openai_chat
from qa_app.api.docs import install_docs
from qa_app.api.errors import error_response, install_handlers
from qa_app.api.limits import API_PREFIX, GuardMiddleware, RateLimitMiddleware
from qa_app.config import Settings, get_settings
from qa_app.index.errors import StorageError
from qa_app.index.leftovers import sweep_upload_leftovers
from qa_app.wall import WallMiddleware

log = logging.getLogger("qa_app.api")


def _mcp_server(assistant: Assistant):
    """The assistant's MCP server, or None when the MCP SDK is not installed (an optional extra)."""
    try:
        from qa_app.mcp_server import build_server

        return build_server(assistant)
    except ImportError:
        return None


def _sweep_leftovers(assistant: Assistant) -> None:
    """What uploads killed mid-way left behind (a staging folder, a file never indexed), swept at
    start-up; a read-only or damaged index is reported by /healthz instead."""
    try:
        swept = sweep_upload_leftovers(assistant.index, remove=True)
    except StorageError as exc:
        log.warning("leftovers of killed uploads not swept: %s", exc.message)
        return
    if swept:
        log.warning("swept the leftovers of killed uploads: %s", ", ".join(swept))


def create_app(settings: Settings | None = None, assistant: Assistant | None = None, with_ui: bool = True) -> FastAPI:
    if settings is None:
        settings = assistant.settings if assistant is not None else get_settings()
    if assistant is None:
        assistant = Assistant(settings)
    mcp_server = _mcp_server(assistant)

    @asynccontextmanager
    async def lifespan(_app):
        _sweep_leftovers(assistant)
        if mcp_server is None:
            yield
            return
        async with mcp_server.session_manager.run():  # the MCP transport's task group
            yield

    app = FastAPI(
        lifespan=lifespan,
        docs_url=None,  # served offline by ``docs``, not from FastAPI's CDN links
        redoc_url=None,
        title="qa_app API",
        version="1.0",
        description=(
            "Grounded answers from the indexed reports, with citations. "
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
    install_handlers(app)
    install_docs(app)

    routers = [module.router(assistant) for module in (health, answers, openai_chat, documents)]
    for router in routers:
        app.include_router(router)
    routes = [r for router in routers for r in router.routes]
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
        allowed = sorted({m for r in routes if getattr(r, "methods", None) and r.path_regex.match(path)
                          for m in r.methods} - {"HEAD"})
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
