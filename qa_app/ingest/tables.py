"""The table format (``CELL_END``, ``ROW_SEP``), and flattened tables (one cell per line) regrouped into rows.

Scraped tables arrive as a run of cell lines. When the run starts with a header
(short label cells such as 所属街道 / 点位名称 / 详细地址) the cells are grouped into rows
of that width and each row is written "header: value | header: value", so a row reads
on its own wherever a chunk boundary falls.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_HEADER_WORDS = re.compile(
    r"^(?:序号|编号|时间|日期|年份|名称|类别|类型|内容|地址|地点|备注|说明|单位|数量|金额|"
    r"指标|目标|任务|措施|举措|进展|安排|成果|领域|成员校|成员|责任单位|完成时限|"
    r".{0,4}(?:名称|类别|内容|地址|举措|进展|安排|时间|单位|指标|任务|措施|序号)|所属.{1,4})$"
)


# The table format every step shares: a scraped table arrives one cell per line, each line ending
# in CELL_END; a regrouped row joins its cells with ROW_SEP. Cleaning keeps such lines, chunking
# regroups them, the answerer reads a row as a list.
CELL_END = "|"
ROW_SEP = " | "


def is_cell_line(line: str) -> bool:
    return line.endswith(CELL_END)


def cell_text(line: str) -> str:
    return line[: -len(CELL_END)].strip()


def holds_table(text: str) -> bool:
    """Does the text hold a table row or cell (so its items are separated as a list's are)?"""
    return CELL_END in text


@dataclass(frozen=True)
class TableRow:
    cells: tuple[str, ...]
    header: tuple[str, ...]
    start: int  # offset of the row's first cell line in the cleaned text
    end: int

    def render(self) -> str:
        if self.header and len(self.header) == len(self.cells):
            return ROW_SEP.join(f"{h}: {c}" if c else f"{h}: —" for h, c in zip(self.header, self.cells))
        return ROW_SEP.join(c for c in self.cells if c)


def is_header_cell(cell: str) -> bool:
    return 0 < len(cell) <= 6 and not any(ch.isdigit() for ch in cell) and bool(_HEADER_WORDS.match(cell))


def _header_run(cells: list[str], i: int) -> int:
    n = 0
    while i + n < len(cells) and is_header_cell(cells[i + n]):
        n += 1
    return n if n >= 2 else 0


def group_rows(cells: list[tuple[str, int, int]]) -> list[list[TableRow]]:
    """Group (cell text, start, end) triples of one run of cell lines into tables of rows.

    A header row met at a row boundary starts a new table.
    """
    texts = [c[0] for c in cells]
    tables: list[list[TableRow]] = []
    rows: list[TableRow] = []
    header_cells: list[tuple[str, int, int]] = []
    header: tuple[str, ...] = ()
    i = 0

    def close() -> None:
        nonlocal rows
        if header_cells and not rows:
            # A header with no row under it (the rows were lost in scraping, or another header
            # follows at once) is still text: keep it as a row of its own.
            rows.append(TableRow(header, (), header_cells[0][1], header_cells[-1][2]))
        if rows:
            tables.append(rows)
        rows = []

    while i < len(cells):
        width = _header_run(texts, i)
        if width:
            close()
            header_cells = cells[i : i + width]
            header = tuple(texts[i : i + width])
            i += width
            continue
        if header:
            span = cells[i : i + len(header)]
            padded = [c[0] for c in span] + [""] * (len(header) - len(span))
            # The first row's span takes in the header cells, so every cell lies in some chunk.
            start = header_cells[0][1] if not rows else span[0][1]
            rows.append(TableRow(tuple(padded), header, start, span[-1][2]))
            i += len(header)
        else:
            # No header: a label cell followed by its content cells until the next short label.
            j = i + 1
            while j < len(cells) and not (len(texts[j]) <= 12 and len(texts[j - 1]) > 12):
                j += 1
            span = cells[i:j]
            rows.append(TableRow(tuple(c[0] for c in span), (), span[0][1], span[-1][2]))
            i = j
    close()
    return tables
