"""The request bodies, as typed models (the OpenAPI schema at /docs is generated from them)."""
from __future__ import annotations

from typing import Annotated, Any

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
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):  # [{"type": "text", "text": "..."}, ...]
            return "".join(str(p.get("text", "")) for p in self.content if p.get("type", "text") == "text")
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatRequest(BaseModel):
    """OpenAI chat-completions request; sampling options (temperature, …) are accepted and ignored."""

    model_config = ConfigDict(extra="allow")
    messages: list[ChatMessage] = Field(min_length=1)
    model: str | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    filters: FilterSpec | None = Field(default=None, description="extension: restrict to documents / years")



def to_filters(spec: FilterSpec | None, known_docs) -> Filters | None:
    if spec is None:
        return None
    return make_filters(spec.docs, spec.years, spec.places, spec.kinds, known_docs=known_docs)
