"""Ingestion into the real index: idempotence, updates, deletes, Chroma and BM25 in step."""
import shutil

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
