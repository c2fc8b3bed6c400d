import re

from qa_app.ingest.chunk import chunk_text, heading_rank
from qa_app.ingest.clean import clean_text
from qa_app.text import CJK_RE

from .conftest import seed


def chunks_of(prefix):
    cleaned = clean_text(seed(prefix).read_text(encoding="utf-8"))
    return cleaned, chunk_text(prefix, cleaned)


def test_heading_ranks():
    assert heading_rank("第一章 在新的城市战略定位下谋划海淀新发展") == 1
    assert heading_rank("第二节 把握战略机遇期") == 2
    assert heading_rank("一、2023年国民经济和社会发展计划执行情况") == 3
    assert heading_rank("(一)坚持以发展新质生产力为引领,实现经济高质量发展") == 4
    assert heading_rank("全区地区生产总值预计增长6%,全市占比超四分之一。") is None
    assert heading_rank("1.5亿元用于支持企业发展。") is None


def test_sections_follow_the_document_structure():
    _, chunks = chunks_of("003")
    sections = {c.section for c in chunks}
    assert any(s.startswith("第一章 在新的城市战略定位下谋划海淀新发展 > 第一节") for s in sections)
    # A chunk never crosses a heading: heading lines only open a chunk (a heading directly above
    # another heading joins it), never follow body text.
    for c in chunks:
        lines = [ln for ln in c.text.splitlines() if ln.strip()]
        body_started = False
        for line in lines:
            if heading_rank(line) is None:
                body_started = True
            else:
                assert not body_started, (c.section, line)


def test_no_chunk_is_a_bare_heading():
    for prefix in ("000", "001", "003"):
        _, chunks = chunks_of(prefix)
        bare = [c.text for c in chunks if all(heading_rank(ln) is not None for ln in c.text.splitlines() if ln.strip())]
        assert len(bare) <= 1, bare


def test_text_chunks_are_exact_spans_and_cover_the_document():
    for prefix in ("000", "001", "002", "003", "004"):
        cleaned, chunks = chunks_of(prefix)
        covered = [False] * len(cleaned)
        for c in chunks:
            if c.kind == "text":
                assert cleaned[c.start : c.end].strip() == c.text
            for i in range(c.start, c.end):
                covered[i] = True
        lost = [ch for ch, ok in zip(cleaned, covered) if not ok and not ch.isspace() and ch != "|"]
        assert not lost, f"{prefix}: {''.join(lost)[:50]}"


def test_chunk_sizes_stay_near_the_target():
    for prefix in ("000", "001", "003"):
        _, chunks = chunks_of(prefix)
        assert max(len(c.text) for c in chunks if c.kind == "text") <= 520
        assert 120 <= sum(len(c.text) for c in chunks) / len(chunks) <= 400


def test_flattened_table_becomes_rows_with_headers():
    _, chunks = chunks_of("004")
    tables = "\n".join(c.text for c in chunks if c.kind == "table")
    assert "所属街道: 八里庄街道 | 点位名称: 超市发华光商厦店 | 详细地址: 华光商厦四层美食城" in tables
    assert "所属街道: 海淀街道 | 点位名称: 熊猫范(互金中心店) | 详细地址: 海淀区丹棱街1号(海淀黄庄地铁站A2西北口步行360米)" in tables
    assert "项目类别: 环境治理类(93项) | 计划安排: 区级总投资356.51亿元" in tables
    assert "序号: 43 | 时间: 2024年 | 集团名称: 北京教育科学研究院实验 学校教育集团" in tables
    # A row is never split across chunks.
    for c in chunks:
        if c.kind == "table":
            for row in c.text.splitlines():
                if row.startswith("所属街道"):
                    assert row.count("|") == 2, row


def test_traditional_text_is_kept_for_display_and_simplified_for_matching():
    _, chunks = chunks_of("002")
    c = next(c for c in chunks if "家庭醫生" in c.text)
    assert "家庭医生" in c.norm and "家庭醫生" not in c.norm
    assert re.findall(r"\d+", c.text) == re.findall(r"\d+", c.norm)


def test_chunk_ids_are_stable():
    _, a = chunks_of("001")
    _, b = chunks_of("001")
    assert [c.chunk_id for c in a] == [c.chunk_id for c in b]
    assert len({c.chunk_id for c in a}) == len(a)
    assert all(CJK_RE.search(c.text) for c in a)


# --- headings only where they look like one; the 26 provincial reports --------------------------
import pytest  # noqa: E402

from qa_app.ingest.clean import clean_report  # noqa: E402

from .test_clean import judged_chrome, needs_provinces, provincial_reports  # noqa: E402

# Ends that leave a title unfinished: a conjunction, a particle, a colon (an independent list).
_FRAGMENT_END = tuple("和与及或的是：:")


@pytest.mark.parametrize(
    "line",
    [
        "下载", "收藏", "【字号：", "分享到微信",  # widgets
        "来源：安徽日报", "编辑：何继红", "2026-01-31 07:00:44",  # fields and timestamps
        "2024年1月16日", "二〇二六年一月二十七日",  # dates
        "省人民政府省长 王清宪", "自治区主席 艾尔肯·吐尼亚孜", "省长\u3000王予波",  # speakers
        "本报记者 霍艳恩摄", "省长赵刚作政府工作报告",  # captions
        "计划执行情况与2024年国民经济和", "主要目标是：",  # fragments
        "——2026年1月28日在会议上",
    ],
)
def test_chrome_fragments_and_bylines_are_not_headings(line):
    assert heading_rank(line) is None


def test_short_titles_are_still_headings():
    for line in ("附件", "注释", "“十四五”时期工作回顾", "2026年重点工作", "政府工作报告", "第四节 广泛动员公众参与",
                 "全民参与"):
        assert heading_rank(line) is not None, line


def test_a_wrapped_line_does_not_become_a_section():
    cleaned = clean_report("一、主要目标\n今年经济社会发展的主要预期目标\n是：经济增长5%左右，城镇新增就业70万人。")
    chunks = chunk_text("doc", cleaned)
    assert [c.section for c in chunks] == ["一、主要目标"]
    assert "主要预期目标是：经济增长5%左右" in chunks[0].text


def provincial_chunks():
    for path in provincial_reports():
        cleaned = clean_report(path.read_text(encoding="utf-8"))
        yield path.name, cleaned, chunk_text(path.name, cleaned)


@needs_provinces
def test_no_provincial_chunk_or_section_is_page_chrome():
    sections = 0
    for name, _, chunks in provincial_chunks():
        for c in chunks:
            lines = [ln for ln in c.text.split("\n") if ln.strip()]
            assert not all(judged_chrome(ln) for ln in lines), (name, c.text)
            assert not any(judged_chrome(ln) for ln in lines), (name, c.text[:80])
            for part in filter(None, c.section.split(" > ")):
                sections += 1
                assert not judged_chrome(part), (name, c.section)
                assert not part.endswith(_FRAGMENT_END), (name, c.section)
                assert not re.search(r"(?:记者|通讯员).{0,12}摄$|^\d{4}-\d{2}-\d{2}", part), (name, c.section)
    assert sections > 26 * 10  # the reports do have structure: 一、/（一）… became sections


@needs_provinces
def test_provincial_reports_chunk_into_sane_pieces():
    for name, cleaned, chunks in provincial_chunks():
        text_chunks = [c for c in chunks if c.kind == "text"]
        assert 30 <= len(chunks) <= 200, (name, len(chunks))
        assert max(len(c.text) for c in text_chunks) <= 520, name
        assert 150 <= sum(len(c.text) for c in chunks) / len(chunks) <= 400, name
        # every character of the cleaned report is in some chunk
        covered = bytearray(len(cleaned))
        for c in chunks:
            covered[c.start : c.end] = b"\x01" * (c.end - c.start)
        lost = [ch for ch, ok in zip(cleaned, covered) if not ok and not ch.isspace() and ch != "|"]
        assert not lost, (name, "".join(lost)[:40])
        # the numbered parts of the report (一、… 四、) are sections
        tops = {c.section.split(" > ")[0] for c in chunks if c.section}
        numbered = sum(bool(re.match(r"^[一二三四五六]、", s)) for s in tops)
        year_led = sum(bool(re.match(r"^(?:“十[四五]五”|2026年)", s)) for s in tops)
        assert numbered >= 3 or year_led >= 3, (name, tops)


def test_a_traditional_report_keeps_its_script_in_section_names_and_matches_normalised():
    """Section names are shown as the report writes them (經濟篇, not 经济篇); what BM25 and the
    embedder see of them is normalised like the text."""
    from qa_app.text import normalize

    _, chunks = chunks_of("002")
    sections = {c.section for c in chunks}
    assert "經濟篇" in sections and "经济篇" not in sections
    c = next(c for c in chunks if c.section == "經濟篇")
    assert c.index_text().startswith("经济篇\n") and c.index_text() == f"{normalize(c.section)}\n{c.norm}"
