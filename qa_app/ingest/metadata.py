"""Document metadata: from a ``manifest.json`` beside the file, else inferred from the text."""
from __future__ import annotations

import re
from pathlib import Path

from qa_app.manifest import manifest_entry
from qa_app.text import YEAR_RE, to_simplified

_DATE_RE = re.compile(r"(19[5-9]\d|20[0-4]\d)\s*[年\-./]\s*(\d{1,2})\s*[月\-./]\s*(\d{1,2})")


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


# --- metadata given with an upload -----------------------------------------------------------
_SPAN_RE = re.compile(r"^\s*((?:19|20)\d{2})\s*(?:[-–—~至到]\s*((?:19|20)\d{2}))?\s*$")
_ISO_DATE_RE = re.compile(r"^(19|20)\d{2}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$")


def upload_entry(title: str | None = None, date: str | None = None, place: str | None = None, kind: str | None = None,
                 reported: str | None = None, planned: str | None = None) -> dict:
    """A manifest entry from the fields of an upload form, each checked, or a ``ValueError``
    that says which field is wrong. Empty fields are left to inference from the text."""
    from qa_app.ingest.scope import KINDS
    from qa_app.places import gazetteer

    entry: dict = {}
    if title and title.strip():
        entry["title"] = title.strip()
    if date and date.strip():
        if not _ISO_DATE_RE.match(date.strip()):
            raise ValueError(f"date 应写作 YYYY-MM-DD：{date!r}。(date must be YYYY-MM-DD: {date!r}.)")
        entry["date"] = date.strip()
    if place and place.strip():
        g = gazetteer()
        if g.get(place.strip()) is None and g.resolve(place.strip()) is None:
            raise ValueError(f"未知地名：{place!r}。(Unknown place: {place!r}.)")
        entry["place"] = place.strip()
    if kind and kind.strip():
        if kind.strip() not in KINDS and kind.strip() not in KINDS.values():
            known = ", ".join(f"{k} ({v})" for k, v in KINDS.items())
            raise ValueError(f"未知文档类型：{kind!r}；可用：{known}。(Unknown kind {kind!r}; known: {known}.)")
        entry["kind"] = kind.strip()
    for key, value in (("reported", reported), ("planned", planned)):
        if value and value.strip():
            m = _SPAN_RE.match(value)
            if not m or (m.group(2) and int(m.group(2)) < int(m.group(1))):
                raise ValueError(f"{key} 应写作年份或年份区间（2025 或 2021-2025）：{value!r}。"
                                 f"({key} must be a year or a span of years, e.g. 2025 or 2021-2025: {value!r}.)")
            entry[key] = [int(m.group(1)), int(m.group(2) or m.group(1))]
    return entry
