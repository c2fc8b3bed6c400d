"""The OpenAI-compatible routes: /v1/models and /v1/chat/completions (streamed or not)."""
from __future__ import annotations

import itertools
import json
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from qa_app.answer import Assistant
from qa_app.api.errors import ApiError
from qa_app.api.limits import API_PREFIX, within_deadline
from qa_app.api.schemas import ChatRequest, to_filters
from qa_app.api.views import citations_of, sources_block
from qa_app.models import Answer

log = logging.getLogger("qa_app.api")

MODEL_ID = "qa-app"  # the one model this server answers as, whichever generator is configured


def router(assistant: Assistant) -> APIRouter:
    router = APIRouter(tags=["openai"])
    settings = assistant.settings
    index = assistant.index
    time_limit = settings.request_timeout_s

    @router.get(f"{API_PREFIX}/models", summary="The model list (OpenAI-compatible)")
    def models():
        return {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "qa_app",
                                            "generator": settings.generator}]}

    @router.post(f"{API_PREFIX}/chat/completions", summary="OpenAI-compatible chat completion")
    async def chat_completions(req: ChatRequest):
        # For a stream, the deadline covers the answer's first piece: after that the client
        # sees progress, and the LLM's own timeout bounds each wait for a token.
        return await within_deadline(time_limit, lambda: chat_sync(req))

    def chat_sync(req: ChatRequest):
        users = [m.text() for m in req.messages if m.role == "user"]
        if not users:
            raise ApiError(400, "没有用户消息。(No user message: the last user message is the question.)")
        question, history = users[-1], [u for u in users[:-1] if u.strip()]
        filters = to_filters(req.filters, index.snapshot().docs)
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

    return router
