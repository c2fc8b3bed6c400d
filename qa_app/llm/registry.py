"""The answer backends by name: the built-in ones, and any a plugin registers.

Adding a backend is one module with a class implementing ``base.Generator`` (its ``readiness``
included) plus one line: in ``BUILTIN`` here, or, from another package, an entry point in the
``qa_app.generators`` group (``[project.entry-points."qa_app.generators"] mine = "pkg.mod:MyGenerator"``).
Nothing else names backends: the CLI's ``backends`` and ``eval --backend`` read this registry.
"""
from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from qa_app.llm.base import Generator

GROUP = "qa_app.generators"

BUILTIN: dict[str, str] = {
    "extractive": "qa_app.llm.extractive:ExtractiveGenerator",
    "openai": "qa_app.llm.openai_backend:OpenAIGenerator",
    "transformers": "qa_app.llm.transformers_backend:TransformersGenerator",
}


class UnknownGenerator(ValueError):
    pass


def available() -> dict[str, str]:
    """Every backend's name → "module:Class"; a plugin cannot take a built-in name."""
    found = dict(BUILTIN)
    for ep in entry_points(group=GROUP):
        found.setdefault(ep.name, ep.value)
    return found


def generator_class(name: str) -> type[Generator]:
    """The backend's class, imported only now (optional extras stay optional)."""
    target = available().get(name)
    if target is None:
        raise UnknownGenerator(f"unknown generator {name!r}; available: {', '.join(sorted(available()))}")
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


def make_generator(settings) -> Generator:
    return generator_class(settings.generator)(settings)


def readiness(name: str, settings) -> tuple[bool, str]:
    """(ready, detail) for one backend, by its own check; one that cannot even be imported is
    not ready, and says why."""
    try:
        cls = generator_class(name)
    except ImportError as exc:
        return False, f"not installed: {exc}"
    return cls.readiness(settings)
