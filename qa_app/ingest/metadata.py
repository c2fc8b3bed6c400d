"""Document metadata: from a ``manifest.json`` beside the file, else inferred from the text."""
from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

from qa_app.text import YEAR_RE, to_simplified

_DATE_RE = re.compile(r"(19[5-9]\d|20[0-4]\d)\s*[年\-./]\s*(\d{1,2})\s*[月\-./]\s*(\d{1,2})")


@lru_cache(maxsize=32)
def _manifest(folder: str, mtime: float) -> dict:
    try:
        data = json.loads((Path(folder) / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def manifest_entry(path: Path) -> dict:
    mf = path.parent / "manifest.json"
    if not mf.is_file():
        return {}
    entry = _manifest(str(path.parent), mf.stat().st_mtime).get(path.name, {})
    return entry if isinstance(entry, dict) else {}


def detect_script(text: str) -> str:
    sample = "".join(ch for ch in text[:20000] if "\u4e00" <= ch <= "\u9fff")
    if not sample:
        return "simplified"
    changed = sum(1 for a, b in zip(sample, to_simplified(sample)) if a != b)
    return "traditional" if changed / len(sample) > 0.02 else "simplified"


def infer(path: Path, cleaned: str) -> dict:
    first = next((ln.strip() for ln in cleaned.splitlines() if ln.strip()), path.stem)
    title = first if len(first) <= 120 else path.stem
    year_match = YEAR_RE.search(title) or YEAR_RE.search(cleaned[:3000])
    date_match = _DATE_RE.search(cleaned[:3000])
    date = ""
    if date_match:
        y, m, d = date_match.groups()
        if 1 <= int(m) <= 12 and 1 <= int(d) <= 31:
            date = f"{y}-{int(m):02d}-{int(d):02d}"
    return {
        "title": title,
        "year": int(year_match.group(1)) if year_match else None,
        "date": date,
        "kind": "",
        "script": detect_script(cleaned),
    }


def document_metadata(path: Path, cleaned: str) -> dict:
    meta = infer(path, cleaned)
    meta.update({k: v for k, v in manifest_entry(path).items() if v not in (None, "")})
    return meta
