"""Generator registry: adding a backend is one module and one line here."""
from __future__ import annotations

from typing import Callable

from qa_app.llm.base import Generator


def _extractive(settings) -> Generator:
    from qa_app.llm.extractive import ExtractiveGenerator

    return ExtractiveGenerator(settings)


GENERATORS: dict[str, Callable[..., Generator]] = {
    "extractive": _extractive,
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
