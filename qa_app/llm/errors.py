"""The error every generator raises, apart from the generators (the prompt helpers raise it too)."""
from __future__ import annotations


class GeneratorError(RuntimeError):
    """A generator could not produce an answer: endpoint unreachable, key refused, timeout,
    empty or unusable output, model folder missing. The message says which, in plain words.
    ``unavailable`` is true when the model cannot be used at all right now (unreachable,
    refused key, timeout, not configured): asking it again within the same question is pointless."""

    def __init__(self, message: str, unavailable: bool = False):
        super().__init__(message)
        self.unavailable = unavailable
