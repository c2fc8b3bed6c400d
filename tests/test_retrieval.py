"""Hybrid retrieval over the real seeds."""
from qa_app.evaluate import NO_ANSWER_CATEGORIES, hit_rank, load_eval_set
from qa_app.index.hybrid import Filters, HybridRetriever

from .conftest import DEV_SET


def test_finds_known_passages(assistant):
    cases = {
        "2023年海淀区地区生产总值增长了多少？": "全区地区生产总值预计增长6%",
        "海淀區2019年建立了多少支家庭醫生團隊？": "建立653支家庭醫生團隊",
        "学院路街道的幸福食堂在哪里？": "海淀区学院路20号",
        "What was the resident population target in the 13th Five-Year Plan?": "312.6万人",
    }
    for question, quote in cases.items():
        texts = [p.chunk.text for p in assistant.search(question, k=5)]
        assert any(quote in t for t in texts), question


def test_dev_set_recall(assistant):
    items = [i for i in load_eval_set(DEV_SET) if i.evidence and i.category not in NO_ANSWER_CATEGORIES]
    ranks = [hit_rank(i, [(p.doc.doc_id, p.chunk.text) for p in assistant.search(i.question, k=5)]) for i in items]
    recall5 = sum(1 for r in ranks if r) / len(items)
    assert recall5 >= 0.9, recall5


def test_filters_by_document_and_year(assistant):
    only = "001_60e8294790c72958.txt"
    hits = assistant.search("地区生产总值", k=10, filters=Filters(doc_ids=frozenset({only})))
    assert hits and {p.doc.doc_id for p in hits} == {only}
    hits = assistant.search("地区生产总值", k=10, filters=Filters(years=frozenset({2019})))
    assert hits and {p.doc.year for p in hits} == {2019}
    assert assistant.search("地区生产总值", k=10, filters=Filters(years=frozenset({1999}))) == []


def test_langchain_retriever(assistant):
    retriever = HybridRetriever(searcher=assistant.searcher, k=3)
    docs = retriever.invoke("2024年海淀居民人均可支配收入增长多少")
    assert len(docs) == 3
    assert any("4.1%" in d.page_content for d in docs)
    assert all(d.metadata["doc"] and d.metadata["title"] for d in docs)
