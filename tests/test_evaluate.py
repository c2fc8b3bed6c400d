"""Metric definitions on small hand-checked cases, and the dev set's own integrity."""
import json
import math
import threading

import pytest

from qa_app.config import Settings
from qa_app.eval.checkpoint import Checkpoint, results_document, settings_fingerprint
from qa_app.eval.metrics import answer_correct, by_category, hit_rank, ItemResult, percentile, recall_curve, summarise
from qa_app.eval.report import format_table
from qa_app.eval.runner import evaluate
from qa_app.eval.sets import EvalItem, EvalSetError, load_eval_set, load_eval_sets
from qa_app.models import Answer, Chunk, Citation, DocumentInfo, Passage

from qa_app.text import match_form

from .conftest import DEV_SET, SEEDS


def test_dev_set_is_well_formed_and_quotes_are_verbatim():
    items = load_eval_set(DEV_SET)
    assert len(items) >= 60
    assert len({i.id for i in items}) == len(items)
    cats = {i.category for i in items}
    assert {"fact", "paraphrase", "numeric", "list", "multi_doc", "temporal", "table", "traditional",
            "unanswerable", "english"} <= cats
    docs = {p.name: p.read_text(encoding="utf-8") for p in SEEDS.glob("*.txt")}
    for i in items:
        for e in i.evidence:
            assert e["quote"] in docs[e["doc"]], (i.id, e["quote"])
        if i.category == "unanswerable":
            assert i.answer_keys == []
    for line in DEV_SET.read_text(encoding="utf-8").splitlines():
        assert set(json.loads(line)) >= {"id", "question", "answer", "answer_keys", "evidence", "category"}


def _item(keys, quotes=(), category="numeric"):
    return EvalItem("x", "q", list(keys), [{"doc": "d.txt", "quote": q} for q in quotes], category)


def test_hit_rank_matches_after_normalisation():
    item = _item(["7000亿元"], ["地區生產總值邁上7000億元"])
    assert hit_rank(item, [("d.txt", "无关"), ("d.txt", "预计地区生产总值迈上7000亿元新台阶")]) == 2
    assert hit_rank(item, [("other.txt", "地区生产总值迈上7000亿元")]) is None


def test_answer_keys_all_required():
    item = _item(["6%", "6.0%"])
    assert answer_correct(item, "2023年增长6%，2024年增长6.0%")
    assert not answer_correct(item, "增长6%")
    assert answer_correct(_item(["7000亿元"]), "邁上7000億元")


def test_summary_metrics():
    a = ItemResult(_item(["1"], ["q"]), rank=1, answer="1", correct=True, cited=2, cited_hits=1, latency_ms=10)
    b = ItemResult(_item(["2"], ["q"]), rank=3, answer="x", correct=False, cited=1, cited_hits=0, latency_ms=30)
    c = ItemResult(_item([], [], "unanswerable"), rank=None, answer="没有", refused=True, latency_ms=20)
    d = ItemResult(_item(["4"], ["q"]), rank=None, answer="没有", refused=True, latency_ms=40)
    m = summarise([a, b, c, d])
    assert m["recall@1"] == 1 / 3 and m["recall@5"] == 2 / 3 and m["recall@10"] == 2 / 3
    assert abs(m["mrr"] - (1 + 1 / 3) / 3) < 1e-9
    assert m["answer_accuracy"] == 1 / 3
    assert m["refusal_accuracy"] == 1.0 and m["false_refusal_rate"] == 1 / 3
    assert m["citation_precision"] == 1 / 3
    assert m["latency_p50_ms"] == 25 and m["n"] == 4


# --- metrics on hand-built results: every expected number below is worked out by hand ------------

def _result(id_, category, keys, quotes, rank, answer, *, correct=False, refused=False, cited=0, hits=0,
            grounded=True, latency=0.0):
    item = EvalItem(id_, f"question {id_}", list(keys), [{"doc": "d.txt", "quote": q} for q in quotes], category)
    return ItemResult(item, rank=rank, answer=answer, correct=correct, refused=refused, cited=cited, cited_hits=hits,
                      grounded=grounded, latency_ms=latency)


def hand_results():
    return [
        # answerable, found at rank 1, right; 2 citations of which 1 holds evidence; 7 chars
        _result("a", "fact", ["6%"], ["增长6%"], 1, "增长6%[1]", correct=True, cited=2, hits=1, latency=10),
        # answerable, found at rank 3, wrong, ungrounded; 5 chars
        _result("b", "numeric", ["7"], ["七"], 3, "wrong", cited=1, hits=0, grounded=False, latency=30),
        # unanswerable, refused; 2 chars
        _result("c", "unanswerable", [], [], None, "没有", refused=True, latency=20),
        # answerable, evidence not retrieved, falsely refused; 6 chars
        _result("d", "numeric", ["9"], ["九"], None, "报告没有提到", refused=True, latency=40),
        # missing figure (has evidence, yet counts as a no-answer item), answered instead of refused; 8 chars
        _result("e", "missing_figure", [], ["某"], 2, "abcdefgh", cited=1, hits=1, latency=100),
    ]


def test_metrics_by_hand():
    m = summarise(hand_results())
    # recall and MRR over items with evidence outside the no-answer categories: a (1), b (3), d (miss)
    assert m["recall@1"] == pytest.approx(1 / 3)
    assert m["recall@5"] == pytest.approx(2 / 3) and m["recall@10"] == pytest.approx(2 / 3)
    assert m["mrr"] == pytest.approx((1 + 1 / 3 + 0) / 3)
    # answerable a, b, d: only a right, d refused
    assert m["answer_accuracy"] == pytest.approx(1 / 3)
    assert m["false_refusal_rate"] == pytest.approx(1 / 3)
    # no-answer items c (refused) and e (answered)
    assert m["refusal_accuracy"] == pytest.approx(1 / 2)
    # citations of answered answerable items only (a: 1 of 2, b: 0 of 1); e's are not counted
    assert m["citation_precision"] == pytest.approx(1 / 3)
    assert m["grounded_rate"] == pytest.approx(4 / 5)
    assert m["answer_chars_median"] == 6  # lengths 7 5 2 6 8
    # latencies 10 20 30 40 100: p50 the middle one; p95 at position 3.8 = 40 + 0.8 * 60
    assert m["latency_p50_ms"] == 30 and m["latency_p95_ms"] == pytest.approx(88)
    assert m["n"] == 5
    assert list(m) == ["recall@1", "recall@5", "recall@10", "mrr", "answer_accuracy", "refusal_accuracy",
                       "false_refusal_rate", "citation_precision", "grounded_rate", "answer_chars_median",
                       "latency_p50_ms", "latency_p95_ms", "n"]


def test_percentile_interpolates():
    assert percentile([], 0.5) == 0.0
    assert percentile([5.0], 0.95) == 5.0
    assert percentile([4, 1, 3, 2], 0.5) == 2.5  # unsorted input; halfway between 2 and 3
    assert percentile([0, 10], 0.95) == pytest.approx(9.5)


def test_recall_curve_and_categories_by_hand():
    results = hand_results()
    assert recall_curve(results, 3) == pytest.approx([1 / 3, 1 / 3, 2 / 3])
    cats = by_category(results)
    assert cats["fact"] == {"n": 1, "recall@5": 1.0, "correct": 1.0}
    assert cats["numeric"] == {"n": 2, "recall@5": 0.5, "correct": 0.0}
    assert cats["unanswerable"]["correct"] == 1.0 and math.isnan(cats["unanswerable"]["recall@5"])
    assert cats["missing_figure"]["correct"] == 0.0  # answered where it should have refused
    # NaN is not JSON: the results document writes null
    doc = results_document(results, {"top_k": 3})
    assert doc["by_category"]["unanswerable"]["recall@5"] is None
    assert json.loads(json.dumps(doc, allow_nan=False))["recall_curve"] == pytest.approx([1 / 3, 1 / 3, 2 / 3])


def test_unknown_fields_are_carried_into_results(tmp_path):
    f = tmp_path / "set.jsonl"
    f.write_text(json.dumps({"id": "k1", "question": "问", "answer_keys": ["x"], "category": "fact",
                             "source": "hand", "difficulty": 3}, ensure_ascii=False) + "\n", encoding="utf-8")
    (item,) = load_eval_set(f)
    out = ItemResult(item, rank=None, answer="x", correct=True).to_dict()
    assert out["source"] == "hand" and out["difficulty"] == 3 and out["file"] == "set.jsonl"
    assert out["given_answer"] == "x" and out["correct"] is True


def test_duplicate_ids_in_one_file_are_an_error(tmp_path):
    f = tmp_path / "dup.jsonl"
    f.write_text('{"id": "1", "question": "a"}\n{"id": "1", "question": "b"}\n', encoding="utf-8")
    with pytest.raises(EvalSetError, match="twice"):
        load_eval_sets([f])
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"  # the same id in another file is another item
    for g in (a, b):
        g.write_text('{"id": "1", "question": "a"}\n', encoding="utf-8")
    assert [i.key for i in load_eval_sets([a, b])] == [("a.jsonl", "1"), ("b.jsonl", "1")]


# --- running: a scripted assistant, so every outcome is known in advance ---------------------------

class ScriptedAssistant:
    """search/ask/index.chunk over three chunks; answers are fixed per question. Counts asks."""

    CHUNKS = {
        "c1": ("d.txt", "2023年地区生产总值增长6%"),
        "c2": ("d.txt", "常住人口313.4万人"),
        "c3": ("e.txt", "无关的内容"),
    }
    SCRIPT = {  # question -> (retrieved chunk ids, answer text, refused, cited chunk ids)
        "GDP增长多少？": (["c3", "c1", "c2"], "增长6%[1]", False, ["c1"]),
        "常住人口多少？": (["c2", "c1"], "313.4万人[1]", False, ["c2"]),
        "2030年GDP？": (["c1"], "报告没有提到。", True, []),
        "人口密度？": (["c3"], "313.4万人[1]", False, ["c3"]),
    }

    def __init__(self, hold_after: int | None = None):
        self.asked: list[str] = []
        self.index = self
        # Questions after the first ``hold_after`` wait for ``release``: a question still running.
        self.hold_after = hold_after
        self.release = threading.Event()

    def chunk(self, chunk_id):
        doc, text = self.CHUNKS[chunk_id]
        return Chunk(chunk_id, doc, 0, text, text, "第一章", 0, len(text))

    def _passage(self, chunk_id):
        return Passage(self.chunk(chunk_id), DocumentInfo(self.CHUNKS[chunk_id][0], "title"), 1.0)

    def search(self, question, k=None, filters=None):
        return [self._passage(c) for c in self.SCRIPT[question][0][:k]]

    def ask(self, question, filters=None):
        self.asked.append(question)
        if self.hold_after is not None and len(self.asked) > self.hold_after:
            self.release.wait(10)
        ids, text, refused, cited = self.SCRIPT[question]
        citations = [Citation(n, c, self.CHUNKS[c][0], "title", "", "第一章", self.CHUNKS[c][1]) for n, c in enumerate(cited, 1)]
        return Answer(question, text, citations=citations, refused=refused)


SCRIPTED_ITEMS = [
    EvalItem("s1", "GDP增长多少？", ["6%"], [{"doc": "d.txt", "quote": "增长6%"}], "numeric", file="t.jsonl"),
    EvalItem("s2", "常住人口多少？", ["313.4万"], [{"doc": "d.txt", "quote": "313.4万人"}], "numeric", file="t.jsonl"),
    EvalItem("s3", "2030年GDP？", [], [], "unanswerable", file="t.jsonl"),
    EvalItem("s4", "人口密度？", ["人/平方公里"], [{"doc": "d.txt", "quote": "人口密度"}], "fact", file="t.jsonl"),
]
for _i in SCRIPTED_ITEMS:
    _i.raw = {"id": _i.id, "question": _i.question, "answer_keys": _i.answer_keys, "category": _i.category}


def _without_latency(results):
    return [{k: v for k, v in r.to_dict().items() if k != "latency_ms"} for r in results]


def test_run_item_records_ranks_citations_and_passages():
    r1, r2, r3, r4 = evaluate(SCRIPTED_ITEMS, ScriptedAssistant(), top_k=10, progress=False)
    assert (r1.rank, r1.correct, r1.cited_hits, r1.cited) == (2, True, 1, 1)
    assert [p["evidence"] for p in r1.retrieved] == [False, True, False]
    assert r1.retrieved[1]["section"] == "第一章" and r1.citations[0]["evidence"] is True
    assert (r2.rank, r2.correct) == (1, True)
    assert r3.refused and r3.outcome_ok
    assert (r4.rank, r4.correct, r4.cited_hits) == (None, False, 0)


def test_interrupted_run_resumes_with_only_the_remaining_items(tmp_path):
    clean = evaluate(SCRIPTED_ITEMS, ScriptedAssistant(), top_k=10, progress=False)

    checkpoint = Checkpoint(tmp_path / "run.json.checkpoint.jsonl", fingerprint="fp1")
    seen = []

    def stop_after_two(result):
        checkpoint.append(result)
        seen.append(result.item.id)
        if len(seen) == 2:
            raise KeyboardInterrupt

    first = ScriptedAssistant(hold_after=2)
    with pytest.raises(KeyboardInterrupt):
        evaluate(SCRIPTED_ITEMS, first, top_k=10, progress=False, on_result=stop_after_two)
    first.release.set()  # the third question was still running when the run stopped: not kept
    done = checkpoint.load(SCRIPTED_ITEMS)
    assert set(done) == {("t.jsonl", "s1"), ("t.jsonl", "s2")}

    again = ScriptedAssistant()
    resumed = evaluate(SCRIPTED_ITEMS, again, top_k=10, progress=False, done=done, on_result=checkpoint.append)
    assert again.asked == ["2030年GDP？", "人口密度？"]  # only the two not finished before
    assert _without_latency(resumed) == _without_latency(clean)
    assert len(checkpoint.load(SCRIPTED_ITEMS)) == 4

    # other settings, or an edited item, do not reuse a result
    assert Checkpoint(checkpoint.path, fingerprint="fp2").load(SCRIPTED_ITEMS) == {}
    edited = [EvalItem(i.id, i.question, i.answer_keys, i.evidence, i.category, {**i.raw, "question": "改"}, i.file)
              for i in SCRIPTED_ITEMS]
    assert checkpoint.load(edited) == {}


def test_torn_last_checkpoint_line_is_ignored(tmp_path):
    checkpoint = Checkpoint(tmp_path / "c.jsonl", fingerprint="fp")
    for r in evaluate(SCRIPTED_ITEMS[:2], ScriptedAssistant(), progress=False):
        checkpoint.append(r)
    with checkpoint.path.open("a", encoding="utf-8") as f:
        f.write('{"file": "t.jsonl", "id": "s3", "finger')  # killed mid-write
    assert set(checkpoint.load(SCRIPTED_ITEMS)) == {("t.jsonl", "s1"), ("t.jsonl", "s2")}


def test_threads_give_the_same_results_in_item_order():
    one = evaluate(SCRIPTED_ITEMS, ScriptedAssistant(), progress=False, workers=1)
    three = evaluate(SCRIPTED_ITEMS, ScriptedAssistant(), progress=False, workers=3)
    assert _without_latency(three) == _without_latency(one)


def test_fingerprint_follows_answer_settings_not_locations():
    docs = [DocumentInfo("a.txt", "A", sha256="1")]
    base = settings_fingerprint(Settings(data_dir="/x"), 10, docs)
    assert settings_fingerprint(Settings(data_dir="/y", port=1234), 10, docs) == base
    assert settings_fingerprint(Settings(data_dir="/x", generator="openai"), 10, docs) != base
    assert settings_fingerprint(Settings(data_dir="/x"), 5, docs) != base
    assert settings_fingerprint(Settings(data_dir="/x"), 10, [DocumentInfo("a.txt", "A", sha256="2")]) != base


# --- bad items: recorded as error items, never the end of a run -----------------------------------

BAD_SET_LINES = [
    '{"id": "ok1", "question": "GDP增长多少？", "answer_keys": ["6%"], "evidence": [{"doc": "d.txt", "quote": "增长6%"}], "category": "numeric"}',
    '{"id": "empty", "question": "", "answer_keys": ["x"]}',
    '{"id": "blank", "question": "  \\u3000 "}',
    '{"id": "number", "question": 123}',
    '{"id": "noq", "answer_keys": ["x"]}',
    'this line is not JSON',
    '["a", "list"]',
    '{"id": "keys", "question": "常住人口多少？", "answer_keys": "313.4万"}',
    '{"id": "ev", "question": "常住人口多少？", "evidence": [3]}',
    '',
    '{"id": "ok2", "question": "常住人口多少？", "answer_keys": ["313.4万"], "evidence": [{"doc": "d.txt", "quote": "313.4万人"}], "category": "numeric"}',
]


def _bad_set(tmp_path, extra: bytes = b""):
    f = tmp_path / "bad.jsonl"
    f.write_bytes("\n".join(BAD_SET_LINES).encode("utf-8") + b"\n" + extra)
    return f


def test_bad_lines_become_error_items_with_their_messages(tmp_path):
    items = load_eval_set(_bad_set(tmp_path, extra=b'{"id": "latin1", "question": "\xe9t\xe9"}\n'))
    by_id = {i.id: i for i in items}
    assert [i.id for i in items] == ["ok1", "empty", "blank", "number", "noq", "bad-6", "bad-7", "keys", "ev", "ok2", "bad-12"]
    assert not by_id["ok1"].error and not by_id["ok2"].error and by_id["ok2"].answer_keys == ["313.4万"]
    expected = {
        "empty": "bad.jsonl:2: the question is empty",
        "blank": "bad.jsonl:3: the question is empty",
        "number": "bad.jsonl:4: the question is a number, not a string",
        "noq": 'bad.jsonl:5: no "question" field',
        "keys": 'bad.jsonl:8: "answer_keys" is a string, not a list of strings',
        "ev": 'bad.jsonl:9: "evidence"[0] is a number, not an object',
    }
    for item_id, message in expected.items():
        assert by_id[item_id].error == message
    assert by_id["bad-6"].error.startswith("bad.jsonl:6: not valid JSON (")
    assert by_id["bad-7"].error == "bad.jsonl:7: not a JSON object but a list"
    assert by_id["bad-12"].error.startswith("bad.jsonl:12: not UTF-8 text")
    # the ids stay unique (line numbers stand in for missing ids), so the set loads as a whole
    assert len(load_eval_sets([tmp_path / "bad.jsonl"])) == 11


def test_a_json_line_with_a_line_separator_inside_a_string_is_one_item(tmp_path):
    f = tmp_path / "sep.jsonl"
    f.write_text(json.dumps({"id": "s", "question": "第一行\u2028第二行？"}, ensure_ascii=False) + "\r\n", encoding="utf-8")
    (item,) = load_eval_set(f)
    assert not item.error and item.question == "第一行\u2028第二行？"


class RaisingAssistant(ScriptedAssistant):
    """The scripted assistant, except that some questions make it raise."""

    def __init__(self, raises: dict[str, BaseException]):
        super().__init__()
        self.raises = raises

    def ask(self, question, filters=None):
        if question in self.raises:
            self.asked.append(question)
            raise self.raises[question]
        return super().ask(question, filters)


def test_a_run_goes_on_past_bad_items_and_answering_errors(tmp_path):
    from qa_app.question import QuestionError

    items = load_eval_set(_bad_set(tmp_path))
    assistant = RaisingAssistant({"常住人口多少？": RuntimeError("index exploded")})
    checkpoint = Checkpoint(tmp_path / "c.jsonl", fingerprint="fp")
    results = evaluate(items, assistant, progress=False, on_result=checkpoint.append)
    assert [r.item.id for r in results] == [i.id for i in items]  # every item, in order
    assert assistant.asked == ["GDP增长多少？", "常住人口多少？"]  # bad items are never asked
    ok1, ok2 = results[0], results[-1]
    assert ok1.correct and not ok1.error
    assert ok2.error == "bad.jsonl: id ok2: RuntimeError: index exploded"
    assert sum(1 for r in results if r.error) == 9

    # the rates are over the one item that ran; the error items are counted apart
    m = summarise(results)
    assert m["n"] == 1 and m["answer_accuracy"] == 1.0 and m["recall@1"] == 0.0 and m["recall@5"] == 1.0
    doc = results_document(results, {"top_k": 10})
    assert doc["errors"] == 9 and list(doc["metrics"]) == list(summarise(hand_results()))
    assert doc["by_category"] == {"numeric": {"n": 1, "recall@5": 1.0, "correct": 1.0}}
    errored = {i["id"]: i for i in doc["items"] if i["error"]}
    assert errored["empty"]["error"] == "bad.jsonl:2: the question is empty" and errored["empty"]["question"] == ""
    assert errored["number"]["question"] == "" and errored["number"]["raw"] == {"id": "number", "question": 123}
    assert errored["ev"]["evidence"] == [] and errored["ev"]["raw"]["evidence"] == [3]  # well-formed for readers
    assert json.loads(json.dumps(doc, allow_nan=False))["errors"] == 9
    assert format_table(doc["metrics"], errors=doc["errors"]).endswith("| n | 1 |\n| errors | 9 |")

    # error items are not saved as done: a resumed run tries them again
    assert set(checkpoint.load(items)) == {("bad.jsonl", "ok1")}

    # an answerer's own complaint about a question reads as its message
    refused = RaisingAssistant({"GDP增长多少？": QuestionError("问题过长。(The question is too long.)")})
    (r,) = evaluate(items[:1], refused, progress=False)
    assert r.error == "bad.jsonl: id ok1: 问题过长。(The question is too long.)"


def test_a_model_that_fails_one_item_is_an_error_item_but_an_unreachable_one_stops_the_run(tmp_path):
    from qa_app.llm.base import GeneratorError

    items = [i for i in load_eval_set(_bad_set(tmp_path)) if not i.error]
    flaky = RaisingAssistant({"GDP增长多少？": GeneratorError("the model returned nothing")})
    first, second = evaluate(items, flaky, progress=False)
    assert first.error == "bad.jsonl: id ok1: the answerer failed: the model returned nothing"
    assert second.correct and not second.error
    down = RaisingAssistant({"GDP增长多少？": GeneratorError("connection refused", unavailable=True)})
    with pytest.raises(GeneratorError, match="connection refused"):
        evaluate(items, down, progress=False)


def test_error_items_in_the_report_and_the_saved_results(tmp_path):
    from qa_app.eval.report import failure_kinds, render_markdown, write_report

    items = load_eval_set(_bad_set(tmp_path))
    results = evaluate(items, ScriptedAssistant(), progress=False)
    doc = results_document(results, {"top_k": 10})
    kinds = {i["id"]: failure_kinds(i) for i in doc["items"]}
    assert kinds["empty"] == ["error"] and kinds["bad-6"] == ["error"] and kinds["ok1"] == []
    md = render_markdown(doc)
    assert "| errors | 8 |" in md and "- error: bad.jsonl:2: the question is empty" in md
    assert "Failed items (8 of 10)" in md and "- expected" not in md.split("### empty")[1].split("###")[0]
    page = write_report(doc, tmp_path / "rep").read_text(encoding="utf-8")
    assert "<th>error</th><td>bad.jsonl:4: the question is a number, not a string</td>" in page
    assert "<td>errors</td><td>8</td>" in page
    # a saved result round-trips with its error
    r = next(r for r in results if r.error)
    assert ItemResult.from_fields(r.item, r.result_fields()).error == r.error


def test_everything_fails_and_the_report_still_renders(tmp_path):
    from qa_app.eval.report import write_report

    f = tmp_path / "all_bad.jsonl"
    f.write_text('{"question": ""}\nnot json\n', encoding="utf-8")
    results = evaluate(load_eval_set(f), ScriptedAssistant(), progress=False)
    doc = results_document(results, {"top_k": 10})
    assert doc["errors"] == 2 and doc["metrics"]["n"] == 0 and doc["metrics"]["answer_accuracy"] == 0.0
    assert write_report(doc, tmp_path / "rep").is_file()


@pytest.mark.slow
def test_eval_command_reports_error_items_and_finishes(seeds_index, tmp_path):
    from .test_cli import run

    lines = DEV_SET.read_text(encoding="utf-8").splitlines()[:2]
    f = tmp_path / "mixed.jsonl"
    f.write_text("\n".join([lines[0], '{"id": "e1", "question": ""}', "{not json", '{"id": "e2", "question": ["列表"]}',
                            '{"id": "e3", "question": "\U0001f44d"}', lines[1]]) + "\n", encoding="utf-8")
    out = run(["eval", str(f), "--quiet", "--json", str(tmp_path / "r.json")], seeds_index.data_dir)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    assert "4 of 6 items could not be run" in out.stderr and "mixed.jsonl:2: the question is empty" in out.stderr
    assert "| n | 2 |" in out.stdout and "| errors | 4 |" in out.stdout
    doc = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert doc["errors"] == 4 and doc["metrics"]["n"] == 2 and len(doc["items"]) == 6
    e3 = next(i for i in doc["items"] if i["id"] == "e3")
    assert "no letters or digits" in e3["error"]  # the answerer's own check, met while running
    assert [i["id"] for i in doc["items"] if not i["error"]] == [json.loads(lines[0])["id"], json.loads(lines[1])["id"]]


def test_withheld_evidence_keeps_every_passage_that_holds_it_out_of_the_answer(assistant):
    """Asked with its evidence withheld, a question meets only other passages: none of them holds
    a quote of the evidence, it counts as unanswerable, and a refusal is the right outcome."""
    from qa_app.eval.withheld import CATEGORY, withheld_items

    items = [i for i in load_eval_set(DEV_SET) if i.id in {"d001", "d002", "d003", "d004", "d005", "d016"}]
    unanswerable = [i for i in load_eval_set(DEV_SET) if not i.answerable][:1]
    chunks = list(assistant.index.snapshot().chunks.values())
    withheld, skipped = withheld_items(items + unanswerable, chunks)
    assert skipped == 1 and len(withheld) == len(items)
    for before, after in zip(items, withheld):
        assert after.category == CATEGORY and not after.answerable and not after.evidence and after.withhold
        quotes = [match_form(e["quote"]) for e in before.evidence]
        assert all(any(q in match_form(c.text) for q in quotes) for c in chunks if c.chunk_id in after.withhold)
        assert after.digest() != before.digest()  # never mixed with a plain run's checkpointed result
    results = evaluate(withheld, assistant, top_k=10, progress=False)
    for r in results:
        assert not r.error
        shown = {p["chunk_id"] for p in r.retrieved} | {c["chunk_id"] for c in r.citations}
        assert not shown & r.item.withhold
    summary = summarise(results)
    assert summary["n"] == len(items) and 0.0 <= summary["refusal_accuracy"] <= 1.0


def test_an_item_whose_evidence_is_not_indexed_cannot_be_withheld(assistant):
    from qa_app.eval.withheld import withheld_items

    item = EvalItem("x1", "GDP增长多少？", ["6%"], [{"doc": "nowhere.txt", "quote": "增长6%"}], "numeric", file="t.jsonl")
    (out,), skipped = withheld_items([item], list(assistant.index.snapshot().chunks.values()))
    assert skipped == 0 and "nothing to withhold" in out.error
