"""The OpenAI-compatible routes: /v1/models and /v1/chat/completions (streamed or not).

A reply's content is the answer, then its source list ("来源：" and one line per [n]); the
citations also come as data, once: in the completion's top-level ``citations`` (with ``refused``
and ``grounded``), or in a stream's last chunk. ``usage`` is counted by a real tokenizer
(``tokens``); ``max_tokens`` cuts the content there, with ``finish_reason: "length"``.
"""
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
from qa_app.api.chat_request import read_chat
from qa_app.api.errors import ApiError
from qa_app.api.limits import API_PREFIX, within_deadline
from qa_app.api.schemas import ChatRequest, to_filters
from qa_app.api.tokens import LazyCounter
from qa_app.api.views import citations_of, sources_block
from qa_app.models import Answer

log = logging.getLogger("qa_app.api")

MODEL_ID = "qa-app"  # the one model this server answers as, whichever generator is configured


def model_card(assistant: Assistant) -> dict[str, Any]:
    """The model as /v1/models lists it, with what answers behind it: the generator backend, its
    model (an LLM's name or folder; none for the extractive one) and the embedding model."""
    settings = assistant.settings
    return {"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "qa_app",
            "generator": assistant.generator.name,
            "generator_model": settings.llm_model if assistant.uses_llm else None,
            "embedding_model": assistant.index.model_name}


def unknown_model(model: str) -> ApiError:
    return ApiError(404, f"没有这个模型：{model}；可用：{MODEL_ID}（见 /v1/models）。(The model {model!r} does not exist; "
                         f"use {MODEL_ID!r}, see /v1/models.)", param="model", code="model_not_found")


def router(assistant: Assistant) -> APIRouter:
    router = APIRouter(tags=["openai"])
    index = assistant.index
    time_limit = assistant.settings.request_timeout_s
    tokens = LazyCounter(assistant)

    @router.get(f"{API_PREFIX}/models", summary="The model list (OpenAI-compatible), with the generator behind it")
    def models():
        return {"object": "list", "data": [model_card(assistant)]}

    @router.get(f"{API_PREFIX}/models/{{model}}", summary="One model (OpenAI-compatible)")
    def model(model: str):
        if model != MODEL_ID:
            raise unknown_model(model)
        return model_card(assistant)

    @router.post(f"{API_PREFIX}/chat/completions", summary="OpenAI-compatible chat completion")
    async def chat_completions(req: ChatRequest):
        # For a stream, the deadline covers the answer's first piece: after that the client
        # sees progress, and the LLM's own timeout bounds each wait for a token.
        return await within_deadline(time_limit, lambda: chat_sync(req))

    def chat_sync(req: ChatRequest):
        model = req.model or MODEL_ID
        if model != MODEL_ID:
            raise unknown_model(model)
        chat = read_chat(req)
        filters = to_filters(req.filters, index.snapshot().docs)
        limit = chat.conversation.max_tokens
        counter = tokens.get()
        cid = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())

        def extra_of(answer: Answer) -> dict[str, Any]:
            return {"citations": citations_of(answer), "refused": answer.refused, "grounded": answer.grounded}

        ask = dict(filters=filters, history=chat.history or None, conversation=chat.conversation)
        if not req.stream:
            answer = assistant.ask(chat.question, **ask)
            content = answer.text + sources_block(answer)
            finish = "stop"
            if limit is not None and counter.count(content) > limit:
                content, finish = counter.cut(content, limit), "length"
            return {
                "id": cid, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}],
                "usage": counter.usage(chat.prompt, content), **extra_of(answer),
            }

        def chunk(delta: dict[str, Any], finish: str | None = None, **more: Any) -> str:
            body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **more}
            return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

        # The first piece is taken before the response starts, so a bad question or a missing
        # index is still a JSON error with its status code, not a broken stream.
        pieces = assistant.stream_answer(chat.question, **ask)
        first = next(pieces)

        def events() -> Iterator[str]:
            yield chunk({"role": "assistant", "content": ""})
            shown = ""
            cut = False
            answer: Answer | None = None

            def show(text: str) -> Iterator[str]:
                # Each piece is shown whole while the reply stays within max_tokens; the piece
                # that crosses it is cut there, and nothing after it is shown.
                nonlocal shown, cut
                if cut or not text:
                    return
                if limit is not None and counter.count(shown + text) > limit:
                    text, cut = counter.cut(shown + text, limit)[len(shown):], True
                if text:
                    shown += text
                    yield chunk({"content": text})

            try:
                for item in itertools.chain([first], pieces):
                    if isinstance(item, Answer):
                        answer = item
                    else:
                        yield from show(item)
            except Exception:  # headers are sent: end the stream with an error event, not a hang
                log.exception("stream failed")
                yield chunk({"content": "\n\n（回答中断：服务器内部错误。）"}, "stop")
                yield "data: [DONE]\n\n"
                return
            assert answer is not None
            yield from show(sources_block(answer))
            # The citations once, with the finish: top-level, where the OpenAI SDK keeps them (model_extra).
            yield chunk({}, "length" if cut else "stop", **extra_of(answer))
            if req.stream_options is not None and req.stream_options.include_usage:
                body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                        "choices": [], "usage": counter.usage(chat.prompt, shown)}
                yield f"data: {json.dumps(body, ensure_ascii=False)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return router
