from qa_app.ingest.clean import clean_text

from .conftest import seed


def read(prefix):
    return seed(prefix).read_text(encoding="utf-8")


def test_strips_site_chrome_from_the_seeds():
    cleaned = {p: clean_text(read(p)) for p in ("000", "002", "003")}
    for junk in ("当前位置", "目录1.jpg", "目录4.jpg", "SERVICE PHONE", "400-123-4657", "Products", "Demand feedback",
                 "平台注册入口", "提交需求或反馈", "点击量"):
        assert all(junk not in text for text in cleaned.values()), junk
    assert "分享到" not in cleaned["002"] and "相關文章" not in cleaned["002"]
    assert "标签" not in cleaned["000"].splitlines()[-1]


def test_keeps_every_report_sentence():
    for prefix in ("000", "001", "002", "003", "004"):
        raw, cleaned = read(prefix), clean_text(read(prefix))
        for line in raw.splitlines():
            line = line.strip()
            if line.endswith("。") or line.endswith("|"):
                assert line in cleaned, f"{prefix}: lost {line[:40]}"


def test_keeps_titles_and_headings():
    cleaned = clean_text(read("003"))
    assert cleaned.startswith("北京市海淀区国民经济和社会发展第十三个五年规划纲要")
    assert "第一章 在新的城市战略定位下谋划海淀新发展" in cleaned
    assert "2024年1月16日" in clean_text(read("000"))


def test_generic_chrome_patterns():
    text = "当前位置: 首页 > 新闻\n新闻\n分享到:\n图1.png\n电话: 010-12345678\n正文第一句。\n\n\n正文第二句。\n标签: 经济\n"
    assert clean_text(text) == "正文第一句。\n\n正文第二句。"


# --- chrome of any site, by the kind of line ---------------------------------------------------------
import re  # noqa: E402
import unicodedata  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from qa_app.ingest.clean import clean_report, rejoin_wrapped  # noqa: E402
from qa_app.ingest.metadata import infer  # noqa: E402

PROVINCES = Path(__file__).resolve().parent.parent.parent / "shared" / "corpora" / "provinces_2026"
needs_provinces = pytest.mark.skipif(
    not PROVINCES.is_dir(), reason=f"the provincial reports are not here: {PROVINCES} is absent"
)


def provincial_reports() -> list[Path]:
    return sorted(PROVINCES.glob("*.txt"))


# An independent judge of page chrome, written from what the pages show rather than from the
# cleaner's rules: widget words, bylines and captions, source/editor/time fields, prompts, related links.
_JUDGE_WORDS = set(
    "下载 打印 全屏 收藏 加大 还原 减小 大 中 小 分享 分享: 分享到 分享到: 分享到微信 打印本页 关闭窗口 首页 "
    "相关报道： 相关文档： 相关新闻 延伸阅读 【字号： 【字体： 】 【 | × > 阅读量： 来源： 时间： 发表时间：".split()
)


def judged_chrome(line: str) -> bool:
    line = line.strip()
    return bool(line) and (
        line in _JUDGE_WORDS
        or bool(re.search(r"(?:记者|通讯员).{0,12}摄$", line))
        or bool(re.search(r"日报记者\s*\S{2,4}$", line))
        or bool(re.match(r"^[（(]?(?:来源|时间|作者|编辑|责任编辑|校对|发表时间|发布时间|阅读量)[：:]", line))
        or bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}(?: \d{2}:\d{2}(?::\d{2})?)?", line))
        or "扫一扫" in line
        or "点击图片" in line
    )


def test_widgets_bylines_fields_and_related_links_go_wherever_they_stand():
    text = "\n".join([
        "打印 | 关闭", "【字体：", "大", "中", "小", "】",  # a widget bar at the top
        "关于2025年预算执行情况的报告",
        "作者：张三　责任编辑：李四", "发布日期：2025-03-01", "2025/03/01 08:00",
        "（记者 王五 通讯员 赵六 摄）",
        "全年一般公共预算收入完成812.3亿元，同比增长4.2%，完成预算的101.5%。",
        "扫码关注我们", "分享至微信",  # in the middle of the report
        "市长作政府工作报告", "本报讯 新华社记者 陈七",
        "一、2025年预算执行情况",
        "支出重点保障教育、医疗和社会保障，民生支出占比达到78.6%。",
        "来源：", "市财政局网站",  # a label whose value stands on the next line
        "校对：周八",
        "延伸阅读：", "图解：一图读懂预算报告", "2025年预算报告全文",  # related links at the bottom
    ])
    assert clean_text(text).split("\n") == clean_report(text).split("\n") == [
        "关于2025年预算执行情况的报告",
        "全年一般公共预算收入完成812.3亿元，同比增长4.2%，完成预算的101.5%。",
        "一、2025年预算执行情况",
        "支出重点保障教育、医疗和社会保障，民生支出占比达到78.6%。",
    ]


def test_single_widget_characters_stay_outside_a_widget_run():
    # 大 / 中 alone are text unless a real widget word stands in their run; a table's "|" stays a cell.
    assert clean_text("主要指标\n大\n中\n全年增长5%。") == "主要指标\n大\n中\n全年增长5%。"
    assert clean_text("序号 |\n|\n名称 |") == "序号 |\n|\n名称 |"


def test_related_links_stop_at_the_report_text():
    text = "相关新闻\n市长调研重点项目\n一、总体情况\n全年完成投资12.5亿元。"
    assert clean_text(text) == "一、总体情况\n全年完成投资12.5亿元。"


def test_breadcrumbs_split_over_lines():
    text = "您的位置：\n首页\n>\n政务公开\n>\n通知公告\n通知公告\n关于做好2026年工作的通知\n各区县：现将有关事项通知如下。"
    assert clean_text(text) == "关于做好2026年工作的通知\n各区县：现将有关事项通知如下。"


# --- hard wraps ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "wrapped, joined",
    [
        ("今年经济社会发展的主要目标\n是：经济增长5%左右。", "今年经济社会发展的主要目标是：经济增长5%左右。"),
        ("细颗粒物（PM\n2.5）平均浓度下降到28微克/立方米。", "细颗粒物（PM2.5）平均浓度下降到28微克/立方米。"),
        ("细颗粒物PM\n2.5浓度下降。", "细颗粒物PM2.5浓度下降。"),
        ("初步统计，全年全省地区生产总值增长5.5%，规模以上工业增加值增长\n7.5%，固定资产投资增长3%。",
         "初步统计，全年全省地区生产总值增长5.5%，规模以上工业增加值增长7.5%，固定资产投资增长3%。"),
        ("居民收入增长5.\n5%。", "居民收入增长5.5%。"),
        ("（\n三）改革开放持续深化、互促共进。", "（三）改革开放持续深化、互促共进。"),
        ("推动科技创新和产业创新深度融合\n，加快发展新质生产力。", "推动科技创新和产业创新深度融合，加快发展新质生产力。"),
        ("关于海淀区2023年国民经济和\n\n社会发展计划的报告", "关于海淀区2023年国民经济和社会发展计划的报告"),
    ],
)
def test_lines_broken_mid_sentence_are_rejoined(wrapped, joined):
    assert clean_report(wrapped) == joined
    assert clean_text(wrapped) == wrapped  # the line-dropping cleaner alone leaves them as they are


@pytest.mark.parametrize(
    "text",
    [
        "产业结构持续优化\n2025年，全省规模以上工业增加值增长7.5%。",  # a title, then a sentence on a year
        "（一）着力推进向新向优发展，产业转型升级步伐加快\n先进制造业骨干作用增强。",  # a numbered heading with a comma
        "表1\n2025年主要指标完成情况",  # a caption and a title, not a number cut in two
        "附件A\n2026年民生实事",
        "指标 |\n目标 |\n地区生产总值 |\n增长5%左右 |",  # flattened table cells stay one per line
        "各位代表：\n现在，我代表省人民政府向大会报告工作。",
        "二、主要任务\n——加快建设现代化产业体系。",
    ],
)
def test_headings_titles_and_table_cells_stay_apart(text):
    assert clean_report(text) == text


def test_seed_sentences_survive_rejoining_too():
    for prefix in ("000", "001", "002", "003", "004"):
        raw, cleaned = read(prefix), clean_report(read(prefix))
        for line in raw.splitlines():
            line = line.strip()
            if line.endswith("。") or line.endswith("|"):
                assert line in cleaned, f"{prefix}: lost {line[:40]}"
        assert cleaned.split("\n")[0] == clean_text(raw).split("\n")[0]


def _width(line: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in line)


def hard_wrap(text: str, width: int) -> str:
    """Break every line at ``width`` display columns, as a PDF or fixed-width text does."""
    out = []
    for line in text.split("\n"):
        if line.endswith("|"):
            out.append(line)
            continue
        cur, w = "", 0
        for ch in line:
            if w + _width(ch) > width:
                out.append(cur)
                cur, w = "", 0
            cur, w = cur + ch, w + _width(ch)
        out.append(cur)
    return "\n".join(out)


_SENTENCE = re.compile(r"[^。！？；\n]{10,}[。！？；]")


@needs_provinces
@pytest.mark.parametrize("width", [56, 80])
def test_a_fixed_width_wrapped_report_reads_as_its_paragraphs_again(width):
    # Official documents are set 28 characters to the line; the PDF text of such a report arrives
    # broken at every line end. Rejoined, its sentences must read whole again and its headings stay.
    from qa_app.ingest.chunk import heading_rank

    sentences = intact = headings = kept = 0
    for path in provincial_reports()[:8]:
        reference = clean_report(path.read_text(encoding="utf-8"))
        rejoined = clean_report(hard_wrap(reference, width))
        lines = set(rejoined.split("\n"))
        for s in _SENTENCE.findall(reference):
            sentences += 1
            intact += s in rejoined
        for line in reference.split("\n"):
            if heading_rank(line) is not None:
                headings += 1
                kept += line in lines
    assert intact >= 0.995 * sentences, (intact, sentences)
    assert kept >= 0.97 * headings, (kept, headings)


def test_scraped_paragraph_lines_are_not_joined():
    # Lines that end their sentences (scraped pages: one paragraph per line) are never joined.
    lines = [ln.strip() for ln in read("003").splitlines()]
    assert [ln for ln in rejoin_wrapped(lines) if ln not in lines] == []


def _joins_of_input_lines(kept: str, source: list[str]) -> bool:
    """Whether every kept line is input lines joined, taken in input order (lines dropped as chrome
    may stand between two halves of a sentence, as a page number does between two PDF pages)."""
    from functools import lru_cache

    out = [ln for ln in kept.split("\n") if ln]

    @lru_cache(maxsize=None)
    def match(k: int, offset: int, pos: int) -> bool:
        if k == len(out):
            return True
        if offset == len(out[k]):
            return match(k + 1, 0, pos)
        rest = out[k][offset:]
        return any(
            source[j] and rest.startswith(source[j]) and match(k, offset + len(source[j]), j + 1)
            for j in range(pos, len(source))
        )

    return match(0, 0, 0)


_PROSE = st.text(alphabet="经济增长发展城市建设产业创新服务教育医疗，、（）PM0123456789.%", min_size=1, max_size=60)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(_PROSE, _PROSE.map(lambda s: s + "。"), st.just("")), max_size=15))
def test_cleaning_only_drops_lines_or_joins_broken_ones(lines):
    # Report characters are never edited: a kept line is an input line, or the pieces of a line
    # broken mid-sentence joined again, in input order.
    source = [ln.strip() for ln in lines]
    assert _joins_of_input_lines(clean_report("\n".join(lines)), source)
    once = clean_report("\n".join(lines))
    assert clean_report(once) == once


# --- the 26 provincial reports -------------------------------------------------------------------
@needs_provinces
def test_every_provincial_report_sentence_survives():
    for path in provincial_reports():
        raw = path.read_text(encoding="utf-8")
        for cleaned in (clean_text(raw), clean_report(raw)):
            for line in raw.splitlines():
                line = line.strip()
                if line.endswith("。") and len(line) >= 30:
                    assert line in cleaned, f"{path.name}: lost {line[:40]}"


@needs_provinces
def test_no_page_chrome_is_left_in_a_provincial_report():
    assert len(provincial_reports()) == 26
    had_chrome = 0
    for path in provincial_reports():
        raw = path.read_text(encoding="utf-8")
        had_chrome += any(judged_chrome(ln) for ln in raw.splitlines())
        left = [ln for ln in clean_report(raw).splitlines() if judged_chrome(ln)]
        assert not left, (path.name, left)
    assert had_chrome >= 24  # the judge does see the chrome of the raw pages


@needs_provinces
def test_the_first_cleaned_line_is_the_report_title():
    for path in provincial_reports():
        cleaned = clean_report(path.read_text(encoding="utf-8"))
        first = cleaned.split("\n")[0]
        assert first.endswith("政府工作报告") and len(first) <= 30, (path.name, first)
        assert infer(path, cleaned)["title"] == first
