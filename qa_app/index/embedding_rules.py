"""What every embedding backend shares, in-process or remote: the error they raise and the
instruction prefixes a model family was trained with.

One rule for all backends, so that a model reached through an endpoint gets the same texts (and
so the same vectors) as the same model run in-process.
"""
from __future__ import annotations


class EmbeddingError(RuntimeError):
    """An embedding model that cannot be loaded or reached; the message says what to do."""


BGE_ZH_QUERY_INSTRUCTION = "为这个句子生成表示以用于检索相关文章："


def instruction_prefixes(model: str) -> tuple[str, str]:
    """(query prefix, passage prefix) for a model name.

    e5 and Chinese bge models are trained with instruction prefixes; leaving them out costs recall
    (and, for a remote copy of a local model, vectors that no longer match the local ones)."""
    lowered = model.lower()
    if "e5" in lowered:
        return "query: ", "passage: "
    if "bge" in lowered and "zh" in lowered:
        return BGE_ZH_QUERY_INSTRUCTION, ""
    return "", ""
