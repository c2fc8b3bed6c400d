"""What a repair needs when a file of the index is damaged: moving it aside (never deleting it),
reading what can still be read from it, and knowing where the indexed documents came from.

``sources.json`` in the data folder maps every indexed document to its source file. It is
rewritten after each write and read only when the catalog itself is lost, so a rebuild can
find documents ingested from any folder, not only the seeds and ``uploads/``. It is a hint:
a rebuild checks that each file is still there.
"""
from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from qa_app.index.catalog import open_sqlite_readonly, sidecars

log = logging.getLogger(__name__)

SOURCES_FILE = "sources.json"
DAMAGED_SUFFIX = ".damaged-"


def move_aside(path: Path) -> Path:
    """Rename ``path`` (a file with its SQLite companions, or a folder) to ``<name>.damaged-<UTC time>``."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}{DAMAGED_SUFFIX}{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}{DAMAGED_SUFFIX}{stamp}-{n}")
    companions = sidecars(path) if path.is_file() else []
    path.rename(target)
    # The WAL and journal belong to the bytes moved: left behind, SQLite would replay them into
    # the new file of the same name.
    for extra in companions:
        if extra.exists():
            extra.rename(target.with_name(target.name + extra.name[len(path.name):]))
    return target


def write_sources(data_dir: Path, sources: dict[str, str]) -> None:
    path = data_dir / SOURCES_FILE
    tmp = data_dir / f".{SOURCES_FILE}.tmp"
    tmp.write_text(json.dumps(sources, ensure_ascii=False, indent=0, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_sources(data_dir: Path) -> dict[str, str]:
    try:
        data = json.loads((data_dir / SOURCES_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items() if v} if isinstance(data, dict) else {}


@dataclass
class Salvage:
    """What could still be read from a damaged catalog."""

    documents: dict[str, str] = field(default_factory=dict)  # doc_id -> source path
    cache_rows: int = 0
    problems: list[str] = field(default_factory=list)


def salvage(damaged: Path, into=None) -> Salvage:
    """Read the documents' source paths and (into the catalog ``into``) the embedding cache from a
    damaged catalog file, as far as SQLite can still read them; every failure is noted, none raised."""
    out = Salvage()
    try:
        db = open_sqlite_readonly(damaged, timeout=1.0)
    except sqlite3.Error as exc:
        out.problems.append(f"cannot open it at all ({exc})")
        return out
    try:
        try:
            for doc_id, source in db.execute("SELECT doc_id, source_path FROM documents"):
                if doc_id and source:
                    out.documents[str(doc_id)] = str(source)
        except sqlite3.Error as exc:
            out.problems.append(f"its document list is unreadable ({exc})")
        if into is not None:
            out.cache_rows = _copy_cache(db, into, out.problems)
    finally:
        db.close()
    return out


def _copy_cache(db: sqlite3.Connection, into, problems: list[str]) -> int:
    """Copy the readable, well-formed cached vectors; stop at the first unreadable page."""
    import numpy as np

    rows: list[tuple[str, str, bytes]] = []
    copied = 0
    dims: Counter[int] = Counter()
    try:
        for model, text_hash, blob in db.execute("SELECT model, text_hash, vector FROM embedding_cache"):
            if not (isinstance(model, str) and isinstance(text_hash, str) and isinstance(blob, bytes)) or len(blob) % 4:
                continue
            vector = np.frombuffer(blob, dtype=np.float32)
            # A damaged cell can still parse; a vector of the wrong length or with NaNs is dropped
            # (it would be re-embedded) rather than trusted.
            if not len(vector) or not np.isfinite(vector).all() or not math.isfinite(float(vector @ vector)):
                continue
            dims[(model, len(vector))] += 1
            rows.append((model, text_hash, blob))
            if len(rows) >= 2000:
                copied += _flush(rows, dims, into)
    except sqlite3.Error as exc:
        problems.append(f"its embedding cache is unreadable past {copied + len(rows)} vectors ({exc})")
    return copied + _flush(rows, dims, into)


def _flush(rows: list[tuple[str, str, bytes]], dims: Counter, into) -> int:
    if not rows:
        return 0
    usual: dict[str, tuple[int, int]] = {}  # model -> (its most common length, how often)
    for (model, dim), n in dims.items():
        if n > usual.get(model, (0, 0))[1]:
            usual[model] = (dim, n)
    good = [r for r in rows if len(r[2]) == usual[r[0]][0] * 4]
    into.cache_blobs(good)
    rows.clear()
    return len(good)
