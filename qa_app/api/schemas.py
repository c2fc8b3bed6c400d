"""The request bodies, as typed models (the OpenAPI schema at /docs is generated from them)."""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from qa_app.index.hybrid import Filters, make_filters

MAX_TOP_K = 50


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
    # Keys other than these are refused by name in ``chat_request`` (a 400, as OpenAI does).
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = Field(default=None, description="accepted and not used")


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatRequest(BaseModel):
    """An OpenAI chat-completions request. What each OpenAI option does here (honoured, accepted
    without effect, or refused by name) is in ``chat_request``; a field OpenAI does not have is
    refused by name."""

    model_config = ConfigDict(extra="allow")
    messages: list[ChatMessage] = Field(min_length=1, description=(
        "the last user message is the question; earlier user messages are the conversation's questions and "
        "assistant messages their replies (for completing a follow-up); system/developer messages are "
        "instructions for an LLM generator (the extractive one ignores them)"))
    model: str | None = Field(default=None, description="qa-app (see /v1/models)")
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1, strict=True, description="cut the reply after this many tokens")
    max_completion_tokens: int | None = Field(default=None, ge=1, strict=True, description="the same as max_tokens")
    filters: FilterSpec | None = Field(default=None, description="extension: restrict to documents, years, places, kinds")


def to_filters(spec: FilterSpec | None, known_docs) -> Filters | None:
    if spec is None:
        return None
    return make_filters(spec.docs, spec.years, spec.places, spec.kinds, known_docs=known_docs)
