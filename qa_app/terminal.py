"""Questions typed at a terminal or piped in, answered as one conversation.

Each question is asked with the earlier ones as its history, so a follow-up ("那2024年呢？")
is read with the topic of the questions before it, as on the chat page and in the API. A line
``/new`` (or ``/新对话``) starts a new conversation; an empty line or end of input ends the session.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

NEW_CONVERSATION = frozenset({"/new", "/新对话", "/reset"})
# The follow-up rules read the latest turns; a bounded history also keeps a long session's
# requests under the API's size limit.
HISTORY_TURNS = 20

PROMPT = "问题> "
GREETING = ("输入问题并回车；追问会接着前面的问题理解，/new 开始新对话；空行或 Ctrl-D 退出。"
            "(Type a question and press Enter; follow-ups build on the earlier questions, /new starts a new "
            "conversation; an empty line or Ctrl-D quits.)")
NEW_STARTED = "已开始新对话。(New conversation started.)"


class Conversation:
    """The questions asked so far in this conversation, oldest first."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    @property
    def history(self) -> list[str] | None:
        return self.asked[-HISTORY_TURNS:] or None

    def record(self, question: str) -> None:
        self.asked.append(question)

    def reset(self) -> None:
        self.asked.clear()


def read_lines(interactive: bool, prompt: str = PROMPT) -> Iterator[str]:
    """Lines until an empty one or end of input (Ctrl-D; Ctrl-C at the prompt ends quietly too)."""
    while True:
        try:
            line = input(prompt if interactive else "")
        except (EOFError, KeyboardInterrupt):
            return
        if not line.strip():
            return
        yield line


def converse(lines: Iterable[str], answer: Callable[[str, list[str] | None], bool],
             on_new: Callable[[], None]) -> Conversation:
    """Answer each line with the conversation so far as its history. ``answer`` returns whether
    the question was answered (a refusal counts; a question that was an error is not remembered)."""
    conversation = Conversation()
    for line in lines:
        if line.strip().lower() in NEW_CONVERSATION:
            conversation.reset()
            on_new()
            continue
        if answer(line, conversation.history):
            conversation.record(line)
    return conversation
