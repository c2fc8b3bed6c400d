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
