"""What an OpenAI chat request asks of us, checked: every field OpenAI has is honoured, accepted
without effect (documented), or refused by name; a field OpenAI does not have is refused by name.
Nothing a client asked for is silently dropped when dropping it would change what it gets.

The messages become one question (the last user message), the conversation before it (earlier
user messages and the assistant replies that followed each) and the client's instructions
(system and developer messages)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qa_app.answer import Conversation
from qa_app.api.errors import ApiError
from qa_app.api.schemas import ChatMessage, ChatRequest

# Sampling, caching, routing and bookkeeping hints: an answer is quoted from the reports, or a
# model's answer verified against them, so these change nothing a client could rely on.
IGNORED = frozenset({
    "temperature", "top_p", "frequency_penalty", "presence_penalty", "seed", "user", "safety_identifier",
    "metadata", "store", "service_tier", "prompt_cache_key", "prompt_cache_retention", "prompt_cache_options",
    "reasoning_effort", "verbosity", "parallel_tool_calls",
})
# OpenAI options that would change the reply in a way this server cannot: refused unless given
# the value that asks for nothing (absent, null, or the value listed here).
REFUSED: dict[str, Any] = {
    "n": 1, "tools": [], "functions": [], "function_call": "none", "tool_choice": "none", "response_format": {"type": "text"},
    "logprobs": False, "top_logprobs": 0, "logit_bias": {}, "stop": [], "audio": None, "modalities": ["text"],
    "prediction": None, "web_search_options": None, "moderation": None,
}
_WHY = {
    "n": "only one choice per request (n must be 1)",
    "tools": "answers are text with citations; there are no tools to call",
    "functions": "answers are text with citations; there are no functions to call",
    "function_call": "answers are text with citations; there are no functions to call",
    "tool_choice": "answers are text with citations; there are no tools to call",
    "response_format": "answers are text with citations",
    "logprobs": "no token probabilities: answers are quoted or verified, not sampled",
    "top_logprobs": "no token probabilities: answers are quoted or verified, not sampled",
    "logit_bias": "answers are quoted or verified, not sampled",
    "stop": "stop sequences are not supported; use max_tokens to bound the reply",
    "audio": "answers are text",
    "modalities": "answers are text",
    "prediction": "predicted outputs are not supported",
    "web_search_options": "answers come from the indexed reports only",
    "moderation": "moderation is not offered",
}
MESSAGE_KEYS = frozenset({"role", "content", "name", "refusal", "tool_calls", "function_call", "audio", "tool_call_id"})


@dataclass(frozen=True)
class ChatInput:
    """A checked chat request: the question, the questions before it, and the rest of the
    conversation (instructions, replies, the answer's bound in tokens)."""

    question: str
    history: list[str]
    conversation: Conversation
    prompt: str  # every message's text, for the usage's prompt tokens


def _refused(param: str, why: str, code: str = "unsupported_parameter") -> ApiError:
    return ApiError(400, f"不支持参数 {param}：{why}。(The {param!r} parameter is not supported: {why}.)",
                    param=param, code=code)


def _asks_nothing(name: str, value: Any) -> bool:
    neutral = REFUSED[name]
    if value is None or value == neutral:
        return True
    if name == "modalities":
        return isinstance(value, list) and set(value) <= {"text"}
    if name == "stop":
        return value == "" or value == []
    if name in ("tools", "functions", "logit_bias"):
        return not value
    return False


def check_options(req: ChatRequest) -> None:
    """Refuse, by name, a field OpenAI does not have, and an OpenAI option this server cannot honour."""
    for name, value in (req.model_extra or {}).items():
        if name in IGNORED:
            continue
        if name not in REFUSED:
            raise ApiError(400, f"未知参数：{name}。(Unrecognized request argument supplied: {name}.)",
                           param=name, code="unknown_parameter")
        if not _asks_nothing(name, value):
            raise _refused(name, _WHY[name], "unsupported_value" if name == "n" else "unsupported_parameter")
    if req.stream_options is not None:
        for name in req.stream_options.model_extra or {}:
            if name != "include_obfuscation":  # OpenAI's padding against side channels: nothing to pad here
                raise ApiError(400, f"未知参数：stream_options.{name}。(Unrecognized request argument supplied: "
                                    f"stream_options.{name}.)", param=f"stream_options.{name}", code="unknown_parameter")


def _text(message: ChatMessage, i: int) -> str:
    """A message's text; a part that is not text (an image, audio, a file) is refused by name."""
    if isinstance(message.content, list):
        texts = []
        for j, part in enumerate(message.content):
            kind = part.get("type", "text")
            if kind != "text" or not isinstance(part.get("text", ""), str):
                raise ApiError(400, f"messages[{i}].content[{j}] 的类型 {kind!r} 不受支持：只接受文字。"
                                    f"(messages[{i}].content[{j}]: content of type {kind!r} is not supported; send text.)",
                               param=f"messages.{i}.content.{j}.type", code="unsupported_value")
            texts.append(part.get("text", ""))
        return "".join(texts)
    return message.content or ""


def _check_message(message: ChatMessage, i: int) -> None:
    for key in message.model_extra or {}:
        if key not in MESSAGE_KEYS:
            raise ApiError(400, f"未知参数：messages[{i}].{key}。(Unrecognized request argument supplied: messages[{i}].{key}.)",
                           param=f"messages.{i}.{key}", code="unknown_parameter")
    extra = message.model_extra or {}
    if message.role in ("tool", "function") or extra.get("tool_calls") or extra.get("function_call") or extra.get("tool_call_id"):
        raise _refused(f"messages.{i}", "answers are text with citations; there are no tools or functions")
    if extra.get("audio"):
        raise _refused(f"messages.{i}.audio", "answers are text")


def read_chat(req: ChatRequest) -> ChatInput:
    """The question, conversation and bound a checked request asks for."""
    check_options(req)
    questions: list[str] = []
    replies: list[str] = []
    instructions: list[str] = []
    texts: list[str] = []
    for i, message in enumerate(req.messages):
        _check_message(message, i)
        text = _text(message, i)
        texts.append(text)
        if message.role == "user":
            questions.append(text)
            replies.append("")
        elif message.role == "assistant":
            if replies:  # the reply to the question before it; several in a row are one reply
                replies[-1] = (replies[-1] + "\n" + text).strip()
        else:  # system, developer
            instructions.append(text)
    if not questions:
        raise ApiError(400, "没有用户消息。(No user message: the last user message is the question.)", param="messages")
    # Earlier questions with nothing in them are dropped with their replies, keeping the two aligned.
    kept = [(q, r) for q, r in zip(questions[:-1], replies[:-1]) if q.strip()]
    limits = [n for n in (req.max_tokens, req.max_completion_tokens) if n is not None]
    return ChatInput(
        question=questions[-1],
        history=[q for q, _ in kept],
        conversation=Conversation(instructions="\n".join(t.strip() for t in instructions if t.strip()),
                                  replies=tuple(r for _, r in kept), max_tokens=min(limits) if limits else None),
        prompt="\n".join(texts),
    )
