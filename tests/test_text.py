import re

from hypothesis import given
from hypothesis import strategies as st

from qa_app.text import is_latin_question, match_form, normalize


def test_traditional_becomes_simplified():
    assert normalize("海淀區經濟運行穩中提質") == "海淀区经济运行稳中提质"


def test_full_width_folds_to_half_width():
    assert normalize("ＧＤＰ增长６．０％") == "GDP增长6.0%"


def test_match_form_ignores_script_width_and_space():
    assert match_form("7000億元") == match_form("7000 亿元") == "7000亿元"


def test_language_detection():
    assert is_latin_question("What was Haidian's GDP growth in 2023?")
    assert not is_latin_question("2023年海淀区GDP增长了多少？")


@given(st.text(alphabet=st.sampled_from(list("0123456789.%海淀區經濟增長億元萬人，。 ①²ＡＢ１２３")), max_size=60))
def test_normalisation_never_changes_digits(text):
    # Full-width digits fold to ASCII; every ASCII digit stays where it was, none appears from nowhere.
    folded = text.translate({ord(c): ord("0") + i for i, c in enumerate("０１２３４５６７８９")})
    assert re.findall(r"[0-9]", normalize(text)) == re.findall(r"[0-9]", folded.replace("１", "1"))


def test_a_chinese_question_about_an_english_name_stays_chinese():
    assert not is_latin_question("MIT OpenCourseWare指什么？")
    assert not is_latin_question("海淀区的GDP增长了多少")
    assert is_latin_question("What was 海淀 GDP in 2023?")
    assert is_latin_question("In 2023, how many hospitals in Haidian let patients pay later?")


def test_figures_over_several_years_are_told_from_figures_of_one():
    from qa_app.text import names_span, speaks_of_span

    assert speaks_of_span("固定资产投资年均增长12.8%")
    assert speaks_of_span("城乡低保平均标准从2020年的645元/月提高到2025年的801元/月")
    assert speaks_of_span("“十四五”时期累计完成投资3.8万亿元")
    assert not speaks_of_span("地区生产总值增长5.8%")
    assert names_span("这五年海淀拆了多少违建") and names_span("2017到2021年减了多少税")
    assert names_span("十三五期间每年平均增长多少")
    assert not names_span("2023年和2024年分别增长多少") and not names_span("宁夏2025年gdp总量是多少")


def test_a_plan_period_section_does_not_speak_for_a_year_the_report_heads_on_its_own():
    from qa_app.text import headed_years, year_scope

    title = "2026年贵州省政府工作报告"
    sections = [title, "一、2025年和“十四五”时期工作回顾", "二、“十五五”时期主要目标任务",
                "三、2026年工作安排 > (一)扩大内需"]
    headed = headed_years(title, sections)
    assert headed == {2025, 2026}  # the title names 2026 too, but heads nothing of its own
    plan = "二、“十五五”时期主要目标任务"
    sentence = "常住人口城镇化率达63%左右"
    # The report gives 2026 a heading of its own: the plan section's targets are 2030's.
    assert year_scope(sentence, plan, {2025}, {2026}, headed) == set()
    assert year_scope(sentence, "三、2026年工作安排", {2025}, {2026}, headed) == {2026}
    # A sentence that names the year, a section that names it beside the plan, a report whose
    # only heading for 2026 is the plan's ("全力推动“十五五”开好局"): all still speak for 2026.
    assert year_scope("2026年城镇化率达59%", plan, {2025}, {2026}, headed) == {2026}
    assert year_scope(sentence, "二、“十五五”时期目标任务和2026年工作安排", {2025}, {2026}, headed) == {2026}
    assert year_scope(sentence, plan, {2025}, {2026}, headed_years("2026年福建省政府工作报告",
                      ["2026年福建省政府工作报告", "三、全力推动“十五五”开好局、起好步"])) == {2026}
    # A 十四五 review speaks for 2025 unless 2025 has its own heading (a five-year total is not 2025's).
    review = "二、“十四五”时期发展成就"
    assert year_scope("累计新增就业300万人", review, {2025}, {2025}, frozenset()) == {2025}
    assert year_scope("累计新增就业300万人", review, {2025}, {2025}, frozenset({2025, 2026})) == set()
