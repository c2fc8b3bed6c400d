"""``openai``: any OpenAI-compatible chat endpoint through langchain-openai's ``ChatOpenAI``.

Hosted services (OpenAI, DeepSeek, Qwen/DashScope, Zhipu, Moonshot …) and local servers
(Ollama, vLLM, llama.cpp server, LM Studio) alike: ``QA_LLM_BASE_URL`` + ``QA_LLM_MODEL`` +
``QA_LLM_API_KEY``; ``QA_LLM_TIMEOUT`` bounds every wait on the server (connect, reply, each
streamed piece), ``QA_LLM_MAX_RETRIES`` retries connection errors, 429 and 5xx only.

Every failure becomes a ``GeneratorError`` that says what went wrong in plain words.
"""
from __future__ import annotations

import os
import threading
from typing import Iterator

from pydantic import SecretStr

from qa_app.llm.base import BackendOptions, ChatGenerator, GeneratorError

_OPENAI_HOST = "api.openai.com"


def _text(content) -> str:
    """Message content as text (a string, or a list of content blocks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b if isinstance(b, str) else str(b.get("text", "")) for b in content if isinstance(b, (str, dict)))
    return "" if content is None else str(content)


class OpenAIOptions(BackendOptions):
    model: str | None = None
    base_url: str | None = None
    api_key: SecretStr | None = None
    timeout: float = 60.0
    max_retries: int = 1
    temperature: float = 0.1
    max_tokens: int = 512


class OpenAIGenerator(ChatGenerator):
    name = "openai"
    Options = OpenAIOptions
    options: OpenAIOptions

    def __init__(self, settings):
        super().__init__(settings)
        self._llm = None
        self._lock = threading.Lock()

    @classmethod
    def readiness(cls, settings) -> tuple[bool, str]:
        o = cls.Options.from_settings(settings)
        if not o.base_url and not o.api_key:
            return False, "not configured: set QA_LLM_BASE_URL (and QA_LLM_MODEL, QA_LLM_API_KEY)"
        if not o.model:
            return False, "not configured: set QA_LLM_MODEL"
        import httpx

        url = (o.base_url or f"https://{_OPENAI_HOST}/v1").rstrip("/") + "/models"
        headers = {"Authorization": f"Bearer {o.api_key.get_secret_value()}"} if o.api_key else {}
        try:
            r = httpx.get(url, headers=headers, timeout=min(o.timeout, 5.0))
        except httpx.HTTPError as exc:
            return False, f"unreachable: {url} ({type(exc).__name__})"
        if r.status_code in (401, 403):
            return False, f"reachable, but the API key was refused (HTTP {r.status_code})"
        return r.status_code < 500, f"reachable: {url} (HTTP {r.status_code}), model {o.model}"

    @property
    def where(self) -> str:
        return self.options.base_url or f"https://{_OPENAI_HOST}/v1"

    def _official(self) -> bool:
        return _OPENAI_HOST in self.where

    def _token_limit(self, max_tokens: int | None) -> dict:
        n = max_tokens or self.options.max_tokens
        if not n:
            return {}
        # OpenAI wants max_completion_tokens (ChatOpenAI sends it); Ollama, LM Studio and most
        # compatible servers know only max_tokens and would ignore the other, so send that one.
        return {"max_tokens": n} if self._official() else {"extra_body": {"max_tokens": n}}

    def client(self):
        """The ``ChatOpenAI`` model, built on first use (a missing setting is a ``GeneratorError``)."""
        with self._lock:
            if self._llm is None:
                o = self.options
                if not o.model:
                    raise GeneratorError(
                        "QA_LLM_MODEL is not set: name the model the endpoint serves (e.g. qwen2.5:7b, deepseek-chat)", unavailable=True
                    )
                try:
                    from langchain_openai import ChatOpenAI
                except ImportError as exc:  # pragma: no cover - the llm extra is missing
                    raise GeneratorError("the openai backend needs langchain-openai: pip install 'qa_app[llm]'") from exc
                key = (o.api_key.get_secret_value() if o.api_key else None) or os.environ.get("OPENAI_API_KEY") or "not-needed"  # local servers take any key
                self._llm = ChatOpenAI(
                    model=o.model,
                    base_url=o.base_url,
                    api_key=key,
                    timeout=o.timeout,
                    max_retries=o.max_retries,
                    temperature=o.temperature,
                    **self._token_limit(None),
                )
            return self._llm

    def _error(self, exc: Exception) -> GeneratorError:
        import httpx
        import openai

        o, where = self.options, self.where
        if isinstance(exc, GeneratorError):
            return exc
        if isinstance(exc, (openai.APITimeoutError, httpx.TimeoutException)):
            msg = f"no reply from the LLM endpoint {where} within {o.timeout:g} s (QA_LLM_TIMEOUT)"
        elif isinstance(exc, openai.AuthenticationError):
            msg = f"the LLM endpoint {where} refused the API key (HTTP 401): check QA_LLM_API_KEY"
        elif isinstance(exc, openai.PermissionDeniedError):
            msg = f"the LLM endpoint {where} denied access (HTTP 403): check QA_LLM_API_KEY and the model's permissions"
        elif isinstance(exc, openai.NotFoundError):
            msg = f"the LLM endpoint {where} does not know model {o.model!r} or the path (HTTP 404): check QA_LLM_MODEL and QA_LLM_BASE_URL (most servers end in /v1)"
        elif isinstance(exc, openai.RateLimitError):
            msg = f"the LLM endpoint {where} is rate-limiting or out of quota (HTTP 429)"
        elif isinstance(exc, openai.APIConnectionError) or isinstance(exc, httpx.TransportError):
            msg = f"cannot reach the LLM endpoint {where}: {exc.__cause__ or exc}"
        elif isinstance(exc, openai.APIStatusError):
            msg = f"the LLM endpoint {where} answered HTTP {exc.status_code}: {str(exc)[:200]}"
        else:
            err = GeneratorError(f"the LLM endpoint {where} gave an unusable reply ({type(exc).__name__}: {str(exc)[:200]})")
            err.__cause__ = exc
            return err
        err = GeneratorError(msg, unavailable=True)
        err.__cause__ = exc
        return err

    def chat(self, messages: list[dict], max_tokens: int | None = None) -> str:
        llm = self.client()
        try:
            reply = llm.invoke(messages, **(self._token_limit(max_tokens) if max_tokens else {}))
        except Exception as exc:  # noqa: BLE001 - every failure becomes a GeneratorError
            raise self._error(exc) from exc
        return _text(getattr(reply, "content", reply))

    def chat_stream(self, messages: list[dict], max_tokens: int | None = None) -> Iterator[str]:
        llm = self.client()
        try:
            for chunk in llm.stream(messages, **(self._token_limit(max_tokens) if max_tokens else {})):
                piece = _text(getattr(chunk, "content", chunk))
                if piece:
                    yield piece
        except GeneratorError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise self._error(exc) from exc
