"""The assistant as an MCP server (the official MCP Python SDK): an agent or a desktop client can
search the reports, ask for a grounded answer with its citations, and list what is indexed.

Two transports, the same tools: ``qa-app mcp`` speaks over stdio (for a client that starts the
server itself), and the API server mounts streamable HTTP at ``/v1/mcp`` (behind the API's key,
body-size limit and rate limit, like every /v1 route).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

if TYPE_CHECKING:  # pragma: no cover
    from mcp.server.mcpserver import MCPServer

    from qa_app.answer import Assistant

MAX_TOP_K = 20


class CitationOut(BaseModel):
    n: int = Field(description="the marker in the answer text: [n]")
    doc_id: str = Field(description="the document (its file name), as list_documents gives it")
    title: str
    date: str
    section: str
    place: str
    quote: str = Field(description="the words of the passage the answer rests on")


class AnswerOut(BaseModel):
    answer: str = Field(description="the answer, with [n] markers; a refusal says why")
    refused: bool = Field(description="true when the reports do not answer the question")
    citations: list[CitationOut]


class PassageOut(BaseModel):
    doc_id: str
    title: str
    date: str
    place: str
    section: str
    text: str
    score: float


class DocumentOut(BaseModel):
    doc_id: str
    title: str
    date: str
    kind: str
    place: str
    chunks: int


def build_server(assistant: "Assistant") -> "MCPServer":
    """An MCP server whose tools answer from ``assistant``'s index."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    from qa_app import deadline
    from qa_app.answer import USER_ERRORS

    server = MCPServer(
        name="qa-app",
        instructions="Grounded answers from Chinese government reports, with numbered citations to the exact "
                     "passages. Use `ask` for an answer (it refuses when the reports do not say), `search` for "
                     "passages, `list_documents` for what is indexed.",
    )

    time_limit = assistant.settings.request_timeout_s  # the API's limit, stopping the work the same way

    def checked_k(top_k: int | None) -> int | None:
        if top_k is not None and not 1 <= top_k <= MAX_TOP_K:
            raise ToolError(f"top_k 必须在 1 到 {MAX_TOP_K} 之间。(top_k must be between 1 and {MAX_TOP_K}.)")
        return top_k

    @server.tool(description="Answer a question from the reports, with citations; refuses when they do not say.")
    def ask(question: str, history: list[str] | None = None, top_k: int | None = None) -> AnswerOut:
        try:
            answer = deadline.within(time_limit, lambda: assistant.ask(question, k=checked_k(top_k), history=history or None))
        except USER_ERRORS as exc:
            raise ToolError(str(exc)) from exc
        return AnswerOut(answer=answer.text, refused=answer.refused, citations=[
            CitationOut(n=c.n, doc_id=c.doc_id, title=c.title, date=c.date, section=c.section, place=c.place, quote=c.quote)
            for c in answer.citations])

    @server.tool(description="The passages of the reports that best match a query, best first.")
    def search(query: str, top_k: int = 5) -> list[PassageOut]:
        try:
            passages = deadline.within(time_limit, lambda: assistant.search(query, k=checked_k(top_k)))
        except USER_ERRORS as exc:
            raise ToolError(str(exc)) from exc
        return [PassageOut(doc_id=p.doc.doc_id, title=p.doc.title, date=p.doc.date, place=p.doc.scope.place,
                           section=p.chunk.section, text=p.chunk.text, score=round(p.score, 6)) for p in passages]

    @server.tool(description="The indexed documents: id, title, date, kind, place and number of passages.")
    def list_documents() -> list[DocumentOut]:
        counts = assistant.index.chunk_counts()
        return [DocumentOut(doc_id=d.doc_id, title=d.title, date=d.date, kind=d.kind, place=d.scope.place,
                            chunks=counts.get(d.doc_id, 0)) for d in assistant.index.documents()]

    return server
