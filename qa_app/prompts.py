"""Prompt and wording templates, kept as files and loaded by name.

The defaults are package data (``qa_app/resources/prompts/``), so an installed wheel has them.
``QA_PROMPTS_DIR`` (default: the checkout's ``prompts/``) is the override: a file there replaces
the packaged one of the same name; names missing there fall back to the packaged defaults.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

DEFAULT_DIR = Path(__file__).resolve().parent / "resources" / "prompts"


class PromptNotFound(FileNotFoundError):
    pass


@lru_cache(maxsize=64)
def _read(path: str, mtime: float) -> str:
    return Path(path).read_text(encoding="utf-8").strip()


def load_prompt(name: str, prompts_dir: Path | None = None) -> str:
    for folder in (prompts_dir, DEFAULT_DIR):
        if folder is None:
            continue
        for suffix in (".txt", ".md"):
            path = Path(folder) / f"{name}{suffix}"
            if path.is_file():
                return _read(str(path), path.stat().st_mtime)
    raise PromptNotFound(f"prompt {name!r} not found in {prompts_dir or DEFAULT_DIR}")
