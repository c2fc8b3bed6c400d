"""Property tests for the chunker, the cleaner and the normaliser.

The seeds-based tests check these on five real documents; here hypothesis generates
report-like documents (headings, sentences with figures, flattened tables, blank lines,
Traditional characters, long unpunctuated lines) and arbitrary unicode, so an edge case
the seeds happen not to contain cannot lose text or change a figure.
"""
from __future__ import annotations

import os
import re
import unicodedata

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from qa_app.ingest.chunk import _CAPTION_RANK, chunk_text, heading_rank
from qa_app.ingest.clean import clean_text
from qa_app.text import match_form, normalize

# Moderate by default so the file runs in well under a minute; QA_PROPERTY_EXAMPLES=5000 hunts harder.
PROPS = settings(
    max_examples=int(os.environ.get("QA_PROPERTY_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# --- strategies: pieces of a Haidian-style report ------------------------------------------------
SIMPLIFIED = "海淀区经济发展科技创新企业服务城市建设生态环境教育医疗养老交通公园绿化产业园中关村人工智能"
TRADITIONAL = "區經濟發展創新醫療圖書館會議億萬園區學校體育數據實驗室營商環境國際"
CN_NUMERALS = "一二三四五六七八九十"
FULL_DIGITS = "０１２３４５６７８９"

words = st.text(alphabet=SIMPLIFIED + TRADITIONAL, min_size=2, max_size=12)
cn_ordinal = st.text(alphabet=CN_NUMERALS, min_size=1, max_size=2)
small_int = st.integers(min_value=1, max_value=20)


@st.composite
def figure(draw) -> str:
    """A figure as the reports write it: 356.51亿元, 6%, 2023年, full-width ６．０％."""
    whole = draw(st.integers(min_value=0, max_value=99999))
    text = str(whole)
    if draw(st.booleans()):
        text += "." + str(draw(st.integers(min_value=0, max_value=99)))
    text += draw(st.sampled_from(["亿元", "万元", "%", "个", "家", "年", "公里", "万人", "億元", "％", ""]))
    if draw(st.integers(0, 4)) == 0:
        text = text.translate(str.maketrans("0123456789.", FULL_DIGITS + "．"))
    return text


@st.composite
def heading(draw) -> str:
    title = draw(words)
    n, cn = draw(small_int), draw(cn_ordinal)
    return draw(st.sampled_from([
        f"第{cn}章 {title}", f"第{cn}节 {title}", f"{cn}、{title}", f"（{cn}）{title}",
        f"{n}. {title}", f"（{n}）{title}", f"专栏{n} {title}", title,
    ]))


@st.composite
def sentence(draw) -> str:
    parts = draw(st.lists(st.one_of(words, figure()), min_size=1, max_size=8))
    joiner = draw(st.sampled_from(["", "，", ",", "、"]))
    return joiner.join(parts) + draw(st.sampled_from("。！？；"))


paragraph = st.lists(sentence(), min_size=1, max_size=6).map("".join)
table_cell = st.one_of(st.sampled_from(["所属街道", "点位名称", "详细地址", "序号", "项目类别"]), words, figure())
table = st.lists(table_cell.map(lambda c: c + "|"), min_size=1, max_size=12).map("\n".join)
long_line = st.text(alphabet=SIMPLIFIED + TRADITIONAL + "0123456789", min_size=300, max_size=1500)
# An over-long sentence whose comma-free stretches may each exceed a chunk's maximum.
long_sentence = st.lists(
    st.text(alphabet=SIMPLIFIED + "0123456789", min_size=1, max_size=700), min_size=2, max_size=6
).map(lambda parts: "，".join(parts) + "。")
# Short sentences that recur, as list items do in a report ("一是加强统筹。").
stock_sentence = st.sampled_from(["主要指标完成良好。", "一是加强统筹。", "全年完成投资12.5亿元。"])
indent = st.sampled_from(["", " ", "\u3000\u3000", "\t"])

line = st.one_of(
    heading(), paragraph, paragraph, stock_sentence, table, long_line, long_sentence, st.just(""), st.text(max_size=80)
)


@st.composite
def report(draw) -> str:
    lines = [draw(indent) + ln for ln in draw(st.lists(line, min_size=1, max_size=25))]
    return draw(st.sampled_from(["\n", "\r\n"])).join(lines)


any_document = st.one_of(report(), st.text(max_size=400))
chunk_sizes = st.sampled_from([(300, 520), (60, 100), (20, 30)])


# --- chunking ------------------------------------------------------------------------------------
def _chunks(raw: str, sizes: tuple[int, int]):
    cleaned = clean_text(raw)
    target, max_chars = sizes
    return cleaned, chunk_text("doc.txt", cleaned, target=target, max_chars=max_chars)


@PROPS
@given(any_document, chunk_sizes)
@example("所属街道|\n点位名称|", (300, 520))  # a table header with no rows under it was dropped
def test_every_character_lands_in_a_chunk(raw, sizes):
    # Whitespace and the "|" that ends a table cell carry no text; everything else must be findable.
    cleaned, chunks = _chunks(raw, sizes)
    covered = bytearray(len(cleaned))
    for c in chunks:
        covered[c.start : c.end] = b"\x01" * (c.end - c.start)
    lost = [i for i, ch in enumerate(cleaned) if not covered[i] and not ch.isspace() and ch != "|"]
    assert not lost, (cleaned, [cleaned[i] for i in lost])


@PROPS
@given(any_document, chunk_sizes)
def test_text_chunks_are_their_span_and_table_chunks_hold_their_cells(raw, sizes):
    cleaned, chunks = _chunks(raw, sizes)
    for c in chunks:
        assert 0 <= c.start < c.end <= len(cleaned)
        assert c.text and c.text == c.text.strip()
        if c.kind == "text":
            assert cleaned[c.start : c.end].strip() == c.text
        else:  # a table chunk is its rows re-rendered: each cell of its span is in it
            for cell_line in cleaned[c.start : c.end].split("\n"):
                cell = cell_line.removesuffix("|").strip()
                assert cell in c.text, (cell, c.text)


@PROPS
@given(any_document, chunk_sizes)
def test_chunks_are_ordered_unique_and_normalised(raw, sizes):
    _, chunks = _chunks(raw, sizes)
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    assert len({c.chunk_id for c in chunks}) == len(chunks)
    for before, after in zip(chunks, chunks[1:]):
        assert before.end <= after.start  # no text is indexed twice
    for c in chunks:
        assert c.norm == normalize(c.text)


@PROPS
@given(any_document, chunk_sizes)
def test_a_chunk_never_crosses_a_heading(raw, sizes):
    # Headings may only open a text chunk (a heading straight above another joins it). A 专栏
    # caption is a heading only above its table, so it is left out of this check.
    _, chunks = _chunks(raw, sizes)
    for c in chunks:
        if c.kind != "text":
            continue
        ranks = [heading_rank(ln) for ln in c.text.split("\n") if ln.strip()]
        body_seen = False
        for rank in ranks:
            if rank is None:
                body_seen = True
            elif rank != _CAPTION_RANK:
                assert not body_seen, c.text[:80]


@PROPS
@given(any_document, chunk_sizes)
@example("甲" * 600 + "，乙乙，丙丙。", (300, 520))  # a comma-free stretch before the last commas stayed whole
def test_text_chunks_respect_the_size_limit(raw, sizes):
    # A chunk may hold a heading line plus body, but no body piece is longer than max_chars.
    _, chunks = _chunks(raw, sizes)
    target, max_chars = sizes
    for c in chunks:
        if c.kind == "text" and "\n" not in c.text:
            assert len(c.text) <= max(max_chars, target), c.text[:40]


# --- cleaning ------------------------------------------------------------------------------------
@PROPS
@given(any_document)
def test_cleaning_only_drops_lines(raw):
    # Report text is never edited: every kept line is an input line (stripped), in input order.
    source = iter(ln.strip() for ln in raw.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    for kept in clean_text(raw).split("\n"):
        if kept:
            assert any(kept == ln for ln in source), kept


@PROPS
@given(st.lists(st.one_of(heading(), paragraph, stock_sentence, st.just("")), max_size=20))
@example(["一、总体情况", "主要指标完成良好。", "二、分项情况", "主要指标完成良好。"])
def test_cleaning_keeps_every_sentence_every_time_it_occurs(lines):
    # Repeated short lines are dropped as repeated titles; a repeated sentence is report text.
    kept = clean_text("\n".join(lines)).split("\n")
    for sentence in {ln for ln in lines if ln.endswith(tuple("。！？；"))}:
        assert kept.count(sentence) == lines.count(sentence), sentence


@PROPS
@given(any_document)
def test_cleaning_is_idempotent(raw):
    once = clean_text(raw)
    assert clean_text(once) == once


# --- normalisation -------------------------------------------------------------------------------
NUMBER_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?%?")
_FULL_WIDTH_NUMBERS = str.maketrans(FULL_DIGITS + "．％", "0123456789.%")


def numbers(text: str) -> list[str]:
    """The figures of a text as ASCII strings (full-width forms read as the same values)."""
    return NUMBER_RE.findall(text.translate(_FULL_WIDTH_NUMBERS))


figure_text = st.lists(st.one_of(figure(), words, st.sampled_from(list("，。、 \u3000（）"))), max_size=20).map("".join)


@PROPS
@given(st.one_of(figure_text, st.text(max_size=200)))
@example("增长６．０％，達到356.51億元")
def test_normalisation_keeps_every_figure(text):
    assert numbers(normalize(text)) == numbers(text)


@PROPS
@given(st.one_of(figure_text, st.text(max_size=200)))
def test_match_form_keeps_every_digit(text):
    # match_form drops whitespace, so "1 000" reads 1000; digits and their order never change.
    def digits(s: str) -> str:
        return "".join(re.findall(r"[0-9.%]", s.translate(_FULL_WIDTH_NUMBERS)))

    assert digits(match_form(text)) == digits(text)


def digit_values(text: str) -> list[int]:
    """Every decimal digit of any script (ASCII, full-width, Arabic-Indic, …) by its value."""
    return [unicodedata.decimal(ch) for ch in text if unicodedata.decimal(ch, None) is not None]


@PROPS
@given(st.text(max_size=200))
@example("１２３٤٥ 2023年")
def test_normalisation_keeps_every_digit_value_of_any_script(text):
    # Full-width digits become ASCII with the same value; no other digit is touched or invented.
    assert digit_values(normalize(text)) == digit_values(text)


# Chinese numerals in report text; 两 is missing from unicodedata's numeric table.
CN_VALUES = {"两": 2, "兩": 2}
CN_NUMERAL_TEXT = "零〇一二三四五六七八九十百千万萬亿億两兩壹贰貳参參叁叄陆陸拾佰仟"


def numeral_values(text: str) -> list[float]:
    return [CN_VALUES.get(ch) or unicodedata.numeric(ch) for ch in text if ch in CN_NUMERAL_TEXT]


@PROPS
@given(st.text(alphabet=CN_NUMERAL_TEXT + TRADITIONAL + "元人", max_size=40))
def test_traditional_numerals_keep_their_values(text):
    # 萬 → 万, 億 → 亿, 兩 → 两, 貳 → 贰: the script changes, the value does not.
    assert numeral_values(normalize(text)) == numeral_values(text)


@PROPS
@given(st.text(alphabet=SIMPLIFIED + TRADITIONAL + "0123456789，。", max_size=60))
def test_normalisation_is_idempotent_and_simplifies(text):
    once = normalize(text)
    assert normalize(once) == once
    assert len(once) == len(text)  # script conversion is character for character on report text
    assert not set(once) & set("區經濟發創醫療圖館會議億萬園學體數據驗營環際")
