"""Hybrid retrieval over the real seeds."""
from qa_app.eval.metrics import hit_rank
from qa_app.eval.sets import load_eval_set, NO_ANSWER_CATEGORIES
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
    assert all(d.metadata["doc_id"] and d.metadata["title"] for d in docs)


def test_the_shipped_fusion_model_loads_and_a_misfit_one_is_refused_clearly(tmp_path):
    import json

    import pytest

    from qa_app.config import Settings
    from qa_app.index import fusion

    model = fusion.load()
    assert model.names == fusion.FEATURES and any(abs(w) > 0.05 for w in model.coef)
    assert "tune halves" in json.loads(fusion.BUILTIN.read_text(encoding="utf-8"))["fitted_on"]
    with pytest.raises(fusion.FusionModelError, match="无法读取"):
        fusion.load(tmp_path / "missing.json")
    d = json.loads(fusion.BUILTIN.read_text(encoding="utf-8"))
    d["ranker"]["names"] = d["ranker"]["names"][:-1]
    (tmp_path / "old.json").write_text(json.dumps(d), encoding="utf-8")
    with pytest.raises(fusion.FusionModelError, match="fit_retrieval"):
        fusion.load(tmp_path / "old.json")
    with pytest.raises(ValueError):
        Settings(fusion="bogus")


def test_fitted_fusion_and_hand_weights_both_find_the_dev_evidence(seeds_index):
    """The fitted fusion scores passages as probabilities, and the hand-weighted fusion stays available."""
    from qa_app.index.hybrid import HybridSearcher

    items = [i for i in load_eval_set(DEV_SET) if i.evidence and i.category not in NO_ANSWER_CATEGORIES]
    for fusion in ("model", "score"):
        searcher = HybridSearcher(seeds_index)
        searcher.settings = seeds_index.settings.model_copy(update={"fusion": fusion})
        found = [searcher.search(i.question, 5) for i in items]
        recall5 = sum(1 for i, ps in zip(items, found) if hit_rank(i, [(p.doc.doc_id, p.chunk.text) for p in ps])) / len(items)
        assert recall5 >= 0.9, (fusion, recall5)
        if fusion == "model":
            assert all(0 < p.score <= 1 for ps in found for p in ps)
            assert all(ps[0].score >= ps[-1].score for ps in found if ps)


def test_fit_retrieval_dumps_and_fits(seeds_index, tmp_path, monkeypatch):
    import json
    import sys

    from qa_app.index import fusion

    from .conftest import ROOT

    sys.path.insert(0, str(ROOT / "bench"))
    import fit_retrieval

    small = tmp_path / "small.jsonl"
    small.write_text("\n".join(DEV_SET.read_text(encoding="utf-8").splitlines()[:30]) + "\n", encoding="utf-8")
    dump = tmp_path / "ret.jsonl"
    monkeypatch.setattr(sys, "argv", ["fit_retrieval", "dump", "--eval", f"{small}:{seeds_index.data_dir}", "--out", str(dump)])
    fit_retrieval.main()
    records = [json.loads(line) for line in dump.read_text(encoding="utf-8").splitlines()]
    assert records and all(len(r["rows"]) == len(r["labels"]) and len(r["rows"][0]) == len(fusion.FEATURES) for r in records)
    assert sum(any(r["labels"]) for r in records) >= 0.9 * len(records)
    model = fit_retrieval.fit_ranker(records + [{**r, "half": "tune"} for r in records], 0.01)
    assert model.names == fusion.FEATURES
    assert "recall@1" in fit_retrieval.report(records, model)


def test_a_scoped_dense_search_filters_after_the_store_and_agrees_with_the_store_filtering(assistant):
    """Most scopes allow most of the index; the store's own filter costs in proportion to what it lets
    through, so the index filters the unfiltered neighbours itself: same chunks, same order."""
    import numpy as np

    from qa_app.index.query import Query

    index = assistant.index
    snap = index.snapshot()
    docs = sorted(snap.docs)
    vector = index.question_vector(Query.parse("海淀区常住人口是多少？"))
    for allowed in (set(docs), set(docs[:3]), {docs[0]}):
        assert (snap.allowed_mask(allowed) == np.isin(snap.row_doc, list(allowed))).all()
        ours = index._nearest(vector.tolist(), 20, allowed, snap)
        store = index.vectors.query(vector.tolist(), 20, allowed)
        assert ours and all(snap.chunks[c].doc_id in allowed for c, _ in ours)
        assert [c for c, _ in ours] == [c for c, _ in store]
    # The sentence channel takes the same mask: its chunks are laid out in the snapshot's order.
    sentences = index.sentence_vectors(snap)
    assert sentences.chunk_ids == list(snap.chunks)
    everywhere = sentences.best_chunks(vector, len(snap.chunks))
    for allowed in (set(docs[:3]), {docs[0]}):
        scoped = sentences.best_chunks(vector, 20, snap.allowed_mask(allowed))
        assert scoped == [hit for hit in everywhere if snap.chunks[hit[0]].doc_id in allowed][:20]


def test_the_question_vector_reads_what_is_asked_about(seeds_index):
    """The places that chose a question's documents, its years and plan periods leave its vector
    (the scope and the ranking's year inputs see them): in the vector they pulled towards any
    sentence naming 海淀 or a year. On the seeds' everyday-words set the sentence channel alone then
    finds the evidence among its top five far more often."""
    from qa_app.index.hybrid import HybridSearcher
    from qa_app.index.query import Query
    from qa_app.index.scope import resolve

    from .conftest import ROOT

    assert Query.parse("“十四五”时期2025年底海淀常住人口是多少？").topic().norm == "海淀常住人口是多少?"
    assert Query.parse("2023年呢？").topic().norm == "2023年呢?"  # nothing else to ask about: kept
    # Only times: not inside words, figures, ages, sessions or dates.
    for kept in ("目前年轻人失业率", "三十五岁以下青年人才补贴", "第十五届全运会", "十二月十五日", "人口超过2000万", "投资2050亿元"):
        assert Query.parse(kept).topic().norm == Query.parse(kept).norm, kept
    assert Query.parse("What was Anhui's GDP growth in 2025?").topic().norm == "What was Anhui's GDP growth ?"

    items = [i for i in load_eval_set(ROOT / "eval_sets" / "seeds_paraphrase.jsonl") if i.evidence]
    snap = seeds_index.snapshot()
    found = {}
    for way in ("asked", "topic"):
        searcher = HybridSearcher(seeds_index)
        searcher.settings = seeds_index.settings.model_copy(update={"question_vector": way})
        seeds_index.settings, kept = searcher.settings, seeds_index.settings
        try:
            hits = 0
            for item in items:
                query = Query.parse(item.question)
                scope = resolve(query.norm, list(snap.docs.values()))
                allowed = searcher.allowed(query, snap, None, scope)
                _, _, by_sentence, _ = searcher.channels(query, allowed, snap, True, True, scope.framing)
                top = [snap.chunks[cid] for cid, _ in by_sentence[:5]]
                hits += bool(hit_rank(item, [(c.doc_id, c.text) for c in top]))
        finally:
            seeds_index.settings = kept
        found[way] = hits / len(items)
    assert found["topic"] >= found["asked"] + 0.05, found
