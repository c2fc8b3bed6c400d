"""/healthz: is the index loaded, how big, which backend. Open even behind the key (a probe
must not need a secret), so it says nothing a stranger could use."""
from __future__ import annotations

from fastapi import APIRouter

from qa_app.answer import Assistant


def router(assistant: Assistant) -> APIRouter:
    router = APIRouter(tags=["health"])
    index = assistant.index

    @router.get("/healthz", summary="Index loaded? chunk count, backend")
    def healthz():
        chunks = len(index)
        return {
            "status": "ok" if chunks else "empty",
            "chunks": chunks,
            "documents": len(index.documents()),
            "backend": assistant.generator.name,
            "embedding_model": index.model_name,
        }

    return router
