"""Word lists: the engine's general ones, and a corpus pack's on top.

The engine's resources (``qa_app/resources/``) hold vocabulary that is right for any Chinese
government report: everyday words for the reports' terms (经济总量 → 地区生产总值), English
phrases for English questions, a user dictionary of general terms. A corpus pack (a folder
beside its corpus, such as ``seeds/lexicon/``, chosen by the setting ``QA_LEXICON``) adds
what only holds for that corpus: its places, bodies, people and programmes, and the words that
frame questions about it (海淀, 全区). Each pack file has the format of its engine file;
``framing.txt`` lists one word a line. A missing file is simply absent.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

RESOURCES = Path(__file__).resolve().parent / "resources"
PACK_FILES = ("synonyms.txt", "glossary_en_zh.tsv", "userdict.txt", "framing.txt")


def is_pack(folder: Path) -> bool:
    """Is ``folder`` a corpus pack (a ``lexicon`` folder holding word lists), whichever pack is active?"""
    return folder.name == "lexicon" and any((folder / name).is_file() for name in PACK_FILES)


@dataclass(frozen=True)
class Lexicon:
    synonyms: dict[str, tuple[str, ...]]  # every term → its group (the first member is the reports' term)
    glossary: dict[str, list[str]]  # English phrase → Chinese terms
    userdicts: tuple[Path, ...]  # jieba user dictionaries
    framing: frozenset[str]  # words that frame a question without being its subject


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        return []
    return [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip() and not ln.startswith("#")]


def _read(folders: list[Path]) -> Lexicon:
    synonyms: dict[str, tuple[str, ...]] = {}
    glossary: dict[str, list[str]] = {}
    userdicts: list[Path] = []
    framing: set[str] = set()
    for folder in folders:
        for line in _lines(folder / "synonyms.txt"):
            terms = tuple(t.lower() for t in line.split())
            if len(terms) >= 2:
                for t in terms:
                    synonyms.setdefault(t, terms)
        for line in _lines(folder / "glossary_en_zh.tsv"):
            if "\t" in line:
                en, zh = line.split("\t", 1)
                glossary[en.strip().lower()] = zh.split()
        if (folder / "userdict.txt").is_file():
            userdicts.append(folder / "userdict.txt")
        framing.update(w.strip() for w in _lines(folder / "framing.txt"))
    return Lexicon(synonyms, glossary, tuple(userdicts), frozenset(framing))


@lru_cache(maxsize=8)
def load(pack: str = "") -> Lexicon:
    """The engine's lists, plus the pack in folder ``pack`` ("" for none)."""
    folders = [RESOURCES]
    if pack:
        folder = Path(pack).expanduser()
        if not folder.is_dir():
            raise FileNotFoundError(
                f"corpus pack {folder} not found (QA_LEXICON); set QA_LEXICON= (empty) to use the engine's lists alone"
            )
        folders.append(folder)
    return _read(folders)


def active() -> Lexicon:
    """The lexicon the settings choose (``QA_LEXICON``)."""
    from qa_app.config import get_settings

    pack = get_settings().lexicon
    return load(str(pack) if pack else "")
