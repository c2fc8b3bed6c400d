"""The page's pure rendering: copy text, clickable markers, the whole-document view."""
from __future__ import annotations

from qa_app.models import Answer, Chunk, Citation
from qa_app.ui import render

CITE = Citation(n=1, chunk_id="c1", doc_id="d.txt", title="海淀区报告", date="2024-01-16", section="一、概况",
                quote="全区地区生产总值预计增长6%")


def answer(text: str = "全区地区生产总值预计增长6%[1]。", refused: bool = False) -> Answer:
    return Answer(question="q", text=text, citations=[CITE], refused=refused)


def test_copy_text_is_plain_with_the_sources():
    text = render.plain_text(answer("增长6%[1]，见《报告》<b>。"))
    assert text.startswith("增长6%[1]，见《报告》<b>。")  # the words as they are: no \[ escapes, no entities
    assert "来源：\n[1] 海淀区报告 · 2024-01-16 · 一、概况\n    “全区地区生产总值预计增长6%”" in text
    assert render.plain_text(answer("没有找到。", refused=True)).startswith("【报告中未找到】")


def test_markers_link_to_their_sources_and_the_copy_text_survives_markdown():
    html = render.answer_markdown(answer(), "u1")
    assert '<a class="qa-cite" href="#qa-src-u1-1">[1]</a>' in html
    assert 'id="qa-src-u1-1"' in html and "document?doc=d.txt&amp;chunk=c1" in html
    hidden = html[html.index('class="qa-plain"'):]
    assert "\n" not in hidden[: hidden.index("></span>")]  # one line: a break would end the Markdown paragraph
    assert render.linked_markers(r"见\[2\]", "u", [1]) == r"见\[2\]"  # an uncited number stays text


def test_filter_note_only_for_a_refusal_under_a_filter():
    assert "筛选" in render.answer_markdown(answer(refused=True), "u", filtered=True)
    assert "qa-filter-note" not in render.answer_markdown(answer(refused=True), "u", filtered=False)
    assert "qa-filter-note" not in render.answer_markdown(answer(), "u", filtered=True)


def test_document_text_is_put_back_from_its_chunks_and_marks_the_passage():
    cleaned = "第一章 总则\n海淀区经济增长6%。\n第二章 民生\n新建养老驿站12家。"
    second = cleaned.index("第二章")
    cuts = [(0, second - 1), (second, len(cleaned))]  # the line break between them is in no chunk
    chunks = [Chunk(f"c{i}", "d", i, cleaned[s:e], cleaned[s:e], "", s, e) for i, (s, e) in enumerate(cuts)]
    text, where = render.document_text(list(reversed(chunks)))
    assert text == cleaned
    s, e = where["c1"]
    assert text[s:e] == cleaned[second:]
    page = render.document_html("标题", "2024", text, where["c1"], "养老驿站12家")
    assert '<mark id="qa-hit">养老驿站12家</mark>' in page and "第一章 总则" in page
    assert "<script" not in render.document_html("<script>", "", "<script>x</script>", None, "")
