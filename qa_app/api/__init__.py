"""The HTTP API (FastAPI): OpenAI-compatible chat, ask, search, documents, health.

One ``Assistant`` is shared by every request. Handlers that call it are plain ``def``
functions, so FastAPI runs them in its threadpool and queries proceed in parallel; uploads
and deletions are serialised by a lock (queries keep running during an ingest: the index
swaps in a new snapshot only when a write is complete).

Every error is OpenAI's envelope ``{"error": {"message", "type", "param", "code"}}`` (``errors``).
In front of every route, outermost first: CORS (closed unless ``QA_CORS_ORIGINS``), a token
bucket per client address over the requests that do work (429, ``QA_RATE_LIMIT_PER_MIN``), the
key wall (401 or the login page, ``qa_app.wall``), body size limits (413; ``limits``). Answering
routes run under a deadline that stops the work (504, ``QA_REQUEST_TIMEOUT_S``; ``qa_app.deadline``).

Modules: ``app`` (the factory), ``errors``, ``limits``, ``schemas`` (request bodies),
``chat_request`` (what an OpenAI chat request's fields do), ``tokens`` (usage and max_tokens by a
real tokenizer), ``views`` (answers and documents as JSON), ``docs`` (Swagger UI, offline), and the
routes by concern: ``health``, ``answers``, ``openai_chat``, ``documents``.
"""
from qa_app.api.app import create_app

__all__ = ["create_app"]
