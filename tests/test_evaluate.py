"""Metric definitions on small hand-checked cases, and the dev set's own integrity."""
import json

from qa_app.evaluate import EvalItem, ItemResult, answer_correct, hit_rank, load_eval_set, summarise

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
