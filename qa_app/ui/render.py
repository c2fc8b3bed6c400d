"""What the chat page shows for an answer, as strings: the chat bubble's Markdown (clickable
[n] markers, badges, the sources), the plain text its copy button gives, and the whole document
with the quoted passage marked. Pure functions: no Gradio here."""
from __future__ import annotations

import html
import re
from typing import Iterable
from urllib.parse import urlencode

from qa_app.highlight import highlight, highlight_html
from qa_app.models import Answer, Chunk, Citation

NOT_FOUND = "报告中未找到"
CONTEXT_CHARS = 80  # characters of the passage shown on each side of the quoted words
DOCUMENT_PATH = "document"  # the whole-document view, relative to the page
_ESCAPED_MARKER = re.compile(r"\\\[(\d+)\\\]")
_MARKER = re.compile(r"\[(\d+)\]")


def e(text: str) -> str:
    return html.escape(text, quote=False)


def attr(text: str) -> str:
    # Line breaks as references: a raw one inside an attribute ends the Markdown paragraph around it.
    return html.escape(text, quote=True).replace("\r", "").replace("\n", "&#10;")


def md(text: str) -> str:
    """Text for a Markdown chat bubble: no HTML, and "[1](二)…" must not become a link."""
    return re.sub(r"([\[\]*_`])", r"\\\1", e(text))


def document_link(c: Citation) -> str:
    """Where "在原文中查看" leads: the whole document, scrolled to the cited passage."""
    return f"{DOCUMENT_PATH}?{urlencode({'doc': c.doc_id, 'chunk': c.chunk_id, 'quote': c.quote})}#qa-hit"


def _cited(answer: Answer) -> dict[int, Citation]:
    seen: dict[int, Citation] = {}
    for c in answer.citations:
        seen.setdefault(c.n, c)
    return dict(sorted(seen.items()))


def sources_html(answer: Answer, uid: str) -> str:
    """One collapsible block per citation: [n] title · date · section, the quote in view, then the
    passage around it and a link to the whole document. ``uid`` makes the ids unique on the page
    (every answer has its own [1])."""
    passages = {p.chunk.chunk_id: p.chunk.text for p in answer.passages}
    items = []
    for n, c in _cited(answer).items():
        meta = " · ".join(e(x) for x in (c.date, c.section) if x)
        body = highlight_html(passages.get(c.chunk_id, c.quote), c.quote, CONTEXT_CHARS)
        # Collapsed, with the quoted words in view: a long answer stays short, and the passage
        # around the quote is one click away.
        items.append(
            f'<details class="qa-src qa-src-{n}" id="qa-src-{uid}-{n}"><summary><b>[{n}]</b> {e(c.title)} '
            f'<span class="qa-meta">{meta}</span>'
            f'<span class="qa-quote"><mark>{e(c.quote)}</mark></span></summary>'
            f'<div class="qa-passage">{body}'
            f'<a class="qa-open" href="{attr(document_link(c))}" target="_blank" rel="noopener">在原文中查看 ↗</a>'
            f'</div></details>'
        )
    if not items:
        return ""
    return f'<div class="qa-sources"><div class="qa-src-head">来源</div>{"".join(items)}</div>'


def linked_markers(text_md: str, uid: str, cited: Iterable[int]) -> str:
    """The escaped ``\\[n\\]`` markers of a rendered answer as links to their sources."""
    known = set(cited)
    return _ESCAPED_MARKER.sub(
        lambda m: (f'<a class="qa-cite" href="#qa-src-{uid}-{m.group(1)}">[{m.group(1)}]</a>'
                   if int(m.group(1)) in known else m.group(0)),
        text_md,
    )


def badges(answer: Answer) -> str:
    out = ""
    if answer.refused:
        out += f'<span class="qa-badge qa-refused">{NOT_FOUND}</span> '
    if not answer.grounded:
        out += '<span class="qa-badge qa-ungrounded">未通过核验：数字或引用与来源不符</span>'
    return f"{out}\n\n" if out else ""


def filter_note(filtered: bool, refused: bool) -> str:
    """Under a document or year filter a refusal may be the filter's doing: say so, and how to widen it."""
    if not (filtered and refused):
        return ""
    return ('<div class="qa-filter-note">只在所选的文档/年份中检索：筛选范围内没有找到。'
            '清除左侧的筛选后可检索全部文档。</div>\n\n')


def plain_text(answer: Answer) -> str:
    """What the copy button gives: the answer as plain text, then its sources, one per line."""
    text = answer.text.strip()
    if answer.refused and not text.startswith(NOT_FOUND):
        text = f"【{NOT_FOUND}】{text}"
    sources = answer.sources_text()
    return f"{text}\n\n来源：\n{sources}" if sources else text


def answer_markdown(answer: Answer, uid: str, filtered: bool = False) -> str:
    """The final chat bubble: badges, the filter's note, the answer with clickable [n], the sources,
    and (hidden) the plain text the copy button takes instead of this markup."""
    body = linked_markers(md(answer.text), uid, _cited(answer))
    copy = f'<span class="qa-plain" hidden title="{attr(plain_text(answer))}"></span>'
    return (badges(answer) + filter_note(filtered, answer.refused) + body + copy + "\n\n"
            + sources_html(answer, uid))


def document_text(chunks: list[Chunk]) -> tuple[str, dict[str, tuple[int, int]]]:
    """A document's text (its original script, as loaded and cleaned) put back together from its
    chunks, and where each chunk stands in it. Text chunks are slices of the cleaned text at their
    offsets; a table chunk holds its rows re-rendered, and takes the place of the rows."""
    out: list[str] = []
    where: dict[str, tuple[int, int]] = {}
    pos = 0  # offset in the original cleaned text reached so far
    length = 0  # characters put out so far
    for chunk in sorted(chunks, key=lambda c: (c.start, c.ordinal)):
        overlap = max(0, min(pos, chunk.end) - chunk.start) if chunk.kind == "text" else 0
        if out and chunk.start > pos:
            out.append("\n")
            length += 1
        piece = chunk.text[overlap:]
        where[chunk.chunk_id] = (length - overlap, length + len(piece))
        out.append(piece)
        length += len(piece)
        pos = max(pos, chunk.end)
    return "".join(out), where


def document_html(title: str, meta: str, text: str, span: tuple[int, int] | None, quote: str) -> str:
    """The whole document as a page: the cited passage shaded, its quoted words marked, the view
    opened at them (``#qa-hit``)."""
    if span is None:
        body = e(text)
    else:
        start, end = max(0, span[0]), span[1]
        passage = text[start:end]
        segments = highlight(passage, [quote]) if quote else [(passage, False)]
        marked = "".join(f'<mark id="qa-hit">{e(s)}</mark>' if hit else e(s) for s, hit in segments)
        if "qa-hit" not in marked:
            marked = f'<span id="qa-hit"></span>{marked}'
        body = f'{e(text[:start])}<span class="qa-passage">{marked}</span>{e(text[end:])}'
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{e(title)}</title>
<style>
body{{font-family:"Noto Sans CJK SC","PingFang SC","Microsoft YaHei",system-ui,sans-serif;margin:0 auto;max-width:860px;
padding:16px 20px 40vh;line-height:1.8;color:#1f2937;background:#fff}}
h1{{font-size:1.25em;margin:8px 0 2px}} .meta{{color:#6b7280;margin-bottom:16px}}
.text{{white-space:pre-wrap;word-break:break-word}}
.qa-passage{{background:#e8f0fe;border-radius:3px}} mark{{background:#ffe58a;color:#1f2937;padding:0 1px}}
#qa-hit{{scroll-margin-top:35vh}}
@media (prefers-color-scheme: dark){{body{{background:#111827;color:#e5e7eb}}.meta{{color:#9ca3af}}
.qa-passage{{background:#1e3a8a}}}}
</style></head><body>
<h1>{e(title)}</h1><div class="meta">{e(meta)}</div>
<div class="text">{body}</div>
</body></html>"""


UPLOAD_HTML = (
    '<label class="qa-upload">上传文件（.txt .md .html .pdf .docx，可多选）'
    '<input type="file" id="qa-upload-input" multiple accept=".txt,.md,.markdown,.html,.htm,.pdf,.docx"></label>'
    '<ul id="qa-upload-results" class="qa-results"></ul>'
)


def document_list_html(docs: list, counts: dict[str, int]) -> str:
    """The indexed documents, each with its delete button (the page's script sends the DELETE)."""
    if not docs:
        return '<div class="qa-doc-list qa-empty">还没有文档。</div>'
    rows = []
    for d in sorted(docs, key=lambda d: (d.title, d.doc_id)):
        meta = " · ".join(x for x in (d.date, f"{counts.get(d.doc_id, 0)} 段") if x)
        rows.append(
            f'<li><span class="qa-doc-title">{e(d.title)}</span> <span class="qa-meta">{e(meta)}</span>'
            f'<button class="qa-doc-del" type="button" data-doc="{attr(d.doc_id)}" data-title="{attr(d.title)}">删除</button></li>'
        )
    return f'<ul class="qa-doc-list">{"".join(rows)}</ul>'
