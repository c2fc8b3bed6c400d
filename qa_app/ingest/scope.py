"""A document's scope (place, period) and kind, inferred from its title lines and text.

Many regions' reports read alike, so a figure answers a question only for the place and
period it belongs to. Every document gets a scope at ingest, for any file, from:
- the place: the manifest's ``place``/``region`` when given; else the place its title names;
  else the body that speaks ("安徽省第十四届人民代表大会", "海淀区人民政府", "全国人民代表大会");
  else the place the text names far more often than any other. Names are resolved through
  the administrative-division data (``qa_app.places``), so any district, city or province works;
- the period: the five-year plan a title names (十三五 → 2016–2020), the years a title
  reports on ("2023年…执行情况") and plans for ("2024年…计划"); for a work report the year
  before it was delivered is reported on and its own year planned;
- the kind: from the title's words (政府工作报告, 计划执行情况, 规划纲要, 统计公报, 预算).
A document that names no place clearly (a news story, an encyclopedia page) stays
unscoped: it is searched for every question and never excluded by a place.
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Any

from qa_app.models import Scope
from qa_app.places import COUNTRY_CODE, Place, gazetteer
from qa_app.text import normalize, plans_in, years_in

KINDS = {
    "work_report": "政府工作报告",
    "plan_report": "计划执行情况报告",
    "plan": "规划纲要",
    "statistics": "统计公报",
    "budget_report": "预算执行情况报告",
    "news": "新闻报道",
    "other": "其他",
}
_KIND_WORDS = [
    ("plan_report", re.compile(r"计划执行情况|计划的报告")),
    ("budget_report", re.compile(r"预算执行情况|预算的报告|预算草案")),
    ("statistics", re.compile(r"统计公报")),
    ("plan", re.compile(r"五年规划|规划纲要|个五年|十[一二三四五六七八九]?五.{0,6}规划")),
    ("work_report", re.compile(r"政府工作报告|工作报告")),
]
# The bodies that speak for a place in a report's opening lines.
_SPEAKER = re.compile(r"(人民代表大会|人民政府|国民经济和社会发展|政府工作报告)")
_NATIONAL = re.compile(r"全国人民代表大会|国务院总理|国务院")


def infer_kind(title: str, manifest_kind: str = "") -> str:
    if manifest_kind:
        for code, label in KINDS.items():
            if manifest_kind in (code, label):
                return code
        return manifest_kind
    t = normalize(title)
    for code, pattern in _KIND_WORDS:
        if pattern.search(t):
            return code
    return ""


def _pick(found: list[tuple[int, str, list[Place]]], context: str) -> Place | None:
    """The most specific place named, its ambiguity (two 朝阳区) settled by the ancestors named."""
    g = gazetteer()
    named_codes = {p.code for _, _, cands in found for p in cands if len(cands) == 1}
    best: Place | None = None
    for _, _, cands in found:
        if len(cands) > 1:
            backed = [p for p in cands if any(a.code in named_codes or a.name in context for a in g.lineage(p)[1:] if a.level != "country")]
            if len(backed) != 1:
                continue
            cands = backed
        place = cands[0]
        if best is None or (g.contains(best, place) and place.code != best.code):
            best = place
    return best


def infer_place(title: str, text: str, manifest_place: str = "") -> Place | None:
    g = gazetteer()
    if manifest_place:
        resolved = g.resolve(manifest_place)
        if resolved is not None:
            return resolved
    head = normalize(text[:3000])
    title = normalize(title)
    unique_short = lambda p: len(g.shorts.get(p.short, ())) == 1  # noqa: E731 - 海淀 is one place; 朝阳 is not
    in_title = g.find(title, short_districts=unique_short)
    if in_title:
        place = _pick(in_title, head)
        if place is not None:
            return place
    if "政府工作报告" in title and _NATIONAL.search(head[:600]) and not g.find(head[:600]):
        return g.get(COUNTRY_CODE)
    speakers = []
    for m in _SPEAKER.finditer(head):
        before = head[max(0, m.start() - 16) : m.start()]
        before = re.sub(r"第[一二三四五六七八九十百\d]+届$", "", before)
        found = g.find(before, short_districts=unique_short)
        if found and found[-1][0] + len(found[-1][1]) >= len(before) - 1:
            speakers.append(found[-1])
    if speakers:
        place = _pick(speakers, head)
        if place is not None:
            return place
    if _NATIONAL.search(head[:600]) and "全国" in head[:600]:
        return g.get(COUNTRY_CODE)
    # The place the text is about: named far more often than any other.
    counts: Counter[str] = Counter()
    for _, _, cands in g.find(normalize(text), short_districts=unique_short):
        if len(cands) == 1:
            counts[cands[0].code] += 1
    if not counts:
        return None
    (top, n), *rest = counts.most_common(2) + [("", 0)]
    second = rest[0][1]
    return g.get(top) if n >= 5 and n >= 3 * second else None


def infer_period(title: str, kind: str, date: str, year: int | None) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
    """(years reported on, years planned for), each a (first, last) span or None."""
    t = normalize(title)
    reported = planned = None
    plans = sorted(plans_in(t))
    if plans and kind == "plan":
        planned = plans[0]
    m = re.search(r"((?:19|20)\d{2})年[^，。]{0,40}?执行情况", t)
    if m:
        reported = (int(m.group(1)),) * 2
    m = re.search(r"((?:19|20)\d{2})年[^，。]{0,40}?计划(?!执行)", t[m.end():] if m else t)
    if m and kind != "plan":
        planned = (int(m.group(1)),) * 2
    if kind == "statistics" and years_in(t):
        reported = (min(years_in(t)),) * 2
    if kind == "work_report" and reported is None:
        delivered = _date_year_month(date) or ((min(years_in(t)), 3) if years_in(t) else None)
        if delivered:
            y, month = delivered
            # Delivered at the start of a year it reviews the last one; late in a year (区人代会
            # in December) it reviews the year ending.
            reported, planned = ((y, y), (y + 1, y + 1)) if month >= 9 else ((y - 1, y - 1), (y, y))
    if reported is None and planned is None and year:
        reported = (year, year)
    return reported, planned


def _date_year_month(date: str) -> tuple[int, int] | None:
    m = re.match(r"((?:19|20)\d{2})(?:-(\d{1,2}))?", date or "")
    if not m:
        return None
    return int(m.group(1)), int(m.group(2) or 6)


def infer_scope(title: str, text: str, meta: dict[str, Any]) -> tuple[Scope, str]:
    """(scope, kind) for a document; manifest fields (``place``/``region``, ``kind``,
    ``reported``/``planned`` as [first, last]) override what the text says."""
    kind = infer_kind(title, str(meta.get("kind") or ""))
    place = infer_place(title, text, str(meta.get("place") or meta.get("region") or ""))
    reported, planned = infer_period(title, kind, str(meta.get("date") or ""), meta.get("year"))
    for key in ("reported", "planned"):
        value = meta.get(key)
        if isinstance(value, (list, tuple)) and value:
            span = (int(value[0]), int(value[-1]))
            reported, planned = (span, planned) if key == "reported" else (reported, span)
    g = gazetteer()
    scope = Scope(
        place_code=place.code if place else "",
        place=g.full_name(place) if place else "",
        level=place.level if place else "",
        reported=reported,
        planned=planned,
    )
    return scope, kind
