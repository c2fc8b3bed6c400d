"""The sentence vectors' view follows document changes without a rebuild and answers like one built whole."""
import hashlib

import numpy as np

from qa_app.index.sentences import SentenceVectors, units
from qa_app.models import Chunk
from qa_app.text import normalize

from .conftest import SEEDS

DIM = 16


def _sentences() -> list[str]:
    """The seeds' sentence units, in order, each once."""
    out: dict[str, None] = {}
    for path in sorted(SEEDS.glob("*.txt")):
        for line in path.read_text(encoding="utf-8").splitlines():
            out.update(dict.fromkeys(units(normalize(line))))
    return list(out)


def _vector(unit: str) -> list[float]:
    """A fixed vector per unit (what the embedding cache would hold for it)."""
    seed = int.from_bytes(hashlib.sha256(unit.encode()).digest()[:8], "little")
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return (v / np.linalg.norm(v)).tolist()


def _document(doc_id: str, sentences: list[str], per_chunk: int = 3) -> tuple:
    chunks = []
    for i in range(0, len(sentences), per_chunk):
        norm = "".join(s if s.endswith("。") else s + "。" for s in sentences[i : i + per_chunk])
        chunks.append(Chunk(f"{doc_id}#{i}", doc_id, i, norm, norm, "", 0, len(norm)))
    return tuple(chunks)


def _triples(part: tuple) -> list[tuple[str, str, str]]:
    """(chunk id, unit, cache key) of a document's chunks."""
    return [(c.chunk_id, u, "h" + u) for c in part for u in units(c.norm)]


def _fetch(asked: list[set[str]]):
    def fetch(keys: set[str]) -> dict[str, list[float]]:
        asked.append(set(keys))
        return {k: _vector(k[1:]) for k in keys}
    return fetch


def _answers(view: SentenceVectors, queries: np.ndarray, keys: list[str]) -> list:
    mask = np.arange(len(view.chunk_ids)) % 2 == 0
    return [(view.best_chunks(q, 25), view.best_chunks(q, 10, mask), view.similarities(keys, q)) for q in queries]


def test_a_view_changed_document_by_document_answers_like_one_built_whole_and_old_views_stay_as_they_were():
    pool = _sentences()
    assert len(pool) > 2250
    rng = np.random.default_rng(7)
    queries = rng.standard_normal((6, DIM)).astype(np.float32)
    docs = {"a": pool[:200], "b": pool[200:500], "c": pool[500:700]}
    by_doc = {d: _document(d, s) for d, s in sorted(docs.items())}
    asked: list[set[str]] = []
    view = SentenceVectors.updated(None, by_doc, _triples, _fetch(asked))
    kept = []  # (a view, what it answered when it was the newest)
    rows_seen = {id(view.rows)}
    at = 700
    steps = [("b", 300)] * 4 + [("d", 200), ("a", None), ("c", 150)]
    for doc, size in steps:
        probe = [u for part in by_doc.values() for c in part[:5] for u in units(c.norm)]
        kept.append((view, _answers(view, queries, probe), probe))
        by_doc = dict(by_doc)
        if size is None:
            del by_doc[doc]
        else:
            by_doc[doc] = _document(doc, pool[at : at + size])
            at += size
        by_doc = dict(sorted(by_doc.items()))
        asked.clear()
        view = SentenceVectors.updated(view, by_doc, _triples, _fetch(asked))
        rows_seen.add(id(view.rows))
        # Only the changed document's new sentences were looked up.
        assert set().union(*asked) <= ({"h" + u for c in by_doc[doc] for u in units(c.norm)} if size else set())
        whole = SentenceVectors.updated(None, by_doc, _triples, _fetch([]))
        probe = [u for part in by_doc.values() for c in part[:5] for u in units(c.norm)]
        assert view.chunk_ids == whole.chunk_ids == [c.chunk_id for part in by_doc.values() for c in part]
        assert _answers(view, queries, probe) == _answers(whole, queries, probe)
        live = len(set(whole.rows.row))
        assert view.fill <= 2 * live + 1024  # rows nobody uses any more are dropped
    assert len(rows_seen) > 1  # replacing b again and again compacted the rows at least once
    for old, answered, probe in kept:
        assert _answers(old, queries, probe) == answered


def test_ties_go_to_the_earlier_chunk_and_chunks_without_sentences_are_never_returned():
    pool = _sentences()
    same = pool[0]
    by_doc = {"a": (Chunk("a#0", "a", 0, "短", "短", "", 0, 1),), "b": _document("b", [same, pool[1]], 1),
              "c": _document("c", [same], 1)}
    view = SentenceVectors.updated(None, by_doc, _triples, _fetch([]))
    q = np.asarray(_vector(units(by_doc["c"][0].norm)[0]), dtype=np.float32)
    hits = view.best_chunks(q, 10)
    assert [c for c, _ in hits[:2]] == ["b#0", "c#0"] and hits[0][1] == hits[1][1]
    assert "a#0" not in [c for c, _ in hits] and len(hits) == 3


def test_a_sentence_listing_several_figures_is_also_read_clause_by_clause():
    from qa_app.index.sentences import clause_units, clauses, search_units

    goals = "今年主要预期目标是:地区生产总值增长5%左右,城镇新增就业45万人,居民消费价格涨幅2%左右。"
    assert clauses(goals) == ["今年主要预期目标是:", "地区生产总值增长5%左右,", "城镇新增就业45万人,", "居民消费价格涨幅2%左右。"]
    # A short lead-in ("其中,") says nothing of its own: it stays with what follows, one clause.
    assert clauses("其中,城镇新增就业45万人。") == []
    # Nor is a figure cut at its thousands separator or a time at its colon.
    assert clauses("地区生产总值达到12,345.6亿元,同比增长5.2%左右。") == ["地区生产总值达到12,345.6亿元,", "同比增长5.2%左右。"]
    assert clauses("会议于8:30开始,一直持续到下午5点。") == ["会议于8:30开始,", "一直持续到下午5点。"]
    text = goals + "其中,城镇新增就业45万人。"
    assert search_units(text) == units(text) + clause_units(text)
    assert search_units(text, with_clauses=False) == units(text) == [goals, "其中,城镇新增就业45万人。"]
    # The clauses of a sentence longer than a unit reach past the unit's end.
    long = "，".join(f"第{i}项指标增长{i}%" for i in range(1, 30)) + "。"
    assert len(units(long)[0]) < len(long) and any("第29项" in c for c in clause_units(long))
