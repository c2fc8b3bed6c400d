"""Prompt and wording templates, kept as files in ``prompts/`` and loaded by name.

A user can point ``QA_PROMPTS_DIR`` at a folder of their own; names missing there fall
back to the packaged defaults.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from qa_app.config import PROJECT_DIR

DEFAULT_DIR = PROJECT_DIR / "prompts"


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
