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
