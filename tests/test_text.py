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
