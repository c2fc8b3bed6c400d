"""A folder's ``manifest.json``: what a person said about its files (title, date, place, kind,
years), kept beside them so every later re-index keeps it. Uploads write it; ingest reads it;
a repair or a sweep of a killed upload's leftovers edits it. Plain files, no index."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path


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


def update_manifest(folder: Path, entries: dict[str, dict | None]) -> dict[str, dict | None]:
    """Set (or, for None, remove) the entries of ``folder``'s manifest.json for the given file
    names, written whole to a new file and swapped in; returns the entries they replaced."""
    path = folder / "manifest.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        data = {}
    data = data if isinstance(data, dict) else {}
    before = {name: data.get(name) for name in entries}
    for name, entry in entries.items():
        if entry:
            data[name] = entry
        else:
            data.pop(name, None)
    if not data:
        path.unlink(missing_ok=True)
        return before
    tmp = folder / ".manifest.json.tmp"
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)
    return before
