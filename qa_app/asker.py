"""Where the command line's answers come from: a running server when one is up, else this process.

Loading the index and the models takes seconds; a server already holds them. ``Asker`` asks the
server found by ``remote.connect`` and, when there is none or it stops answering, builds the
in-process ``Assistant`` (only then: importing it is the slow part). Either way the caller gets
the same ``Answer`` and the same user-facing errors, as ``AskError`` with a bilingual message.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qa_app.data_folder import empty_index_message, index_exists
from qa_app.models import Answer
from qa_app.remote import RemoteAssistant, RemoteError, ServerUnavailable, connect

class AskError(Exception):
    """A question that cannot be answered as asked; the message says why (Chinese and English)."""


class Asker:
    def __init__(self, settings, docs: list[str] | None = None, years: list[int] | None = None,
                 use_server: bool = True, warn: Callable[[str], None] = lambda _msg: None, assistant=None):
        """``assistant``: an in-process Assistant already built (``qa-app run`` has one)."""
        self.settings = settings
        self.docs, self.years = docs or None, years or None
        self.warn = warn
        self.remote: RemoteAssistant | None = None
        if use_server:
            self.remote, note = connect(settings)
            if note:
                warn(note + " 改为在本进程中回答。(Answering in this process instead.)")
        self._assistant = assistant
        self._filters = None
        self._checked = False  # filters made (and checked against the index) for the in-process assistant

    @property
    def via(self) -> str:
        return self.remote.url if self.remote is not None else "in-process"

    def ask(self, question: str, history: list[str] | None = None) -> tuple[Answer, dict[str, Any]]:
        """(the answer, its JSON form). Raises AskError."""
        if self.remote is not None:
            try:
                return self.remote.ask(question, self._remote_filters(), history)
            except RemoteError as exc:
                raise AskError(exc.message) from exc
            except ServerUnavailable as exc:
                self.warn(f"{exc} 改为在本进程中回答。(Answering in this process instead.)")
                self.remote = None
        return self._ask_here(question, history)

    def _remote_filters(self) -> dict[str, list] | None:
        filters = {k: v for k, v in (("docs", self.docs), ("years", self.years)) if v}
        return filters or None

    def _ask_here(self, question: str, history: list[str] | None) -> tuple[Answer, dict[str, Any]]:
        from qa_app.answer import USER_ERRORS

        try:
            assistant, filters = self._local()
            answer = assistant.ask(question, filters=filters, history=history)
        except USER_ERRORS as exc:
            raise AskError(getattr(exc, "message", None) or str(exc)) from exc
        return answer, answer.to_dict()

    def _local(self):
        if self._assistant is None:
            if not index_exists(self.settings):
                raise AskError(empty_index_message(self.settings.resolved_data_dir()))
            from qa_app.answer import Assistant

            self._assistant = Assistant(self.settings)
        if not self._checked:
            from qa_app.index.hybrid import make_filters

            # Checked before the first answer: an unknown document is an error, not an unfiltered answer.
            self._filters = make_filters(self.docs, self.years, known_docs=self._assistant.index.snapshot().docs)
            self._checked = True
        return self._assistant, self._filters
