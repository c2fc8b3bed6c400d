"""Crash safety: `qa-app ingest` SIGKILLed at chosen and random points leaves a usable index that
the next ingest completes; writers are serialised; queries keep answering during an ingest;
`qa-app doctor` finds and repairs drift.

Subprocesses start with an embedding cache copied from the session's seeds index, so they
spend their time writing, not embedding (the cache is part of what must survive a crash).
Everything a subprocess wrote is opened in this process only after that process ended:
Chroma's embedded client is not meant to be shared by live processes.
"""
from __future__ import annotations

import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qa_app.answer import Assistant
from qa_app.config import Settings
from qa_app.doctor import run_doctor
from qa_app.index.catalog import Catalog
from qa_app.index.lock import IndexBusyError, WriterLock
from qa_app.index.sentences import units
from qa_app.index.store import Index, text_hash
from qa_app.ingest.pipeline import ingest

from .conftest import SEEDS, seed

GDP_Q = "2023年海淀区地区生产总值增长了多少？"


# --- helpers ---------------------------------------------------------------------------------
def data_dir_with_cache(tmp_path: Path, seeds_index: Index, uncached: int = 0) -> Path:
    """A new data folder whose embedding cache holds the seeds' vectors, less ``uncached`` of the last report's."""
    data = tmp_path / "data"
    Catalog(data / "catalog.sqlite").close()
    db = sqlite3.connect(data / "catalog.sqlite")
    db.execute("ATTACH ? AS src", (str(seeds_index.catalog.path),))
    db.execute("INSERT INTO embedding_cache SELECT * FROM src.embedding_cache")
    if uncached:
        db.executemany("DELETE FROM embedding_cache WHERE text_hash=?", [(h,) for h in doc_hashes(seeds_index, "004")[:uncached]])
    db.commit()
    db.close()
    return data


def doc_hashes(seeds_index: Index, prefix: str) -> list[str]:
    """The embedding-cache keys of a seed's sentences (a chunk is embedded as its sentences)."""
    limit = seeds_index.settings.embedding_max_chars
    mine = [c for c in seeds_index.chunks() if c.doc_id.startswith(prefix)]
    return list(dict.fromkeys(text_hash(u[:limit]) for c in mine for u in units(c.norm)))


def cached_vectors(data: Path) -> int:
    with sqlite3.connect(data / "catalog.sqlite") as db:
        return db.execute("SELECT COUNT(*) FROM embedding_cache").fetchone()[0]


def qa_ingest_cmd(data: Path, source: Path = SEEDS) -> list[str]:
    return [sys.executable, "-m", "qa_app.cli", "ingest", str(source), "--data-dir", str(data), "-q"]


def run_cmd(cmd: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True, timeout=600)


def open_index(data: Path, seeds_index: Index) -> Index:
    return Index(Settings(data_dir=data), embeddings=seeds_index.embeddings)


def assert_answers(index: Index) -> None:
    answer = Assistant(index.settings, index=index).ask(GDP_Q)
    assert not answer.refused and "6%" in answer.text, answer.text


def assert_no_drift(index: Index) -> None:
    report = run_doctor(index.settings, repair=False, index=index)
    assert report.ok and not report.found, report.text()


def assert_whole(index: Index, seeds_index: Index) -> None:
    """All five seeds, exactly the reference chunks, each once, in catalog, Chroma and BM25."""
    expected = sorted(seeds_index.catalog.chunk_ids())
    ids = index.catalog.chunk_ids()
    assert sorted(ids) == expected and len(set(ids)) == len(ids)
    assert index.vectors.all_ids() == set(expected) and index.vectors.count() == len(expected)
    assert sorted(index.bm25.ids) == expected
    assert len(index.documents()) == 5
    assert_no_drift(index)
    assert_answers(index)


def doctor_cli(data: Path, *args: str):
    from qa_app.cli import app

    return CliRunner().invoke(app, ["doctor", "--data-dir", str(data), *args])


# --- SIGKILL at deterministic points -----------------------------------------------------------
@pytest.mark.parametrize(
    "stage, docs_left, then",
    [
        ("vectors:2", 1, "ingest"),  # doc 2's vectors written, catalog not: orphans; the next ingest sweeps them
        ("catalog:3", 2, "doctor"),  # killed inside the SQLite transaction: rolled back; doctor --repair heals
        ("reconcile", 1, "ingest"),  # killed again while the next writer was reconciling
    ],
)
def test_killed_ingest_leaves_a_usable_index_that_the_next_ingest_completes(tmp_path, seeds_index, stage, docs_left, then):
    data = data_dir_with_cache(tmp_path, seeds_index)
    if stage == "reconcile":
        assert run_cmd(qa_ingest_cmd(data), tmp_path, QA_TEST_CRASH_AT="vectors:2").returncode == -signal.SIGKILL
    run = run_cmd(qa_ingest_cmd(data), tmp_path, QA_TEST_CRASH_AT=stage)
    assert run.returncode == -signal.SIGKILL, run.stderr

    index = open_index(data, seeds_index)
    assert len(index.documents()) == docs_left  # each document is swapped in whole or not at all
    assert_answers(index)  # the GDP report (the first document) is in
    if then == "doctor":
        found = doctor_cli(data)
        assert found.exit_code == 1 and "a write never finished" in found.output and "belong to no catalog chunk" in found.output
        repaired = doctor_cli(data, "--repair")
        assert repaired.exit_code == 0 and "no drift" in repaired.output, repaired.output
    report = ingest([SEEDS], index, progress=False)
    assert len(report.added) == 5 - docs_left and not report.failed
    assert_whole(index, seeds_index)


def test_embedding_work_survives_a_kill(tmp_path, seeds_index):
    data = data_dir_with_cache(tmp_path, seeds_index, uncached=12)
    before = cached_vectors(data)
    run = run_cmd(qa_ingest_cmd(data), tmp_path, QA_TEST_CRASH_AT="embedded:8", QA_EMBEDDING_BATCH_SIZE="8")
    assert run.returncode == -signal.SIGKILL, run.stderr
    assert cached_vectors(data) == before + 8  # the batch embedded before the kill is kept

    index = open_index(data, seeds_index)
    assert len(index.documents()) == 4 and "004" not in "".join(index.snapshot().docs)
    report = ingest([SEEDS], index, progress=False)
    assert [d[:3] for d in report.added] == ["004"] and len(report.unchanged) == 4
    assert_whole(index, seeds_index)


def test_killed_update_leaves_no_stale_vectors(tmp_path, seeds_index):
    docs = tmp_path / "docs"
    shutil.copytree(SEEDS, docs)
    data = data_dir_with_cache(tmp_path, seeds_index)
    assert run_cmd(qa_ingest_cmd(data, docs), tmp_path).returncode == 0
    target = docs / seed("004").name
    text = target.read_text(encoding="utf-8")
    edited = text.replace("控制在3.1%以内。", "控制在3.1%以内。全区新建口袋公园12处。", 1)
    assert edited != text
    target.write_text(edited, encoding="utf-8")  # an edit inside a chunk: that chunk gets a new id
    # Killed after the catalog took the new version, before the old version's vectors were deleted.
    run = run_cmd(qa_ingest_cmd(data, docs), tmp_path, QA_TEST_CRASH_AT="committed:1")
    assert run.returncode == -signal.SIGKILL, run.stderr

    index = open_index(data, seeds_index)
    assert any("口袋公园12处" in c.text for c in index.chunks())
    drift = index.vector_drift()
    assert drift.orphans and not drift.missing  # extra vectors, never missing ones
    assert ingest([docs], index, progress=False).unchanged  # nothing to redo, but the sweep runs
    assert not index.vector_drift()
    assert_no_drift(index)
    assert_answers(index)


def test_random_kills_then_qa_app_ingest_completes(tmp_path, seeds_index):
    rng = random.Random(int(os.environ.get("QA_TEST_SEED", "5")))
    data = data_dir_with_cache(tmp_path, seeds_index)
    for attempt in range(2):
        delay = rng.uniform(0.0, 0.4)
        proc = subprocess.Popen(qa_ingest_cmd(data), cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Kill at a random moment of the write phase: once a document has landed, after `delay` seconds.
        while proc.poll() is None and documents_on_disk(data) <= attempt:
            time.sleep(0.01)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    rerun = run_cmd(qa_ingest_cmd(data), tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert "5 documents" in rerun.stdout
    assert_whole(open_index(data, seeds_index), seeds_index)


def documents_on_disk(data: Path) -> int:
    try:
        with sqlite3.connect(f"file:{data / 'catalog.sqlite'}?mode=ro", uri=True, timeout=1) as db:
            return db.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
    except sqlite3.Error:
        return 0


# --- serialised writers, live readers --------------------------------------------------------
def test_a_writer_that_cannot_wait_is_told_who_holds_the_lock(tmp_path):
    holder, other = WriterLock(tmp_path / "writer.lock"), WriterLock(tmp_path / "writer.lock")
    told: list[str] = []
    with holder.hold("ingest seeds", told.append):
        assert other.is_held_elsewhere() and not holder.is_held_elsewhere()
        who = f"ingest seeds (pid {os.getpid()}, since {holder.holder()['since']})"
        with pytest.raises(IndexBusyError, match=re.escape(who)):
            with other.hold("delete x", told.append, timeout=0.3):
                pass
    assert told == [f"waiting for {who} to finish writing to {tmp_path} …"]
    with other.hold("delete x", told.append, timeout=0.3):  # free again: taken at once, nobody waits
        assert other.holder()["purpose"] == "delete x" and len(told) == 1
    assert other.holder() == {}  # released: the file says nobody is writing


def test_two_concurrent_ingests_run_one_after_the_other(tmp_path, seeds_index):
    data = data_dir_with_cache(tmp_path, seeds_index)
    go = tmp_path / "go"
    # Writes hold the lock only briefly (each document's, after it was embedded), so the first is
    # held inside its last document's write until the second has said it waits for it.
    first = subprocess.Popen(qa_ingest_cmd(data), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "QA_TEST_PAUSE_AT": "vectors:5", "QA_TEST_PAUSE_UNTIL": str(go)})
    lock = data / "writer.lock"
    while first.poll() is None and not (documents_on_disk(data) == 4 and lock.is_file() and lock.read_text()):
        time.sleep(0.01)
    second_err = tmp_path / "second.err"
    with second_err.open("w") as err_file:
        second = subprocess.Popen(qa_ingest_cmd(data), cwd=tmp_path, stdout=subprocess.PIPE, stderr=err_file, text=True)
        while second.poll() is None and "waiting for" not in second_err.read_text():
            time.sleep(0.02)
        go.touch()
        second_out, _ = second.communicate(timeout=600)
    out, err = first.communicate(timeout=600)
    second_stderr = second_err.read_text()
    assert first.returncode == 0 and second.returncode == 0, (err, second_stderr)
    assert "waiting for ingest" in second_stderr and f"pid {first.pid}" in second_stderr
    assert "5 added" in out and "5 unchanged" in second_out  # the second saw the first's work

    # Then what a disk problem or a hand edit could break, repaired without re-embedding:
    shutil.rmtree(data / "chroma")  # the whole vector store lost
    with sqlite3.connect(data / "catalog.sqlite") as db:
        db.execute("UPDATE chunks SET tokens='[\"broken' WHERE ordinal=0")
    index = open_index(data, seeds_index)
    found = {f.kind for f in run_doctor(index.settings, repair=False, index=index).found}
    assert found == {"missing_vectors", "bm25_tokens"}
    cache = cached_vectors(data)
    report = run_doctor(index.settings, repair=True, index=index)
    assert report.ok, report.text()
    assert cached_vectors(data) == cache  # restored from the embedding cache
    assert_whole(index, seeds_index)


def test_queries_answer_while_threads_ingest_one_at_a_time(tmp_path, seeds_index, caplog, monkeypatch):
    docs = tmp_path / "docs"
    shutil.copytree(SEEDS, docs)
    index = open_index(data_dir_with_cache(tmp_path, seeds_index), seeds_index)
    ingest([docs], index, progress=False)
    new = tmp_path / "new" / "parks.txt"
    new.parent.mkdir()
    new.write_text("海淀区公园建设情况\n" + "".join(f"第{i}项：新建口袋公园{i}座，绿道{i * 3}公里。\n" for i in range(1, 60)), encoding="utf-8")
    assistant = Assistant(index.settings, index=index)
    reports, answered_during_write, errors = [], [], []

    def writer():
        try:
            reports.append(ingest([new], index, progress=False))
        except BaseException as exc:  # noqa: BLE001 - any failure is the finding
            errors.append(exc)

    go = tmp_path / "go"
    # The first writer is held inside its write (vectors upserted, catalog not yet) until a query
    # has been answered meanwhile and the second writer has said it waits.
    monkeypatch.setenv("QA_TEST_PAUSE_AT", "vectors:1")
    monkeypatch.setenv("QA_TEST_PAUSE_UNTIL", str(go))
    threads = [threading.Thread(target=writer)]
    threads[0].start()
    while threads[0].is_alive() and not index.writer.held_here:
        time.sleep(0.005)
    threads.append(threading.Thread(target=writer))  # a second writer while the first holds the lock
    threads[1].start()
    while any(t.is_alive() for t in threads):
        holding = index.writer.held_here
        answer = assistant.ask(GDP_Q)
        assert "6%" in answer.text
        if holding and index.writer.held_here:
            answered_during_write.append(answer)
        if answered_during_write and "waiting for another thread" in caplog.text:
            go.touch()
    for t in threads:
        t.join()
    assert not errors, errors
    assert answered_during_write, "no query completed while the ingest held the writer lock"
    assert sorted((len(r.added), len(r.unchanged)) for r in reports) == [(0, 1), (1, 0)]
    assert "waiting for another thread" in caplog.text
    assert_no_drift(index)

    # Source files drift too: one edited (re-ingested by a repair), one gone (reported, kept).
    edited, gone = docs / seed("002").name, docs / seed("004").name
    edited.write_text(edited.read_text(encoding="utf-8") + "\n补充：新建口袋公园12处。\n", encoding="utf-8")
    gone.unlink()
    report = run_doctor(index.settings, repair=False, index=index)
    assert {f.kind for f in report.found} == {"source_changed", "source_missing"} and not report.ok
    report = run_doctor(index.settings, repair=True, index=index)
    assert report.ok and [f.kind for f in report.remaining] == ["source_missing"], report.text()
    assert index.document(gone.name) is not None and any("口袋公园12处" in c.text for c in index.chunks())
