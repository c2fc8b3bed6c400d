"""Asking a running qa-app server (``POST /v1/ask``) instead of loading the models in this process.

``connect`` finds the server (``QA_SERVER_URL``, else the record ``qa-app serve`` keeps in the data
folder) and probes it with a short timeout; ``RemoteAssistant.ask`` has the in-process
``Assistant.ask``'s shape (question, filters, history) and returns the same ``Answer``. Standard
library HTTP only: importing this must stay cheap, since being fast is its whole point.
"""
from __future__ import annotations

import dataclasses
import json
import urllib.error
import urllib.request
from typing import Any

from qa_app.models import Answer, Citation
from qa_app.server_file import running_server

_CITATION_FIELDS = {f.name for f in dataclasses.fields(Citation)}


class RemoteError(Exception):
    """The server answered with an error meant for the asker (a bad question, an unknown
    document, an empty index): ``message`` is the server's own bilingual text."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class ServerUnavailable(Exception):
    """The server cannot answer (gone, refusing our key, broken): answer in process instead."""


class RemoteAssistant:
    def __init__(self, url: str, api_key: str | None, timeout_s: float):
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.timeout_s = timeout_s

    def ask(self, question: str, filters: dict[str, list] | None = None,
            history: list[str] | None = None) -> tuple[Answer, dict[str, Any]]:
        """(the answer, the server's JSON for it). Raises RemoteError or ServerUnavailable."""
        body: dict[str, Any] = {"question": question}
        if history:
            body["history"] = list(history)
        if filters:
            body["filters"] = filters
        data = self._request("/v1/ask", body, self.timeout_s)
        return answer_from_json(data), data

    def probe(self, timeout_s: float) -> None:
        """Raise ServerUnavailable unless the server answers its health probe in time."""
        health = self._request("/healthz", None, timeout_s, allow={503})
        if "status" not in health:
            raise ServerUnavailable(f"{self.url} 不是 qa-app 服务器。({self.url} is not a qa-app server.)")

    def _request(self, path: str, body: dict | None, timeout_s: float, allow: set[int] = frozenset()) -> dict:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        payload = json.dumps(body, ensure_ascii=False).encode("utf-8") if body is not None else None
        request = urllib.request.Request(self.url + path, data=payload, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                return _json(response.read())
        except urllib.error.HTTPError as exc:
            status, data = exc.code, _json(exc.read())
            if status in allow:
                return data
            message = _message(data) or f"HTTP {status}"
            if status == 401:
                raise ServerUnavailable(f"服务器 {self.url} 拒绝了 API 密钥（请设置与服务器相同的 QA_API_KEY）。"
                                        f"(The server at {self.url} refused the API key: set the server's QA_API_KEY.)") from exc
            # What the asker must fix, or what waiting longer would not change, is theirs to read.
            if status < 500 or status in (503, 504):
                raise RemoteError(status, message) from exc
            raise ServerUnavailable(f"服务器 {self.url} 出错（HTTP {status}）。(The server at {self.url} failed: "
                                    f"HTTP {status}.)") from exc
        except (OSError, ValueError) as exc:  # refused, reset, timed out, not JSON
            raise ServerUnavailable(f"无法连接服务器 {self.url}：{exc}。(Cannot reach the server at {self.url}: {exc}.)") from exc


def connect(settings) -> tuple[RemoteAssistant | None, str | None]:
    """(the running server to ask, or None; a note for the user when a configured server failed).

    A server recorded in the data folder that does not answer is passed over silently (it may be
    starting or stopping); one named by ``QA_SERVER_URL`` that fails is worth a note."""
    named = settings.server_url
    url = named or running_server(settings.resolved_data_dir())
    if not url:
        return None, None
    # The server enforces its own time limit on a question; ours only needs to outlast it.
    remote = RemoteAssistant(url, settings.api_key, settings.request_timeout_s + 10 if settings.request_timeout_s else None)
    try:
        remote.probe(settings.server_timeout_s)
    except (ServerUnavailable, RemoteError) as exc:
        return None, (str(exc) if named else None)
    return remote, None


def answer_from_json(data: dict[str, Any]) -> Answer:
    """The ``Answer`` of a ``/v1/ask`` response (its passages stay in the JSON)."""
    try:
        citations = [Citation(**{k: v for k, v in c.items() if k in _CITATION_FIELDS}) for c in data.get("citations") or []]
        return Answer(question=str(data.get("question", "")), text=str(data["answer"]), citations=citations,
                      refused=bool(data.get("refused")), grounded=bool(data.get("grounded", True)),
                      reasons=list(data.get("reasons") or []), backend=str(data.get("backend", "")),
                      timings=dict(data.get("timings") or {}))
    except (KeyError, TypeError, AttributeError) as exc:
        raise ServerUnavailable(f"服务器的回答格式不对：{exc}。(The server's answer is malformed: {exc}.)") from exc


def _json(raw: bytes) -> dict:
    try:
        data = json.loads(raw.decode("utf-8")) if raw else {}
    except (UnicodeDecodeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _message(data: dict) -> str:
    error = data.get("error")
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    return str(data.get("detail") or "")
