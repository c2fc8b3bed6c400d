"""/healthz: is the index loaded, how big, which backend; "degraded" with the reason when the
data folder is read-only or a store is damaged (503 when nothing can be answered). Open even
behind the key (a probe must not need a secret), so it says nothing a stranger could use."""
from __future__ import annotations

from fastapi import APIRouter

from qa_app.answer import Assistant
from qa_app.api.errors import SafeJSONResponse


def router(assistant: Assistant) -> APIRouter:
    router = APIRouter(tags=["health"])
    index = assistant.index

    @router.get("/healthz", summary="Index loaded? chunk count, backend; degraded with the reason")
    def healthz():
        health = index.health()
        body = {"status": health["status"], "reason": health["reason"], "writable": health["writable"],
                "backend": assistant.generator.name, "embedding_model": index.model_name}
        if not health["queries"]:  # the catalog cannot be read: nothing can be answered
            return SafeJSONResponse(body, status_code=503)
        snap = index.snapshot()
        return {**body, "chunks": len(snap.chunks), "documents": len(snap.docs)}

    return router
