"""The CMRC 2018 adapter (qa_app/eval/cmrc.py): the official scorer's EM/F1 on hand-made answers,
the loader on a hand-made SQuAD file, then a small slice of the real trial set in both modes.

CMRC 2018 is CC BY-SA 4.0 and is read in place from ../shared beside the clone: none of its
paragraphs, questions or answers appear here.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from qa_app.eval import cmrc
from qa_app.models import Answer, Citation

from .conftest import ROOT

PARAGRAPHS = 4
QUESTIONS = 15
OFFICIAL = cmrc.default_cmrc_dir() / cmrc.SCORER_FILE


@pytest.fixture(scope="module")
def official():
    if not OFFICIAL.is_file():
        pytest.skip(f"the official CMRC 2018 scorer is not at {OFFICIAL} (../shared/benchmarks/cmrc2018 beside the clone); skipped")
    scorer = cmrc.load_scorer(OFFICIAL)
    assert scorer.name.startswith("official"), scorer.name  # the file ran, not the stand-in
    return scorer


def reimplemented():
    return cmrc.load_scorer(Path("/nonexistent") / cmrc.SCORER_FILE)


def scorers():
    """The stand-in always; the official file's functions too where the file is."""
    return [reimplemented()] + ([cmrc.load_scorer(OFFICIAL)] if OFFICIAL.is_file() else [])


# --- the scorer, on made-up answers ----------------------------------------------------------


def test_exact_answer_scores_one_and_a_partial_one_partial_f1():
    for scorer in scorers():
        assert scorer.score(["4分钟"], "4分钟") == (1.0, 1.0)
        assert scorer.score(["《红楼梦》"], "红楼梦") == (1.0, 1.0)  # the official punctuation list is ignored
        em, f1 = scorer.score(["4分钟"], "4分钟内")  # segments 4 分 钟 against 4 分 钟 内
        assert em == 0.0 and f1 == pytest.approx(2 * 0.75 * 1.0 / 1.75)
        em, f1 = scorer.score(["甲乙", "丙丁戊"], "丙丁")  # the best of the answers: P 1, R 2/3
        assert em == 0.0 and f1 == pytest.approx(0.8)
        assert scorer.score(["踢爆"], "") == (0.0, 0.0)
        assert scorer.score(["答案"], "毫不相干") == (0.0, 0.0)


def test_mixed_segmentation_splits_chinese_by_character_and_the_rest_by_word():
    for scorer in scorers():
        assert scorer.segment("NBA总决赛MVP是Kobe Bryant's, 3.5%", rm_punc=True) == [
            "nba", "总", "决", "赛", "mvp", "是", "kobe", "bryant", "'s", ",", "3.5", "%"]
        # the official longest common substring is contiguous: "甲 丙" shares one segment with "甲乙丙"
        assert scorer.score(["甲乙丙"], "甲丙")[1] == pytest.approx(2 * 0.5 * (1 / 3) / (0.5 + 1 / 3))


def test_the_word_tokenizer_port_gives_nltks_documented_output():
    s = "Good muffins cost $3.88 (roughly 3,36 euros)\nin New York.  Please buy me\ntwo of them.\nThanks."
    assert cmrc.word_tokenize(s) == ["Good", "muffins", "cost", "$", "3.88", "(", "roughly", "3,36", "euros", ")", "in",
                                     "New", "York.", "Please", "buy", "me", "two", "of", "them.", "Thanks", "."]
    assert cmrc.word_tokenize("I can't go -- \"now\"") == ["I", "ca", "n't", "go", "--", "``", "now", "''"]


def test_the_stand_in_is_named_and_a_changed_scorer_file_is_not_run(tmp_path):
    assert cmrc.load_scorer(tmp_path / "missing.py").name.startswith("re-implementation")
    odd = tmp_path / cmrc.SCORER_FILE
    odd.write_text("raise SystemExit('must not run')\n", encoding="utf-8")
    scorer = cmrc.load_scorer(odd)
    assert scorer.name.startswith("re-implementation") and "not the expected version" in scorer.name
    assert scorer.score(["4分钟"], "4分钟") == (1.0, 1.0)


# --- what an answer offers for EM/F1 ---------------------------------------------------------
def _cite(n, quote):
    return Citation(n, f"c{n}", "d", "", "", "", quote)


def test_offered_span_is_the_leading_quote_or_a_span_and_nothing_for_a_refusal():
    two = Answer("q", "……若游戏中离，则4分钟内不得进行配对[1]。另一句[2]。", citations=[_cite(1, "长句"), _cite(2, "另一句")])
    assert cmrc.offered_span(two) == ("quote", "若游戏中离，则4分钟内不得进行配对")
    assert cmrc.offered_span(Answer("q", "", citations=[_cite(1, "引文。")])) == ("quote", "引文")
    assert cmrc.offered_span(Answer("q", "报告中没有找到……", refused=True)) == ("refusal", "")
    spanned = Answer("q", "句子[1]。", citations=[_cite(1, "句子")])
    spanned.span = "4分钟"  # a generator that offers a short answer of its own
    assert cmrc.offered_span(spanned) == ("span", "4分钟")


def test_contains_ignores_citation_markers_script_and_width():
    assert cmrc.holds_answer(cmrc.without_markers("約只有８公[1]斤重"), ["约只有8公斤重"])
    assert not cmrc.holds_answer("约只有8斤重", ["8公斤"])


# --- the loader, on a hand-made SQuAD file ----------------------------------------------------
def _squad(tmp_path: Path) -> Path:
    data = {"version": "test", "data": [
        {"title": "青石镇", "paragraphs": [{"id": "P1", "context": "青石镇位于云岭山脉东侧，始建于1920年。镇上最有名的特产是桂花糕，每年秋天举办桂花节。", "qas": [
            {"id": "P1_Q0", "question": "青石镇始建于哪一年？", "answers": [{"text": "1920年", "answer_start": 16}]},
            {"id": "P1_Q1", "question": "青石镇最有名的特产是什么？", "answers": [{"text": "桂花糕"}, {"text": "桂花糕"}, {"text": "桂花糕，"}]},
            {"id": "P1_Q2", "question": "镇长是谁？", "answers": []},
        ]}]},
        {"paragraphs": [{"context": "白河全长约三百公里，自西向东流入东湖。", "qas": [
            {"question": "白河流入哪里？", "answers": [{"text": "东湖"}]},
        ]}]},
    ]}
    path = tmp_path / "tiny_squad.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def test_load_reads_any_squad_file_by_path(tmp_path):
    ds = cmrc.load(_squad(tmp_path))
    assert [p.id for p in ds.paragraphs] == ["P1", "tiny_squad_1_0"] and ds.version == "test"
    assert [q.id for q in ds.questions] == ["P1_Q0", "P1_Q1", "tiny_squad_1_0_Q0"]
    assert ds.skipped == 1  # no accepted answer
    assert ds.questions[1].answers == ("桂花糕", "桂花糕，")  # duplicates dropped
    assert ds.questions[0].doc_id == ds.paragraphs[0].doc_id != ds.paragraphs[1].doc_id
    assert ds.paragraphs[0].title == "青石镇" and ds.paragraphs[1].title == ""
    with pytest.raises(cmrc.CMRCNotFound, match="nowhere.json"):
        cmrc.load(tmp_path / "nowhere.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"data": [{"paragraphs": [{"qas": []}]}]}', encoding="utf-8")
    with pytest.raises(cmrc.CMRCFormatError, match=r'data\[0\]\.paragraphs\[0\] has no "context"'):
        cmrc.load(bad)


def test_bench_reader_mode_on_a_hand_made_file(tmp_path):
    out_json = tmp_path / "r.json"
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "cmrc.py"), "--mode", "reader", "--file", str(_squad(tmp_path)),
         "--quiet", "--json", str(out_json)],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "### Reader" in out.stdout and "| mode | n | contains (%) | EM (quote) | F1 (quote) |" in out.stdout
    report = json.loads(out_json.read_text(encoding="utf-8"))
    assert report["skipped_without_answer"] == 1 and report["reader"]["n"] == 3
    items = {i["id"]: i for i in report["items"]["reader"]}
    assert items["P1_Q0"]["contains"] and "1920年" in items["P1_Q0"]["prediction"] and items["P1_Q1"]["contains"]


# --- the real benchmark, a slice ----------------------------------------------------------------
@pytest.fixture(scope="module")
def trial():
    try:
        ds = cmrc.load()
    except cmrc.CMRCNotFound as exc:
        pytest.skip(f"{exc}; skipped")
    return cmrc.Dataset(ds.path, ds.version, ds.paragraphs[:PARAGRAPHS])


@pytest.fixture(scope="module")
def slice_questions(trial):
    questions = trial.questions[:QUESTIONS]
    assert len(questions) == QUESTIONS and {q.doc_id for q in questions} == {p.doc_id for p in trial.paragraphs}
    return questions


def test_official_scorer_and_stand_in_agree_on_the_trial_answers(official, trial):
    ds = cmrc.load()
    stand_in = reimplemented()
    for p in ds.paragraphs[:60]:
        sentences = [s for s in p.context.split("。") if s]
        for q, s in zip(p.questions, sentences):
            for prediction in (q.answers[0], s, q.answers[0][:2] + " U.S. 3.5%"):
                assert official.score(q.answers, prediction) == pytest.approx(stand_in.score(q.answers, prediction))


def _sane(summary, n):
    assert summary["n"] == n and summary["errors"] == 0
    assert 0.0 <= summary["em"] <= summary["f1"] <= 100.0 and summary["f1"] > 0
    assert 0.0 <= summary["refusal_rate"] < 0.5 and summary["ms_p50"] > 0
    assert sum(summary["outcomes"].values()) == n
    assert summary["scored_on"].get("refusal", 0) == round(summary["refusal_rate"] * n)


def test_open_corpus_slice(trial, slice_questions, tmp_path):
    from qa_app.answer import Assistant
    from qa_app.config import settings_with
    from qa_app.index.store import Index

    # Embedding the first 96 characters instead of 192 keeps the slice quick; bench/cmrc.py
    # runs the whole file with the defaults.
    settings = settings_with(data_dir=tmp_path / "pool", generator="extractive", embedding_max_chars=96)
    index = Index(settings)
    built = cmrc.build_pool(index, trial.paragraphs, progress=False)
    assert (built.added, built.unchanged, built.removed) == (PARAGRAPHS, 0, 0)
    docs = {d.doc_id: d for d in index.documents()}
    assert set(docs) == {p.doc_id for p in trial.paragraphs} and {d.kind for d in docs.values()} == {cmrc.KIND}
    assert len(index) == built.chunks > PARAGRAPHS  # paragraphs were chunked, not stored whole
    assert cmrc.build_pool(index, trial.paragraphs, progress=False).added == 0  # an existing pool is reused

    results = cmrc.run_open(Assistant(settings, index), slice_questions, cmrc.load_scorer())
    summary = cmrc.summarise(results)
    _sane(summary, QUESTIONS)
    # Floors well under what the slice measures (recall@5 1.0, contains 0.73).
    assert summary["recall@1"] >= 0.7 and summary["recall@5"] >= 0.85
    assert summary["contains_accuracy"] >= 0.5
    for r in results:
        assert r.em <= r.f1 and (r.em == 0 or r.contains)
        assert r.ranks is not None and all(1 <= x <= 10 for x in r.ranks)

    # the pool follows the file: a paragraph that left it is deleted, through the Index API
    fewer = cmrc.build_pool(index, trial.paragraphs[1:], progress=False)
    assert (fewer.added, fewer.unchanged, fewer.removed) == (0, PARAGRAPHS - 1, 1)
    assert len(index.documents()) == PARAGRAPHS - 1
    # a folder holding other documents is never taken over
    from qa_app.models import Chunk, DocumentInfo

    text = "一份别的文件。"
    index.put_document(DocumentInfo("other.txt", "别的"), [Chunk("other#0", "other.txt", 0, text, text, "", 0, len(text))],
                       [["别的"]], index.embed_texts([text]))
    with pytest.raises(cmrc.PoolError, match="not CMRC paragraphs"):
        cmrc.build_pool(index, trial.paragraphs, progress=False)


def test_reader_slice(trial, slice_questions):
    from qa_app.config import settings_with
    from qa_app.llm.registry import make_generator

    settings = settings_with(generator="extractive")
    generator = make_generator(settings)
    scorer = cmrc.load_scorer()
    results = cmrc.run_reader(generator, trial, slice_questions, scorer, settings)
    summary = cmrc.summarise(results)
    _sane(summary, QUESTIONS)
    assert "recall@5" not in summary  # the paragraph is given: nothing is retrieved
    assert summary["contains_accuracy"] >= 0.5
    assert all(r.outcome != "wrong paragraph" for r in results)  # only its own paragraph was given
    exact = [r for r in results if r.em == 1.0]
    assert all(r.f1 == 1.0 and r.contains for r in exact)
    local = cmrc.run_reader(generator, trial, slice_questions, scorer, settings, idf="local")
    assert [r.id for r in local] == [r.id for r in results]
    again = cmrc.run_reader(generator, trial, slice_questions, scorer, settings)
    assert [r.prediction for r in again] == [r.prediction for r in results]
