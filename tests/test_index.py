"""Ingestion into the real index: idempotence, updates, deletes, Chroma and BM25 in step."""
import shutil
from functools import partial
from pathlib import Path

import pytest

from qa_app.config import Settings
from qa_app.index.store import Index
from qa_app.ingest.pipeline import ingest

from .conftest import SEEDS, seed


def _consistent(index: Index) -> None:
    ids = set(index.catalog.chunk_ids())
    assert index.vectors.all_ids() == ids
    assert set(index.bm25.ids) == ids
    assert len(ids) == index.catalog.count_chunks()


def test_seed_index_is_whole(seeds_index):
    assert {d.doc_id for d in seeds_index.documents()} == {p.name for p in SEEDS.glob("*.txt")}
    assert 300 < len(seeds_index) < 700
    _consistent(seeds_index)
    titles = {d.doc_id[:3]: d for d in seeds_index.documents()}
    assert titles["003"].title == "北京市海淀区国民经济和社会发展第十三个五年规划纲要"
    assert titles["002"].script == "traditional" and titles["000"].date == "2024-01-16"


def test_reingesting_unchanged_files_does_nothing(seeds_index):
    before = sorted(seeds_index.catalog.chunk_ids())
    version = seeds_index.catalog.version()
    report = ingest([SEEDS], seeds_index, progress=False)
    assert len(report.unchanged) == 5 and not report.added and not report.updated and report.chunks == 0
    assert sorted(seeds_index.catalog.chunk_ids()) == before
    assert seeds_index.catalog.version() == version
    _consistent(seeds_index)


@pytest.fixture()
def small_index(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(seed("002"), docs / "review.txt")
    index = Index(Settings(data_dir=tmp_path / "data"))
    report = ingest([docs], index, progress=False)
    assert report.added == ["review.txt"]
    return index, docs / "review.txt"


def test_changed_file_replaces_its_chunks(small_index):
    index, path = small_index
    old = set(index.catalog.chunk_ids())
    cached = index.catalog.db.execute("SELECT COUNT(*) FROM embedding_cache").fetchone()[0]
    path.write_text(path.read_text(encoding="utf-8") + "\n\n新增段落：全区新建口袋公园12处。\n", encoding="utf-8")
    report = ingest([path.parent], index, progress=False)
    assert report.updated == ["review.txt"]
    new = set(index.catalog.chunk_ids())
    assert any("口袋公园12处" in c.text for c in index.chunks())
    assert len(new) >= len(old) and new != old
    _consistent(index)
    # Unchanged chunk texts were not embedded again: the cache already had them.
    # Unchanged sentences were not embedded again: only the new paragraph's sentence was.
    assert index.catalog.db.execute("SELECT COUNT(*) FROM embedding_cache").fetchone()[0] <= cached + 2


def test_delete_document(small_index):
    index, _ = small_index
    assert index.delete_document("review.txt")
    assert len(index) == 0 and index.vectors.count() == 0
    _consistent(index)
    assert not index.delete_document("review.txt")


def test_readers_see_whole_snapshots_while_a_document_is_replaced(small_index):
    import threading

    index, path = small_index
    from qa_app.answer import Assistant

    assistant = Assistant(index.settings, index=index)
    errors: list[BaseException] = []
    stop = threading.Event()

    def ask_loop():
        while not stop.is_set():
            try:
                assistant.search("2019年海淀家庭医生团队", k=5)
            except BaseException as exc:  # noqa: BLE001 - any failure is the finding
                errors.append(exc)

    threads = [threading.Thread(target=ask_loop) for _ in range(3)]
    for t in threads:
        t.start()
    for n in range(3):
        path.write_text(path.read_text(encoding="utf-8") + f"\n\n补充段落{n}：新建口袋公园{n + 10}处。\n", encoding="utf-8")
        ingest([path.parent], index, progress=False)
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    _consistent(index)


def test_a_broken_file_fails_alone(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.txt").write_text("第一章 总则\n全区常住人口控制在312.6万人以内。\n", encoding="utf-8")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 garbage")
    (docs / "empty.txt").write_bytes(b"")
    index = Index(Settings(data_dir=tmp_path / "data"))
    report = ingest([docs, tmp_path / "missing.txt"], index, progress=False)
    assert report.added == ["good.txt"]
    assert set(report.failed) == {str(docs / "broken.pdf"), str(docs / "empty.txt"), str(tmp_path / "missing.txt")}
    assert "PDF" in report.failed[str(docs / "broken.pdf")]
    _consistent(index)


# --- incremental updates: an index changed step by step is the index built from its final documents ---
def _tokens(rng, vocab: list[str], rows: int) -> list[list[str]]:
    return [[rng.choice(vocab[: rng.randint(20, len(vocab))]) for _ in range(rng.randint(0, 40))] for _ in range(rows)]


def test_bm25_updated_step_by_step_scores_exactly_like_a_fresh_build(tmp_path):
    import random

    import numpy as np

    from qa_app.index.bm25 import BM25Index

    rng = random.Random(7)
    vocab = [f"t{i}" for i in range(800)]
    docs = {f"doc{i:02d}": _tokens(rng, vocab, rng.randint(1, 25)) for i in range(30)}

    def entry(d):
        return d, [f"{d}#{j}" for j in range(len(docs[d]))], docs[d]

    bm25 = BM25Index.from_documents([])
    for d in rng.sample(sorted(docs), len(docs)):  # added in any order
        bm25 = bm25.updated(set(), [entry(d)])
    deleted = {"doc03", "doc17"}
    bm25 = bm25.updated(deleted, [])
    stored = []
    for _ in range(120):  # replacements, enough for the dead rows to be swept out more than once
        d = rng.choice(sorted(set(docs) - deleted))
        docs[d] = _tokens(rng, vocab, rng.randint(1, 25))
        bm25 = bm25.updated(set(), [entry(d)])
        stored.append(bm25.tf.shape[0])
    assert max(stored) > len(bm25) and min(stored[stored.index(max(stored)):]) < max(stored)  # swept
    fresh = BM25Index.from_documents([entry(d) for d in sorted(set(docs) - deleted)])
    flat = BM25Index.build(fresh.ids, [t for d in sorted(set(docs) - deleted) for t in docs[d]])
    assert bm25.ids == fresh.ids == flat.ids
    for _ in range(200):
        query = [rng.choice(vocab + ["unknown"]) for _ in range(rng.randint(1, 6))]
        assert np.array_equal(bm25.scores(query), fresh.scores(query))  # bit for bit, not approximately
        assert np.array_equal(flat.scores(query), fresh.scores(query))
        assert bm25.search(query, 10) == fresh.search(query, 10)
        assert [bm25.term_idf(t) for t in query] == [fresh.term_idf(t) for t in query]
        assert [bm25.knows(t) for t in query] == [fresh.knows(t) for t in query]
    gone = [t for t in vocab if not fresh.knows(t)]
    assert all(not bm25.knows(t) and bm25.term_idf(t) is None for t in gone)
    # Saved and loaded (as a process start does), then changed again: still the same index.
    bm25.save(tmp_path / "bm25.npz", {"version": 1})
    loaded, stamp = BM25Index.load(tmp_path / "bm25.npz")
    assert stamp["version"] == 1 and loaded.ids == fresh.ids
    docs["doc05"] = _tokens(rng, vocab, 9)
    loaded, fresh = loaded.updated({"doc09"}, [entry("doc05")]), fresh.updated({"doc09"}, [entry("doc05")])
    for _ in range(50):
        query = [rng.choice(vocab) for _ in range(rng.randint(1, 6))]
        assert np.array_equal(loaded.scores(query), fresh.scores(query))
    (tmp_path / "bm25.npz").write_bytes(b"PK\x03\x04 cut short")
    assert BM25Index.load(tmp_path / "bm25.npz") is None and BM25Index.load(tmp_path / "none.npz") is None


def test_catalog_change_log_names_the_changed_documents(tmp_path):
    from qa_app.index.catalog import Catalog
    from qa_app.models import Chunk, DocumentInfo

    cat = Catalog(tmp_path / "catalog.sqlite")
    v0 = cat.version()
    for name in ("a.txt", "b.txt"):
        chunk = Chunk(f"{name}#0", name, 0, "全区新建口袋公园12处。", "全区新建口袋公园12处。", "", 0, 12)
        cat.replace_documents([(DocumentInfo(name, name), [chunk], [["口袋", "公园"]])], "now")
    v1 = cat.version()
    assert v1 == v0 + 2 and cat.changed_between(v0, v1) == {"a.txt", "b.txt"}
    cat.delete_document("a.txt")
    assert cat.changed_between(v1, cat.version()) == {"a.txt"} and cat.changed_between(v1, v1) == set()
    cat.start_version_at(cat.version() + 50)  # as a rebuilt catalog does: versions the log never saw
    assert cat.changed_between(v1, cat.version()) is None
    cat.close()


def _exact_dense(index: Index, query: str, k: int, doc_ids=None, snap=None, vector=None):
    """Dense search by exact cosine over the embedding cache (the index's own fallback). Chroma's
    HNSW answers approximately, and its distances differ in the last digits between a vector in
    its write buffer and one in its graph: two stores holding the same vectors need not agree,
    which says nothing about the view this compares."""
    snap = snap or index.snapshot()
    vector = vector if vector is not None else index.query_vector(query)
    return index.vectors_from_cache(snap).search(vector, k, doc_ids)


def _same_view(a: Index, b: Index, questions: list[str]) -> None:
    import numpy as np

    from qa_app.answer import Assistant
    from qa_app.index.query import Query
    from qa_app.index.sentences import units

    sa, sb = a.snapshot(), b.snapshot()
    assert list(sa.chunks.items()) == list(sb.chunks.items())
    assert list(sa.docs.items()) == list(sb.docs.items())
    assert sa.corpus == sb.corpus and list(sa.row_doc) == list(sb.row_doc) and sa.bm25.ids == sb.bm25.ids
    for q in questions:
        tokens = Query.parse(q).bm25_tokens()
        assert np.array_equal(sa.bm25.scores(tokens), sb.bm25.scores(tokens)), q
        assert [sa.bm25.term_idf(t) for t in tokens] == [sb.bm25.term_idf(t) for t in tokens], q
    # The sentence vectors too, though one side was built step by step from the previous view's
    # (to float32 rounding: see below).
    va, vb = a.sentence_vectors(), b.sentence_vectors()
    assert va.chunk_ids == vb.chunk_ids == list(sa.chunks)
    for q in questions:
        qv = a.question_vector(Query.parse(q))
        best_a, best_b = va.best_chunks(qv, 30), vb.best_chunks(qv, 30)
        assert [c for c, _ in best_a] == [c for c, _ in best_b], q
        assert [s for _, s in best_a] == pytest.approx([s for _, s in best_b], abs=1e-6), q
        keys = [u for c in list(sa.chunks.values())[:40] for u in units(c.norm)]
        sims_a, sims_b = va.similarities(keys, qv), vb.similarities(keys, qv)
        assert sims_a.keys() == sims_b.keys() and len(sims_a) > 40
        assert list(sims_a.values()) == pytest.approx(list(sims_b.values()), abs=1e-6), q
    for index in (a, b):
        index.dense_search = partial(_exact_dense, index)
    search_a, search_b = Assistant(a.settings, index=a), Assistant(b.settings, index=b)
    for q in questions:
        hits_a, hits_b = search_a.search(q, k=8), search_b.search(q, k=8)
        # The same passages; their scores to float32 rounding, since a sentence's similarity is
        # summed in an order that depends on where its row sits in the matrix (BLAS takes rows in
        # blocks), and a view kept up to date step by step holds its rows elsewhere than one built whole.
        assert [p.chunk.chunk_id for p in hits_a] == [p.chunk.chunk_id for p in hits_b], q
        assert [p.score for p in hits_a] == pytest.approx([p.score for p in hits_b], rel=1e-6, abs=1e-9), q


def _dev_questions(n: int) -> list[str]:
    import json

    from .conftest import DEV_SET

    return [json.loads(line)["question"] for line in DEV_SET.read_text(encoding="utf-8").splitlines()[:n]]


def _three_seeds(tmp_path) -> Path:
    """A folder with the first three seeds, to change document by document."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for prefix in ("000", "001", "002"):
        shutil.copy(seed(prefix), docs)
    return docs


def test_index_changed_document_by_document_answers_like_one_built_whole(tmp_path, seeds_index):
    from .test_integrity import data_dir_with_cache

    questions = _dev_questions(25)
    docs = _three_seeds(tmp_path)
    stepped = Index(Settings(data_dir=data_dir_with_cache(tmp_path / "a", seeds_index)), embeddings=seeds_index.embeddings)
    ingest([docs], stepped, progress=False)
    # Another reader of the same folder (an API process while the CLI ingests) follows the change log too.
    reader = Index(Settings(data_dir=stepped.data_dir), embeddings=seeds_index.embeddings)
    stepped.sentence_vectors(), reader.sentence_vectors()
    full_loads = []
    for index in (stepped, reader):
        whole = index.catalog.all_chunks
        index.catalog.all_chunks = lambda *args, whole=whole, **kw: full_loads.append(1) or whole(*args, **kw)

    for prefix in ("003", "004"):  # added
        shutil.copy(seed(prefix), docs)
        ingest([docs], stepped, progress=False)
        stepped.sentence_vectors()
    edited = next(docs.glob("001_*.txt"))  # replaced
    edited.write_text(edited.read_text(encoding="utf-8") + "\n\n新增段落：全区新建口袋公园12处。\n", encoding="utf-8")
    ingest([docs], stepped, progress=False)
    assert any("口袋公园12处" in c.text for c in stepped.snapshot().chunks.values())
    for prefix in ("002", "003"):  # deleted
        path = next(docs.glob(f"{prefix}_*.txt"))
        assert stepped.delete_document(path.name)
        path.unlink()
        stepped.sentence_vectors()
    reader.sentence_vectors()
    assert not full_loads  # every step was taken from the log, not by reloading the catalog

    whole = Index(Settings(data_dir=data_dir_with_cache(tmp_path / "b", seeds_index)), embeddings=seeds_index.embeddings)
    ingest([docs], whole, progress=False)
    assert len(whole.documents()) == 3
    _same_view(stepped, whole, questions)
    _same_view(reader, whole, questions)


def test_ingest_streams_each_file_is_committed_before_the_next_is_read(tmp_path, seeds_index, monkeypatch):
    from qa_app.ingest import pipeline

    from .test_integrity import data_dir_with_cache

    index = Index(Settings(data_dir=data_dir_with_cache(tmp_path, seeds_index)), embeddings=seeds_index.embeddings)
    indexed_when_read = []
    real = pipeline.prepare

    def prepare(path, settings, sha256):
        indexed_when_read.append(len(index.catalog.documents()))
        return real(path, settings, sha256)

    monkeypatch.setattr(pipeline, "prepare", prepare)
    report = ingest([SEEDS], index, progress=False)
    assert len(report.added) == 5 and indexed_when_read == [0, 1, 2, 3, 4]


def _saved(index: Index) -> None:
    """Wait for the background save of the BM25 file."""
    import threading

    for thread in threading.enumerate():
        if thread.name == "save-bm25":
            thread.join(60)


def _started(data_dir, seeds_index):
    """A new process's index, and the documents whose token lists its first view read."""
    index = Index(Settings(data_dir=data_dir), embeddings=seeds_index.embeddings)
    whole, some, token_reads = index.catalog.all_chunks, index.catalog.document_chunks, []

    def all_chunks(tokens=True):
        chunks, lists = whole(tokens)
        token_reads.extend(sorted({c.doc_id for c in chunks}) if tokens else [])
        return chunks, lists

    def document_chunks(doc_ids):
        token_reads.extend(sorted(doc_ids))
        return some(doc_ids)

    index.catalog.all_chunks, index.catalog.document_chunks = all_chunks, document_chunks
    index.snapshot()
    return index, sorted(token_reads)


def test_a_new_process_starts_from_the_saved_bm25_brought_up_to_date_by_the_log(tmp_path, seeds_index):
    from qa_app.index.store import BM25_FILE

    from .test_integrity import data_dir_with_cache

    questions = _dev_questions(15)
    docs = _three_seeds(tmp_path)
    data = data_dir_with_cache(tmp_path / "a", seeds_index)
    first = Index(Settings(data_dir=data), embeddings=seeds_index.embeddings)
    ingest([docs], first, progress=False)
    first.snapshot()
    _saved(first)
    assert (data / BM25_FILE).is_file()
    # Changed after the file was saved (by this process or any other): the log says what.
    shutil.copy(seed("003"), docs)
    ingest([docs], first, progress=False)
    gone = next(docs.glob("002_*.txt"))
    assert first.delete_document(gone.name)
    gone.unlink()

    later, token_reads = _started(data, seeds_index)
    added = next(docs.glob("003_*.txt")).name
    # Every token list but the changed documents' (one added, one deleted) came from the file.
    assert token_reads == sorted([added, gone.name])
    built = Index(Settings(data_dir=data_dir_with_cache(tmp_path / "b", seeds_index)), embeddings=seeds_index.embeddings)
    ingest([docs], built, progress=False)
    _same_view(later, built, questions)
    _saved(later)

    (data / BM25_FILE).write_bytes(b"not a numpy file")  # a damaged file is only a missed shortcut
    damaged, token_reads = _started(data, seeds_index)
    assert token_reads == sorted(p.name for p in docs.iterdir())
    _same_view(damaged, built, questions)
    _saved(damaged)
    first.catalog.start_version_at(first.catalog.version() + 10)  # versions the log never saw: not trusted
    skipped, token_reads = _started(data, seeds_index)
    assert token_reads == sorted(p.name for p in docs.iterdir())
    _same_view(skipped, built, questions)
    _saved(skipped)


def test_a_whole_view_reads_the_token_lists_a_few_documents_at_a_time_and_survives_a_change_meanwhile(tmp_path, seeds_index):
    from qa_app.index import store

    from .test_integrity import data_dir_with_cache

    docs = _three_seeds(tmp_path)
    index = Index(Settings(data_dir=data_dir_with_cache(tmp_path / "a", seeds_index)), embeddings=seeds_index.embeddings)
    ingest([docs], index, progress=False)
    chunks, lists = index.catalog.all_chunks()
    batches = []
    some = index.catalog.document_chunks
    index.catalog.document_chunks = lambda doc_ids: batches.append(set(doc_ids)) or some(doc_ids)
    assert list(store._token_lists(index.catalog, chunks, batch_chunks=50)) == lists
    assert len(batches) == 3 and set().union(*batches) == {p.name for p in docs.iterdir()}  # one document a batch here
    # What the start-up file is built from: the same, by document.
    by_doc = list(store._document_tokens(index.catalog, index.catalog.chunk_counts(), batch_chunks=50))
    assert [d for d, _, _ in by_doc] == sorted(p.name for p in docs.iterdir())
    assert [i for _, ids, _ in by_doc for i in ids] == [c.chunk_id for c in chunks]
    assert [t for _, _, lists_ in by_doc for t in lists_] == lists and len(batches) == 6

    # Another writer replaces a document between the reading of the chunks and of their token lists.
    edited = next(docs.glob("001_*.txt"))
    edited.write_text("新增段落：全区新建口袋公园12处。\n\n" + edited.read_text(encoding="utf-8"), encoding="utf-8")
    ingest([docs], index, progress=False)
    now = {c.chunk_id for c in index.catalog.all_chunks(tokens=False)[0]}
    streamed = list(store._token_lists(index.catalog, chunks, batch_chunks=10_000))
    assert len(streamed) == len(chunks)
    for c, old, got in zip(chunks, lists, streamed):
        assert got == (old if c.chunk_id in now else [])
    assert any(c.chunk_id not in now for c in chunks)


def test_the_start_file_an_ingest_leaves_is_what_the_next_process_starts_from(tmp_path, seeds_index):
    from qa_app.index.store import BM25_FILE

    from .test_integrity import data_dir_with_cache

    docs = _three_seeds(tmp_path)
    data = data_dir_with_cache(tmp_path / "a", seeds_index)
    index = Index(Settings(data_dir=data), embeddings=seeds_index.embeddings)
    ingest([docs], index, progress=False)
    index.close()
    assert index.write_start_file() and (data / BM25_FILE).is_file()
    later, token_reads = _started(data, seeds_index)
    assert token_reads == []  # not one token list parsed
    built = Index(Settings(data_dir=data_dir_with_cache(tmp_path / "b", seeds_index)), embeddings=seeds_index.embeddings)
    ingest([docs], built, progress=False)
    _same_view(later, built, _dev_questions(10))


def test_the_sentence_channel_finds_a_figure_inside_a_sentence_that_lists_many(seeds_index):
    from qa_app.index.query import Query
    from qa_app.index.sentences import clause_units, units

    snap = seeds_index.snapshot()
    vectors = seeds_index.sentence_vectors(snap)
    # Every chunk's clauses were embedded at ingest beside its sentences, and the view reads them.
    clauses = {c.chunk_id: clause_units(c.norm) for c in snap.chunks.values()}
    assert sum(map(len, clauses.values())) > 1000
    assert all(len(vectors.similarities(cs, seeds_index.question_vector(Query.parse("海淀")))) == len(cs)
               for cs in list(clauses.values())[:50])
    # A clause of a long sentence, asked on its own: its chunk comes first, closer through the clause
    # than through the whole sentence.
    cid, clause, sentence = next((c.chunk_id, cs[3], s) for c in snap.chunks.values() if (cs := clause_units(c.norm))
                                 and len(cs) >= 6 for s in units(c.norm) if cs[3] in s)
    qv = seeds_index.question_vector(Query.parse(clause))
    assert vectors.best_chunks(qv, 1)[0][0] == cid
    sims = vectors.similarities([clause, sentence], qv)
    assert sims[clause] > sims[sentence]
