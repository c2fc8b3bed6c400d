"""Question sets (JSONL, format in DESIGN.md): loaded, checked, a bad line kept as an error item."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

# "withheld": an answerable question asked with its evidence kept out of retrieval (eval/withheld.py).
NO_ANSWER_CATEGORIES = {"unanswerable", "missing_figure", "withheld"}


class EvalSetError(ValueError):
    pass


@dataclass
class EvalItem:
    id: str
    question: str
    answer_keys: list[str]
    evidence: list[dict[str, str]]
    category: str
    raw: dict[str, Any] = field(default_factory=dict)
    file: str = ""  # the eval set's file name: ids are only unique within one file
    error: str = ""  # why the item cannot be run (bad line, bad question): it becomes an error item
    withhold: frozenset[str] = frozenset()  # chunk ids kept out of retrieval for this item

    @property
    def answerable(self) -> bool:
        return bool(self.answer_keys) and self.category not in NO_ANSWER_CATEGORIES

    @property
    def key(self) -> tuple[str, str]:
        return (self.file, self.id)

    def digest(self) -> str:
        """Changes when the item is edited, so a checkpointed result of the old wording is not reused."""
        return hashlib.sha1(json.dumps(self.raw, ensure_ascii=False, sort_keys=True).encode()).hexdigest()[:12]


def load_eval_set(path: Path) -> list[EvalItem]:
    """The items of one JSONL eval set. A line that cannot be an item becomes an error item
    (``EvalItem.error`` says why, with the file and line) instead of stopping the load."""
    items = []
    # Lines are split on the bytes (\n, \r\n, \r only), not with str.splitlines, which also
    # breaks at U+2028 and other separators that may sit inside a JSON string.
    for n, data in enumerate(path.read_bytes().splitlines(), 1):
        where = f"{path.name}:{n}"
        fallback_id = f"{path.stem}-{n}"
        try:
            line = data.decode("utf-8-sig" if n == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            items.append(_error_item(fallback_id, {}, path, f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start})"))
            continue
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            items.append(_error_item(fallback_id, {"line": line[:200]}, path, f"{where}: not valid JSON ({exc})"))
            continue
        if not isinstance(obj, dict):
            items.append(_error_item(fallback_id, {"line": line[:200]}, path, f"{where}: not a JSON object but {_kind_of(obj)}"))
            continue
        item_id = str(obj.get("id", fallback_id))
        problem = _item_problem(obj)
        if problem:
            items.append(_error_item(item_id, obj, path, f"{where}: {problem}"))
            continue
        items.append(
            EvalItem(
                id=item_id,
                question=obj["question"],
                answer_keys=list(obj.get("answer_keys") or []),
                evidence=list(obj.get("evidence") or []),
                category=str(obj.get("category", "")),
                raw=obj,
                file=path.name,
            )
        )
    return items


def _kind_of(value: Any) -> str:
    return {type(None): "null", bool: "a boolean", int: "a number", float: "a number", str: "a string",
            list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def _item_problem(obj: dict[str, Any]) -> str | None:
    """What makes an eval item unusable, in plain words; None when it is fine."""
    if "question" not in obj:
        return 'no "question" field'
    question = obj["question"]
    if not isinstance(question, str):
        return f"the question is {_kind_of(question)}, not a string"
    if not question.strip():
        return "the question is empty"
    keys = obj.get("answer_keys")
    if keys is not None and not isinstance(keys, list):
        return f'"answer_keys" is {_kind_of(keys)}, not a list of strings'
    for i, key in enumerate(keys or []):
        if not isinstance(key, str):
            return f'"answer_keys"[{i}] is {_kind_of(key)}, not a string'
    evidence = obj.get("evidence")
    if evidence is not None and not isinstance(evidence, list):
        return f'"evidence" is {_kind_of(evidence)}, not a list of objects'
    for i, e in enumerate(evidence or []):
        if not isinstance(e, dict):
            return f'"evidence"[{i}] is {_kind_of(e)}, not an object'
        for name in ("doc", "quote"):
            if e.get(name) is not None and not isinstance(e[name], str):
                return f'"evidence"[{i}].{name} is {_kind_of(e[name])}, not a string'
    return None


def _error_item(item_id: str, obj: dict[str, Any], path: Path, message: str) -> EvalItem:
    question = obj.get("question")
    return EvalItem(
        id=item_id,
        question=question if isinstance(question, str) else "",
        answer_keys=[],
        evidence=[],
        category=str(obj.get("category", "")),
        raw=obj,
        file=path.name,
        error=message,
    )


def load_eval_sets(paths: Iterable[Path]) -> list[EvalItem]:
    items = [item for p in paths for item in load_eval_set(p)]
    seen: set[tuple[str, str]] = set()
    for item in items:
        if item.key in seen:
            raise EvalSetError(f"{item.file}: id {item.id!r} appears twice (results are keyed by file and id)")
        seen.add(item.key)
    return items

