"""A question's scope: the places it names, resolved against what the index covers.

A figure answers a question only for the place it belongs to, so a question that names a
place is searched in that place's documents (and the places inside it: a question about
北京 reads the 海淀区 reports); when no document is about the place itself, the documents
of the province or city that contains it are read (a question about 合肥 reads the 安徽
report), never the national one for a local question. Documents without a place (news,
encyclopedia pages) are always searched. A question about places that no document covers
is refused, saying what the index does cover.

Relative years (今年, 去年, 前年, 明年) are read against the newest report in scope: in a
report delivered in 2026, 去年 is 2025.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from qa_app.models import DocumentInfo
from qa_app.places import Place, gazetteer
from qa_app.text import is_latin_question

# Not 上年: "比上年增长" compares with the year before the one asked, whatever that is.
_RELATIVE = {"前年": -2, "去年": -1, "今年": 0, "明年": 1}
_RELATIVE_RE = re.compile("|".join(_RELATIVE))
# Places joined in one question ("安徽和河南…分别…", "北京、上海两地…"): each is asked about.
# Asking for each place, not for what they share ("京津冀三地协同发展…哪一年"): only then split.
_EACH = re.compile(r"分别|各自|各是|各为|各有|哪个|哪一个|哪一?年更|哪边|哪方|哪儿|谁|还是|更高|更多|更快|更大|更低|更少|更慢|更小|更长|更短"
                   r"|相比|比较|对比|差距|高于|低于|多于|少于"
                   r"|\b(?:respectively|each|both|which|compared?|versus|higher|faster)\b", re.I)
_JOINER = r"\s*(?:和|与|及|以及|跟|同|、|,|，|还有|对比|相比|比较|vs\.?|VS|and|or)\s*"


# What places do together or between them ("天津和河北之间有多少条高铁", "合计", "共建"): one
# figure for both, not one for each.
_TOGETHER = re.compile(r"之间|两地间|合计|一共|总共|加起来|共同|共建|联合|合作|携手|\b(?:between|together|combined|total)\b", re.I)


def _reported_apart(places: list[Place], docs: list[DocumentInfo]) -> bool:
    """Does each of these places (none inside another: 北京市海淀区 is one place) have reports of
    its own? Then a figure asked of them together ("海南和西藏今年经济增长目标是多少") is asked of
    each: every report gives its own place's."""
    g = gazetteer()
    places = list(dict.fromkeys(places))
    if any(p.code != q.code and g.contains(p, q) for p in places for q in places):
        return False
    reports = [frozenset(_docs_for(p, docs)) for p in places]
    return len(reports) >= 2 and all(reports) and len(set(reports)) == len(reports)


def _asks_each(text: str) -> bool:
    """Asked of each place or year: a word that says so, or 各 used as an adverb before a verb
    ("吉林和辽宁…各新增了多少"), not as a determiner ("各地区", "各项")."""
    if _EACH.search(text):
        return True
    return bool(_each_adverbs(text))


def _each_adverbs(text: str) -> list[int]:
    """Where 各 stands as an adverb before a verb ("…各新增了多少")."""
    if "各" not in text:
        return []
    import jieba.posseg

    tagged = jieba.posseg.lcut(text)
    at, out = 0, []
    for w, nxt in zip(tagged, tagged[1:]):
        if w.word == "各" and nxt.flag in ("v", "vd", "vi"):
            out.append(at)
        at += len(w.word)
    return out


# "分别", "各自": said of the places or years together; a part asks of one ("宁夏2025年经济分别增长了
# 多少" would keep 经济 and 增长 apart).
_RESPECTIVELY = re.compile(r"分别|各自")


# Who or which is ahead ("谁跑得更快", "哪个省…更高", "哪边多", "谁家打的粮食多", "哪个客流大"):
# asked across the parts, answered by setting their figures side by side; alone, a part would ask
# who or which. (Not 哪些/哪里/哪项…, which ask for a list or a place; not a superlative.)
_ASKER = r"(?:谁家?|哪(?![些里项类种样])(?:一)?(?:个|边|方|儿|家|座|年|位)?)(?:省份|省区|省|市|地区|地方|城市|区)?的?"
_AHEAD = r"(?:得)?(?:更|较|比较)?(?P<how>[快慢高低多少大小长短])(?:一些|一点|些)?(?=[？?。]|$)"
_RANKED = re.compile(_ASKER + r"(?P<what>[^,，。;；？?最]*?)(?:跑|涨|长|增长|来|定|排)?" + _AHEAD)
# "去年去新疆旅游的人多，还是去内蒙古的多": the first alternative, its comparative at the end and no asker.
_BARE_AHEAD = re.compile(r"(?<![最不])(?:得)?(?:更|较|比较)?(?P<how>[快慢高低多少大小长短])(?:一些|一点|些)?$")
_ASKS = re.compile(r"多少|几|什么|谁|哪|how|what|which|who", re.I)


def _figure_of_one(text: str) -> str:
    """A part that asks which of the compared is ahead asks its own figure instead: the part that
    already asks it ("…是多少，哪个更低？") drops the ranking; otherwise the ranking becomes the
    figure (a speed, 快/慢, is a growth unless growth is already named)."""
    m = _RANKED.search(text)
    if not m:
        stem = text.rstrip("？?。 ")
        m = None if _ASKS.search(stem) else _BARE_AHEAD.search(stem)
        if not m:
            return text
        return _asking_figure(stem[: m.start()], m["how"], text[len(stem):])
    before, after = text[: m.start()], text[m.end():]
    if re.search(r"多少|几", before):
        before = before.rstrip(",，、;； ")
        return before + (after.lstrip("？?") if before.endswith(("？", "?")) else after)
    return _asking_figure(before + m["what"], m["how"], after)


def _asking_figure(asked: str, how: str, after: str) -> str:
    # "内蒙古与新疆的粮食产量相比，谁更多": the comparing word goes with the ranking.
    asked = re.sub(r"(?:相比|比较|对比|比起来)$", "", asked.rstrip(",，、;； ")).rstrip(",，、;； ")
    if re.search(r"(?:增长|增加|下降|降低|减少|提高|上升|回落|上涨|下跌)$", asked):
        verb = "了多少"  # "…浓度下降得更快": how much it fell
    elif how in "快慢" and not re.search(r"增|降|涨|跌|减", asked):
        verb = "增长了多少"
    else:
        verb = "是多少"
    return asked + verb + after


def _one_part(text: str) -> str:
    """A part of a compared question without the words that asked for each or for the ranking."""
    for i in reversed(_each_adverbs(text)):
        text = text[:i] + text[i + 1:]
    return _figure_of_one(_RESPECTIVELY.sub("", text))


@dataclass(frozen=True)
class QuestionScope:
    named: tuple[Place, ...] = ()  # the places the question names
    allowed: frozenset[str] | None = None  # the documents the question may be answered from (None: all)
    anchor_year: int | None = None  # what 今年 means for this question
    # The words naming those places, when the documents allowed are exactly the reports about
    # them: the words have done their work in choosing the documents, and as search terms they
    # would only favour the chunks that repeat a place's name (titles, datelines, prefaces).
    framing: tuple[str, ...] = ()

    @property
    def out_of_scope(self) -> bool:
        """The question names places and the index has nothing for any of them."""
        return bool(self.named) and self.allowed is not None and not self.allowed


def _docs_for(place: Place, docs: list[DocumentInfo]) -> set[str]:
    g = gazetteer()
    scoped = [(d, g.get(d.scope.place_code)) for d in docs if d.scope.place_code]
    inside = {d.doc_id for d, p in scoped if p is not None and g.contains(place, p)}
    if inside:
        return inside
    # No document about the place itself: its province's or city's, not the country's.
    return {d.doc_id for d, p in scoped if p is not None and p.level != "country" and g.contains(p, place)}


def docs_for_place(name: str, docs: list[DocumentInfo]) -> set[str]:
    """The documents a place filter allows: by adcode, official or short name."""
    g = gazetteer()
    place = g.get(name) or g.resolve(name)
    return _docs_for(place, docs) if place is not None else set()


def named_places(text: str, docs: list[DocumentInfo]) -> list[tuple[int, str, Place]]:
    """(offset, words, place) for the places a question names, resolved; the short names of
    county-level places count when the index covers that place (海淀), else only their full
    names do (朝阳区), because many are everyday words (和平, 长安)."""
    g = gazetteer()
    covered = {d.scope.place_code for d in docs if d.scope.place_code}
    out = []
    for offset, words, cands in g.find(text, short_districts=lambda p: p.code in covered, abbreviations=True):
        if len(cands) > 1:
            # 朝阳区 is in Beijing and in Changchun: the one the index covers, or one whose ancestor
            # the question names; else the first.
            mine = [p for p in cands if p.code in covered] or [
                p for p in cands if any(a.short in text for a in g.lineage(p)[1:] if a.level != "country")
            ]
            cands = mine or cands
        out.append((offset, words, cands[0]))
    return out


def resolve(text: str, docs: list[DocumentInfo]) -> QuestionScope:
    g = gazetteer()
    found = named_places(text, docs)
    named = tuple(dict.fromkeys(p for _, _, p in found))
    # "北京朝阳区": the question is about the district; the city only says where it is.
    named = tuple(p for p in named if not any(q.code != p.code and g.contains(p, q) for q in named))
    unscoped = {d.doc_id for d in docs if not d.scope.place_code}
    allowed: frozenset[str] | None = None
    framing: tuple[str, ...] = ()
    if named:
        reports = {p: _docs_for(p, docs) for _, _, p in found}  # every place written, 北京 of 北京海淀区 too
        ids: set[str] = set().union(*(reports[p] for p in named))
        # A question naming a covered place and an uncovered one ("海淀区引进的上海企业") is about the covered one.
        allowed = frozenset(ids | unscoped)
        if ids and not unscoped:  # a document of no known place may need the name to be found
            # Only the names of places whose reports were chosen: "海淀区引进的上海企业" still searches for 上海.
            framing = tuple(dict.fromkeys(w for _, w, p in found if reports[p]))
    in_scope = [d for d in docs if allowed is None or d.doc_id in allowed]
    return QuestionScope(named, allowed, _anchor_year(in_scope), framing)


def _anchor_year(docs: list[DocumentInfo]) -> int | None:
    years = []
    for d in docs:
        m = re.match(r"(?:19|20)\d{2}", d.date or "")
        if m:
            years.append(int(m.group()))
        elif d.scope.planned:
            years.append(d.scope.planned[0])
    return max(years) if years else None


def with_explicit_years(text: str, anchor: int | None) -> str:
    """今年/去年/明年 written as years (relative to ``anchor``, else to today)."""
    base = anchor or date.today().year
    return _RELATIVE_RE.sub(lambda m: f"{base + _RELATIVE[m.group()]}年", text)


def split_compared(text: str, docs: list[DocumentInfo], asks_figure: bool = False) -> list[tuple[str, str]]:
    """A question that asks the same thing of several places ("安徽和河南2025年GDP分别增长了多少？")
    or years ("2023年和2024年…分别…") as one question per place or year, each labelled as the
    question wrote it: [("安徽", "安徽2025年…"), ...]. Anything else comes back as [("", text)].
    ``asks_figure`` (the caller's reading of the question: a 多少 question) splits, without a word
    saying "each", a question about places that have reports of their own."""
    each = _asks_each(text)
    places = named_places(text, docs)
    if each or (asks_figure and not _TOGETHER.search(text) and _reported_apart([p for _, _, p in places], docs)):
        # An abbreviation (皖) is asked about by the place's name (安徽) in its own part: alone, 皖 is a character.
        asked = [(o, w, p.short if len(w) == 1 else w) for o, w, p in places]
        by_place = _split(text, asked)
        if len(by_place) == 1 and each:
            by_place = _alternatives(text, asked)
        if len(by_place) > 1:
            return by_place
    if not each:
        return [("", text)]
    # A year with the part of it meant ("2019年底和2021年"): the part stays with its year.
    # (English writes a year bare: "in 2023 and 2024 respectively".)
    year = r"(?<!\d)(?:19|20)\d{2}(?!\d)" if is_latin_question(text) else r"(?<!\d)(?:19|20)\d{2}年(?:底|末|初|上半年|下半年|全年)?"
    years = [(m.start(), m.group(), m.group()) for m in re.finditer(year, text)]
    return _split(text, years)


def _split(text: str, found: list[tuple[int, str, str]]) -> list[tuple[str, str]]:
    """One question per item of the longest run of ``found`` (offset, words, words to ask by)
    joined by 和/、/与…"""
    if len(found) < 2:
        return [("", text)]
    runs: list[list[tuple[int, str, str]]] = [[found[0]]]
    for item in found[1:]:
        prev = runs[-1][-1]
        between = text[prev[0] + len(prev[1]) : item[0]]
        # Abbreviations are written together ("黔滇", "川渝"; not 北京海淀, one place); the words
        # before a place may be said again before the next ("去内蒙古和去新疆"), and the words
        # after it after the next ("天津人和重庆人", "西安的机场和重庆的机场").
        joined = re.search(_JOINER, between)
        said = between[: joined.start()] if joined else ""
        again = between[joined.end():] if joined else between
        after_again = not said or (len(said) <= 4 and text[item[0] + len(item[1]):].startswith(said))
        before_again = not again or (len(again) <= 3 and text[: prev[0]].endswith(again))
        together = not between and len(prev[1]) == len(item[1]) == 1
        if together or (joined and after_again and before_again):
            runs[-1].append(item)
        else:
            runs.append([item])
    run = max(runs, key=len)
    if len(run) < 2:
        return [("", text)]
    start, end = run[0][0], run[-1][0] + len(run[-1][1])
    # "两地"/"两省"/"这两个东北省份" only say how many are asked about: left out of each part.
    tail = re.sub(r"^(?:(?:相比|比较|对比|比)(?:起来|一下)?(?:[,，\s]+|$)|[两二三四五六七八九几各]+(?:省|市|地|区|年|个省份|个地区)|等地"
                  r"|(?:这|这些)?[两二三四五六七八九几]+(?:个|座)?(?:东北|西北|西南|东南|华北|华东|华南|华中|中部|西部|东部|沿海|边疆|内陆)?"
                  r"(?:省份|省区|省|城市|地区|市|地)(?=$|[^\u4e00-\u9fff]|[的在都和与各分去今明前]))",
                  "", text[end:])
    return [(words, _one_part(text[:start] + asked + tail)) for _, words, asked in run]


def _alternatives(text: str, found: list[tuple[int, str, str]]) -> list[tuple[str, str]]:
    """"去年去新疆旅游的人多，还是去内蒙古的多？": the first alternative asked of each place."""
    cut = text.find("还是")
    if cut < 0:
        return [("", text)]
    first = [f for f in found if f[0] + len(f[1]) <= cut]
    others = [f for f in found if f[0] > cut]
    template = text[:cut].rstrip(",，、;； ")
    # Each alternative says its own comparative ("…多，还是…多"); "去A还是去B更便宜" asks otherwise.
    if len(first) != 1 or not others or not _BARE_AHEAD.search(template):
        return [("", text)]
    offset, words, _ = first[0]
    mark = text.rstrip()[-1:] if text.rstrip()[-1:] in "？?" else ""
    return [(w, _one_part(template[:offset] + asked + template[offset + len(words):] + mark))
            for _, w, asked in [first[0], *others]]


def coverage_text(docs: list[DocumentInfo], limit: int = 8) -> str:
    """What the index covers, for a refusal: "北京市海淀区（5 份）、安徽省（1 份）等 27 个地区"."""
    counts: dict[str, int] = {}
    for d in docs:
        if d.scope.place:
            counts[d.scope.place] = counts.get(d.scope.place, 0) + 1
    if not counts:
        return ""
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    shown = "、".join(f"{name}（{n} 份）" for name, n in items[:limit])
    return shown + (f"等 {len(items)} 个地区" if len(items) > limit else "")
