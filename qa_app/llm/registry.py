"""Generator registry: adding a backend is one module and one line here."""
from __future__ import annotations

import importlib
from typing import Callable

from qa_app.llm.base import Generator


def _lazy(module: str, cls: str) -> Callable[..., Generator]:
    """A factory that imports the backend only when it is chosen (optional extras stay optional)."""

    def factory(settings) -> Generator:
        return getattr(importlib.import_module(module), cls)(settings)

    factory.__qualname__ = f"{cls}.factory"
    return factory


GENERATORS: dict[str, Callable[..., Generator]] = {
    "extractive": _lazy("qa_app.llm.extractive", "ExtractiveGenerator"),
    "openai": _lazy("qa_app.llm.openai_backend", "OpenAIGenerator"),
    "transformers": _lazy("qa_app.llm.transformers_backend", "TransformersGenerator"),
}


class UnknownGenerator(ValueError):
    pass


def make_generator(settings) -> Generator:
    try:
        factory = GENERATORS[settings.generator]
    except KeyError:
        raise UnknownGenerator(
            f"unknown generator {settings.generator!r}; available: {', '.join(sorted(GENERATORS))}"
        ) from None
    return factory(settings)
