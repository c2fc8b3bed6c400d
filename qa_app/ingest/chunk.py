"""Structure-aware chunking of cleaned report text.

Headings (第一章 / 第一节 / 一、/ （一）/ 1. / （1）/ 专栏N and short title lines) open
sections; a short unnumbered line is a title only when it looks like one: not page chrome, not a
fragment that stops on a conjunction ("…国民经济和"), not a date, by-line or speaker's line. A chunk
never crosses a heading. Inside a section, sentences (ending in 。！？；) are packed up to
``target`` characters; an over-long sentence is cut at commas.
Flattened tables become row-wise table chunks. Every chunk knows its section path and
its character span in the cleaned text, and a text chunk's text is exactly that span.
"""
from __future__ import annotations

import bisect
import hashlib
import re
from dataclasses import dataclass

from qa_app.ingest.clean import ends_dangling, is_caption_or_byline, is_chrome_line, is_field_line
from qa_app.ingest.tables import TableRow, cell_text, group_rows, is_cell_line
from qa_app.models import Chunk
from qa_app.text import CJK_RE, normalize, tidy

_NUM = "一二三四五六七八九十百零〇两"
_HEADINGS: list[tuple[int, re.Pattern[str]]] = [
    (0, re.compile(rf"^第[{_NUM}\d]+[编篇部](?:分)?(?:\s|$|[^，,。])")),
    (1, re.compile(rf"^第[{_NUM}\d]+章")),
    (2, re.compile(rf"^第[{_NUM}\d]+节")),
    (3, re.compile(rf"^[{_NUM}]+\s*[、．.]")),
    (4, re.compile(rf"^[（(][{_NUM}]+[)）]")),
    (5, re.compile(r"^\d{1,2}\s*[、．.](?!\d)")),
    (6, re.compile(r"^[（(]\d{1,2}[)）]")),
    (7, re.compile(r"^(?:专栏|專欄)\s*\d*")),
]
_CAPTION_RANK = 7
_GENERIC_RANK = 8
_SENT_END = re.compile(r"(?<=[。！？；!?;])[”’」』\"]?")
_SOFT_BREAK = re.compile(r"(?<=[，,、：:])")
_TERMINAL = tuple("。！？；!?;，,：:")
_CN_DIGIT = "〇零一二三四五六七八九十"
# Lines that are short and unpunctuated like a title, yet are not one: a date, a speaker's line
# ("海淀区人民政府区长 王合生", "自治区主席 艾尔肯·吐尼亚孜"), a dash lead-in ("——2026年…会议上").
_DATE_LINE = re.compile(
    rf"^(?:\d{{2,4}}\s*[年./\-]\s*\d{{1,2}}(?:\s*[月./\-]\s*\d{{1,2}}\s*日?)?|"
    rf"[{_CN_DIGIT}]{{2,4}}年[{_CN_DIGIT}]{{1,3}}月(?:[{_CN_DIGIT}]{{1,3}}日)?)$"
)
# A title led by its year ("2026年重点工作", "2026年自治区民生实事"); other lines led by a digit are
# figures ("1.5亿元用于…") or dates.
_YEAR_TITLE = re.compile(r"^(?:19|20)\d{2}年(?![\d〇零一二三四五六七八九十]{1,2}月)(?=[\u4e00-\u9fff“《])")
_SPEAKER_LINE = re.compile(
    r"^[\u4e00-\u9fff]{0,20}(?:省长|市长|区长|县长|州长|旗长|主席|书记|主任|部长|厅长|局长|代表|委员|"
    r"省長|市長|區長|縣長|書記|部長|廳長|局長|委員)[\s\u3000]+[\u4e00-\u9fff·]{1,10}(?:[\s\u3000][\u4e00-\u9fff·]{1,4})?$"
)


def heading_rank(line: str) -> int | None:
    """The nesting rank of a heading line, or None for body text."""
    if is_cell_line(line) or len(line) > 60:
        return None
    for rank, pattern in _HEADINGS:
        if pattern.match(line):
            # "1.5亿元……。" is a sentence, not a heading: headings don't end like sentences.
            if line.endswith(_TERMINAL) and rank != 7:
                return None
            return rank
    if (
        len(line) <= 30
        and CJK_RE.search(line)
        and (not line[0].isdigit() or _YEAR_TITLE.match(line))
        and not line.endswith(_TERMINAL)
        and not re.search(r"[，,。；;]", line)
        and _looks_like_title(line)
    ):
        return _GENERIC_RANK
    return None


def _looks_like_title(line: str) -> bool:
    """An unnumbered short line is a title unless it is chrome, a fragment or a by-line."""
    if ends_dangling(line) or line.startswith(("——", "--", "－－", "―")):
        return False  # "…国民经济和" waits for its rest; "——…会议上" is a subtitle
    if _DATE_LINE.match(line) or _SPEAKER_LINE.match(line):
        return False
    return not (is_chrome_line(line) or is_caption_or_byline(line) or is_field_line(line))


@dataclass
class _Piece:
    text: str
    start: int
    end: int
    heading: bool = False


def split_sentences(text: str, offset: int, max_chars: int) -> list[_Piece]:
    """Sentences of one paragraph with absolute offsets; long ones cut at commas."""
    pieces: list[_Piece] = []
    pos = 0
    bounds = [m.end() for m in _SENT_END.finditer(text)] + [len(text)]
    for end in bounds:
        if end <= pos:
            continue
        pieces.extend(_cut_long(text, pos, end, offset, max_chars))
        pos = end
    return pieces


def _cut_long(text: str, start: int, end: int, offset: int, max_chars: int) -> list[_Piece]:
    """Cut text[start:end] into pieces of at most max_chars, each at the last comma that
    keeps it within the limit, or hard at the limit where a stretch has no comma."""
    out: list[_Piece] = []
    cuts = [start + m.end() for m in _SOFT_BREAK.finditer(text[start:end])]
    s = start
    while end - s > max_chars:
        fits = bisect.bisect_right(cuts, s + max_chars)
        cut = cuts[fits - 1] if fits and cuts[fits - 1] > s else s + max_chars
        out.append(_Piece(text[s:cut], offset + s, offset + cut))
        s = cut
    if end > s:
        out.append(_Piece(text[s:end], offset + s, offset + end))
    return out


def _chunk_id(doc_id: str, ordinal: int, text: str) -> str:
    digest = hashlib.sha1(f"{doc_id}\x00{ordinal}\x00{text}".encode()).hexdigest()
    return digest[:16]


class _Builder:
    def __init__(self, doc_id: str, cleaned: str, target: int, max_chars: int):
        self.doc_id, self.cleaned, self.target, self.max_chars = doc_id, cleaned, target, max_chars
        self.chunks: list[Chunk] = []
        self.pending: list[_Piece] = []

    def add_piece(self, piece: _Piece, section: str) -> None:
        size = self.pending[-1].end - self.pending[0].start if self.pending else 0
        if self.pending and size + len(piece.text) > self.target:
            self.flush(section)
        self.pending.append(piece)

    def flush(self, section: str, force: bool = False) -> None:
        if not self.pending:
            return
        if not force and all(p.heading for p in self.pending):
            return  # a heading right above another heading joins the chunk of what follows
        start, end = self.pending[0].start, self.pending[-1].end
        self._emit(self.cleaned[start:end], section, start, end, "text")
        self.pending = []

    def add_table(self, rows: list[TableRow], section: str) -> None:
        batch: list[TableRow] = []
        for row in rows:
            size = sum(len(r.render()) + 1 for r in batch)
            if batch and size + len(row.render()) > self.max_chars:
                self._emit_rows(batch, section)
                batch = []
            batch.append(row)
        if batch:
            self._emit_rows(batch, section)

    def _emit_rows(self, rows: list[TableRow], section: str) -> None:
        self._emit("\n".join(r.render() for r in rows), section, rows[0].start, rows[-1].end, "table")

    def _emit(self, text: str, section: str, start: int, end: int, kind: str) -> None:
        text = text.strip()
        if not text:
            return
        ordinal = len(self.chunks)
        self.chunks.append(
            Chunk(
                chunk_id=_chunk_id(self.doc_id, ordinal, text),
                doc_id=self.doc_id,
                ordinal=ordinal,
                text=text,
                norm=normalize(text),
                section=section,
                start=start,
                end=end,
                kind=kind,
            )
        )


def _table_follows(lines: list[str], i: int) -> bool:
    nxt = next((ln for ln in lines[i + 1 :] if ln.strip()), "")
    return is_cell_line(nxt)


def chunk_text(doc_id: str, cleaned: str, *, target: int = 300, max_chars: int = 520) -> list[Chunk]:
    """Split a document's cleaned text into chunks (see module docstring)."""
    builder = _Builder(doc_id, cleaned, target, max_chars)
    stack: list[tuple[int, str]] = []
    section = ""
    table: list[tuple[str, int, int]] = []

    def close_table() -> None:
        nonlocal table, stack, section
        if not table:
            return
        builder.flush(section, force=True)
        for i, rows in enumerate(group_rows(table)):
            builder.add_table(rows, section)
            if i == 0:
                # A 专栏 caption names the first table after it, not the ones that follow.
                stack = [(r, t) for r, t in stack if r != _CAPTION_RANK]
                section = " > ".join(t for _, t in stack)
        table = []

    lines = cleaned.split("\n")
    offset = 0
    for i, line in enumerate(lines):
        start, end = offset, offset + len(line)
        offset = end + 1
        if not line.strip():
            close_table()  # tables are separated by blank lines
            continue
        if is_cell_line(line):
            table.append((cell_text(line), start, end))
            continue
        close_table()
        rank = heading_rank(line)
        if rank == _CAPTION_RANK and not _table_follows(lines, i):
            rank = None  # a 专栏 caption whose box was lost in scraping: plain text, not a section
        if rank is not None:
            builder.flush(section)
            # Shown in the document's own script (a Traditional report's 經濟篇); matched normalised.
            stack = [(r, t) for r, t in stack if r < rank] + [(rank, tidy(line))]
            section = " > ".join(t for _, t in stack)
            builder.add_piece(_Piece(line, start, end, heading=True), section)
            continue
        for piece in split_sentences(line, start, max_chars):
            builder.add_piece(piece, section)
    close_table()
    builder.flush(section, force=True)
    return builder.chunks
