"""/v1/ask and /v1/search: a grounded answer with citations, or the ranked passages."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from qa_app.answer import Assistant
from qa_app.api.limits import API_PREFIX, within_deadline
from qa_app.api.schemas import AskRequest, SearchRequest, to_filters
from qa_app.api.views import citations_of


def router(assistant: Assistant) -> APIRouter:
    router = APIRouter(tags=["answers"])
    index = assistant.index
    time_limit = assistant.settings.request_timeout_s

    @router.post(f"{API_PREFIX}/ask", summary="Answer a question with citations")
    async def ask(req: AskRequest):
        return await within_deadline(time_limit, lambda: ask_sync(req))

    def ask_sync(req: AskRequest) -> dict[str, Any]:
        answer = assistant.ask(req.question, filters=to_filters(req.filters, index.snapshot().docs), k=req.top_k, history=req.history or None)
        out = answer.to_dict()
        out["citations"] = citations_of(answer)
        return out

    @router.post(f"{API_PREFIX}/search", summary="Ranked passages for a query")
    async def search(req: SearchRequest):
        return await within_deadline(time_limit, lambda: search_sync(req))

    def search_sync(req: SearchRequest) -> dict[str, Any]:
        passages = assistant.search(req.query, k=req.top_k, filters=to_filters(req.filters, index.snapshot().docs))
        return {"query": req.query, "passages": [p.to_dict() for p in passages]}

    return router
