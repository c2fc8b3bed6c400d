"""Strip web-page chrome from scraped reports without touching report text.

Works line by line. A line goes only when it is clearly chrome: breadcrumbs, share and
tag widgets, image file names, phone numbers, view counters, short English menu items,
and navigation words that the breadcrumb itself names.
"""
from __future__ import annotations

import re

from qa_app.text import CJK_RE

_IMAGE_RE = re.compile(r"^\S{1,60}\.(?:jpe?g|png|gif|bmp|webp|svg)$", re.I)
_PHONE_RE = re.compile(r"^(?:电话|電話|tel|phone)?[:：]?\s*[\d\-\s()+]{7,}$", re.I)
_CHROME_RE = re.compile(
    r"^(?:当前位置|當前位置|您的位置|分享到|相关文章|相關文章|相关阅读|相關閱讀|标签|標籤|"
    r"提交需求或反馈|上一篇|下一篇|返回顶部|返回頂部|打印本页|关闭窗口|平台注册入口|"
    r"扫一扫|掃一掃|责任编辑|責任編輯)(?:[:：>\s].*)?$"
)
_META_RE = re.compile(
    r"(?:发布时间|發布時間|点击量|點擊量|浏览次数|來源|来源)[:：]|\d{4}-\d{2}-\d{2}\s+\d{1,2}:\d{2}"
)
_SENTENCE_END = "。！？；!?;"


def _is_table_cell(line: str) -> bool:
    return line.endswith("|")


def _is_chrome(line: str, breadcrumb_words: set[str]) -> bool:
    if _is_table_cell(line):
        return False
    if _IMAGE_RE.match(line) or _PHONE_RE.match(line) or _CHROME_RE.match(line):
        return True
    if len(line) <= 60 and _META_RE.search(line) and not line.endswith(tuple(_SENTENCE_END)):
        return True
    if not CJK_RE.search(line) and not any(ch.isdigit() for ch in line) and len(line) <= 40:
        return True  # English menu items on a Chinese page: "Products", "SERVICE PHONE"
    if line.startswith(("•", "·")) and line.endswith(("...", "…")):
        return True  # truncated slogans in the site header
    return line in breadcrumb_words


def _breadcrumb_words(lines: list[str]) -> set[str]:
    words: set[str] = set()
    for line in lines:
        if _CHROME_RE.match(line) and ">" in line:
            for part in re.split(r"[>:：]", line):
                part = part.strip()
                if part and len(part) <= 12:
                    words.add(part)
    return words


def clean_text(text: str) -> str:
    """Return the report text with page chrome removed and blank runs collapsed."""
    raw = [ln.strip() for ln in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    crumbs = _breadcrumb_words(raw)
    kept: list[str] = []
    seen_short: set[str] = set()
    for line in raw:
        if not line:
            if kept and kept[-1] != "":
                kept.append("")
            continue
        if _is_chrome(line, crumbs):
            continue
        if not _is_table_cell(line) and len(line) <= 80 and not line.endswith(tuple(_SENTENCE_END)):
            # A repeated title or site name; report sentences and table cells may repeat.
            if line in seen_short:
                continue
            seen_short.add(line)
        kept.append(line)
    while kept and kept[-1] == "":
        kept.pop()
    return "\n".join(kept)
