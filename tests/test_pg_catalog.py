"""The catalog behind its interface: SQLite and PostgreSQL, one contract; many API processes, one index.

A real PostgreSQL (Debian's binaries, a new cluster in a temporary folder, 127.0.0.1 on a free
port) is started once for the module and stopped at the end; each test gets a schema of its own.
The contract tests run against both backends. Then what only a server catalog does: the writer
lock excludes a writer in another process (and is freed when that process is killed), errors
name the server but never the password, and two `qa-app serve` processes with the catalog in
PostgreSQL and the vectors in a Chroma server serve one index: a document uploaded through one
is answered by the other within `index_refresh_s`.
"""
from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest

from qa_app.config import Settings, SettingsError, settings_with
from qa_app.index.catalog import Catalog
from qa_app.index.errors import StorageError
from qa_app.index.lock import IndexBusyError
from qa_app.models import Chunk, DocumentInfo, Scope

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("local_servers", ROOT / "bench" / "local_servers.py")
local_servers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(local_servers)


@pytest.fixture(scope="module")
def pg_server():
    if local_servers.postgres_bin() is None:
        pytest.skip("PostgreSQL's binaries (initdb, postgres) are not installed: `make postgres` installs them")
    with local_servers.local_postgres() as url:
        yield url


def _schema_url(server_url: str) -> str:
    """A schema of its own in the shared server: a new, empty catalog (and its own writer lock)."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return f"{server_url}?options=-csearch_path%3D{schema}"


@pytest.fixture()
def pg_url(pg_server):
    return _schema_url(pg_server)


@pytest.fixture(params=["sqlite", "postgresql"])
def open_catalog(request, tmp_path):
    """Opens the catalog under test (again, for a reopen); every one opened is closed at the end."""
    opened = []
    if request.param == "sqlite":
        def make(read_only=False):
            return Catalog(tmp_path / "catalog.sqlite", read_only=read_only)
    else:
        from qa_app.index.pg_catalog import PgCatalog

        url = _schema_url(request.getfixturevalue("pg_server"))

        def make(read_only=False):
            return PgCatalog(url, read_only=read_only)

    def opener(read_only=False):
        cat = make(read_only)
        opened.append(cat)
        return cat

    yield opener
    for cat in opened:
        cat.close()


def _doc(doc_id: str, n: int, year: int = 2024, text: str = "文本", sha: str | None = None):
    info = DocumentInfo(doc_id, f"{doc_id} 报告", f"{year}-03-01", year, "work_report", "hans",
                        f"/src/{doc_id}", sha or f"sha-{doc_id}", scope=Scope())
    chunks = [Chunk(f"{doc_id}#{i}", doc_id, i, f"{text}{i}", f"{text}{i}", "一、总体", i * 10, i * 10 + 5, "text")
              for i in range(n)]
    tokens = [[text, str(i), "海淀"] for i in range(n)]
    return info, chunks, tokens


# --- the contract, against both backends --------------------------------------------------------------
def test_a_new_catalog_is_empty_and_named(open_catalog):
    cat = open_catalog()
    assert cat.version() == 0 and cat.documents() == [] and cat.count_chunks() == 0 and cat.chunk_counts() == {}
    assert cat.all_chunks() == ([], []) and cat.count_cached() == 0
    ident = cat.identity()
    assert ident and len(ident) == 32
    assert open_catalog().identity() == ident  # reopening keeps the name


def test_documents_and_chunks_round_trip_in_code_point_order(open_catalog):
    cat = open_catalog()
    # Upper case before lower case and CJK last: the order SQLite and Python sort by, whatever a
    # server's collation would say (the index relies on one order of documents).
    ids = ["b.txt", "Z.txt", "中文.txt", "a.txt"]
    docs = [_doc(d, 3 if d != "Z.txt" else 2) for d in ids]
    cat.replace_documents(docs, "2026-01-01T00:00:00+00:00")
    assert [d.doc_id for d in cat.documents()] == sorted(ids)
    chunks, tokens = cat.all_chunks()
    assert [(c.doc_id, c.ordinal) for c in chunks] == [(d, i) for d in sorted(ids) for i in range(2 if d == "Z.txt" else 3)]
    assert tokens[0] == ["文本", "0", "海淀"]
    assert chunks[0] == docs[1][1][0]  # every field back as written
    assert cat.document_info("a.txt") == docs[3][0]
    assert cat.document_info("missing") is None
    assert cat.document_sha("b.txt") == "sha-b.txt" and [d.doc_id for d in cat.documents_with_sha("sha-b.txt")] == ["b.txt"]
    assert sorted(cat.chunk_ids("Z.txt")) == ["Z.txt#0", "Z.txt#1"] and len(cat.chunk_ids()) == 11
    part, part_tokens = cat.document_chunks(["中文.txt", "Z.txt"])
    assert [c.chunk_id for c in part] == ["Z.txt#0", "Z.txt#1", "中文.txt#0", "中文.txt#1", "中文.txt#2"]
    assert len(part_tokens) == 5
    assert cat.chunk_counts() == {"b.txt": 3, "Z.txt": 2, "中文.txt": 3, "a.txt": 3}
    assert [c.chunk_id for c in cat.chunks(["中文.txt#1", "a.txt#2"])] == ["a.txt#2", "中文.txt#1"]
    assert cat.sources()["a.txt"] == "/src/a.txt"
    assert cat.count_chunks() == 11 and cat.chunk_count_mismatches() == {}
    assert cat.unreadable_tokens() == [] and cat.unscoped_documents() == set()
    assert cat.integrity_problem() is None


def test_every_change_is_one_version_and_the_log_names_its_documents(open_catalog):
    cat = open_catalog()
    cat.replace_documents([_doc("a", 2), _doc("b", 1)], "t1")
    assert cat.version() == 1
    cat.replace_document(*_doc("a", 4, text="新"), "t2")  # replaced: the old chunks go
    assert cat.version() == 2 and [c.text for c in cat.document_chunks(["a"])[0]] == ["新0", "新1", "新2", "新3"]
    cat.set_source_path("b", "/elsewhere/b")
    removed = cat.delete_document("a")
    assert sorted(removed) == [f"a#{i}" for i in range(4)] and cat.document_info("a") is None
    assert cat.version() == 4
    assert cat.changed_between(0, 4) == {"a", "b"}
    assert cat.changed_between(1, 2) == {"a"} and cat.changed_between(2, 3) == {"b"}
    assert cat.changed_between(4, 4) == set()
    assert cat.changed_between(3, 2) is None and cat.changed_between(0, 9) is None  # a log that cannot say
    cat.set_tokens({"b#0": ["重新", "分词"]})
    assert cat.version() == 5 and cat.changed_between(4, 5) == {"b"}
    assert cat.document_chunks(["b"])[1] == [["重新", "分词"]]
    cat.start_version_at(1000)
    cat.replace_document(*_doc("c", 1), "t3")
    assert cat.version() == 1001


def test_a_failed_write_changes_nothing(open_catalog):
    cat = open_catalog()
    cat.replace_document(*_doc("a", 2), "t1")
    info, chunks, tokens = _doc("b", 2)
    with pytest.raises(Exception) as caught:  # two chunks under one id: the database refuses the second
        cat.replace_documents([_doc("a", 3, text="新"), (info, [chunks[0], chunks[0]], tokens)], "t2")
    assert not isinstance(caught.value, StorageError)  # a bug, not a storage fault: it stays loud
    assert cat.version() == 1 and cat.document_info("b") is None
    assert [c.text for c in cat.document_chunks(["a"])[0]] == ["文本0", "文本1"]  # a's replacement rolled back too


def test_flags_are_not_versions(open_catalog):
    cat = open_catalog()
    assert cat.get_flag("writing") is None
    cat.set_flag("writing", '{"pid": 1}')
    cat.set_flag("writing", '{"pid": 2}')
    assert cat.get_flag("writing") == '{"pid": 2}' and cat.version() == 0
    cat.set_flag("writing", None)
    assert cat.get_flag("writing") is None


def test_the_embedding_cache_keeps_float32_vectors_by_model(open_catalog):
    cat = open_catalog()
    v = [0.1, -2.5, 3.0]
    cat.cache_vectors("m1", {"h1": v, "h2": [1.0, 2.0, 3.0]})
    cat.cache_vectors("m2", {"h1": [9.0, 9.0, 9.0]})
    cat.cache_vectors("m1", {"h2": [4.0, 5.0, 6.0]})  # written again: the new vector wins
    got = cat.cached_vectors("m1", ["h1", "h2", "h3"])
    assert set(got) == {"h1", "h2"} and np.allclose(got["h1"], np.float32(v)) and got["h2"] == [4.0, 5.0, 6.0]
    assert cat.count_cached() == 3 and cat.version() == 0


def test_read_only_refuses_writes_before_touching_anything(open_catalog):
    open_catalog().replace_document(*_doc("a", 1), "t1")
    ro = open_catalog(read_only=True)
    assert ro.documents()[0].doc_id == "a"
    for write in (lambda: ro.replace_document(*_doc("b", 1), "t2"), lambda: ro.set_flag("x", "1"),
                  lambda: ro.cache_vectors("m", {"h": [1.0]}), lambda: ro.delete_document("a")):
        with pytest.raises(StorageError):
            write()
    assert ro.version() == 1 and ro.get_flag("x") is None


# --- what only the server catalog does ----------------------------------------------------------------
def test_settings_name_the_backend_by_url():
    assert Settings().catalog_url is None
    assert Settings(catalog_url="").catalog_url is None
    with pytest.raises(SettingsError, match="not a catalog URL") as caught:
        settings_with(catalog_url="mysql://qa:topsecret@db/qa")
    assert "topsecret" not in str(caught.value)
    assert "topsecret" not in repr(Settings(catalog_url="postgresql://qa:topsecret@db/qa"))


def test_an_unreachable_server_or_a_wrong_password_is_a_clear_error_without_the_password(pg_server, tmp_path):
    from qa_app.index.pg_catalog import PgCatalog

    closed = local_servers.free_port()
    with pytest.raises(StorageError, match=f"127.0.0.1:{closed}/qa") as caught:
        PgCatalog(f"postgresql://qa:topsecret@127.0.0.1:{closed}/qa")
    assert "无法使用 PostgreSQL 索引目录" in caught.value.message and "topsecret" not in caught.value.message
    wrong = pg_server.replace(local_servers.PASSWORD, "wrong-secret")
    with pytest.raises(StorageError, match="password authentication failed") as caught:
        PgCatalog(wrong)
    assert "wrong-secret" not in caught.value.message and local_servers.PASSWORD not in caught.value.message
    # Through the index: it is built, reports the problem, and every use raises it.
    from qa_app.index.store import Index

    index = Index(Settings(data_dir=tmp_path / "d", catalog_url=f"postgresql://qa:topsecret@127.0.0.1:{closed}/qa"))
    health = index.health()
    assert health["status"] == "degraded" and not health["queries"] and "topsecret" not in health["reason"]
    assert not (tmp_path / "d" / "catalog.sqlite").exists()


def _hold_in_child(url: str, purpose: str) -> subprocess.Popen:
    """Another process that takes the writer lock, says so, and holds it until killed."""
    code = (
        "import sys, time\n"
        "from qa_app.index.pg_lock import PgWriterLock\n"
        f"lock = PgWriterLock({url!r})\n"
        f"with lock.hold({purpose!r}, print):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_the_advisory_lock_excludes_a_writer_in_another_process_and_dies_with_it(pg_url):
    from qa_app.index.pg_catalog import PgCatalog
    from qa_app.index.pg_lock import PgWriterLock

    PgCatalog(pg_url).close()  # the tables, where the holder writes who it is
    child = _hold_in_child(pg_url, "ingest big.pdf")
    try:
        lock = PgWriterLock(pg_url)
        assert lock.is_held_elsewhere()
        assert lock.holder()["purpose"] == "ingest big.pdf" and lock.holder()["pid"] == child.pid
        waits = []
        t0 = time.monotonic()
        with pytest.raises(IndexBusyError, match=rf"ingest big\.pdf \(pid {child.pid} on "):
            with lock.hold("upload", waits.append, timeout=0.6):
                pass
        assert 0.5 < time.monotonic() - t0 < 5 and waits and "ingest big.pdf" in waits[0]
        # Another schema is another index: its writers are not held up.
        other = _schema_url(pg_url.split("?")[0])
        with PgWriterLock(other).hold("elsewhere", waits.append, timeout=0):
            pass
    finally:
        child.send_signal(signal.SIGKILL)  # no clean release: the server frees the lock with the session
        child.wait()
    t0 = time.monotonic()
    with lock.hold("upload", lambda _: None, timeout=10) as outermost:
        assert outermost and lock.held_here and not lock.is_held_elsewhere()
        with lock.hold("nested", lambda _: None, timeout=0) as inner:  # re-entrant in its thread
            assert not inner
    assert time.monotonic() - t0 < 10 and lock.holder() == {} and not lock.held_here


def _fake_write(index, doc_id: str, text: str) -> None:
    """A document written through the index with made-up vectors (no embedding model needed)."""
    info, chunks, tokens = _doc(doc_id, 2, text=text)
    index.put_document(info, chunks, tokens, [[1.0, 0.0, float(i), 0.5] for i in range(len(chunks))])


def test_an_index_sees_another_process_writes_within_the_refresh_interval(pg_url, tmp_path):
    from qa_app.index.store import Index

    refresh = 2.0
    writer = Index(Settings(data_dir=tmp_path / "a", catalog_url=pg_url, index_refresh_s=0.0))
    reader = Index(Settings(data_dir=tmp_path / "b", catalog_url=pg_url, index_refresh_s=refresh))
    try:
        _fake_write(writer, "first.txt", "甲")
        assert set(reader.snapshot().docs) == {"first.txt"}
        asked = time.monotonic()
        _fake_write(writer, "second.txt", "乙")
        assert set(writer.snapshot().docs) == {"first.txt", "second.txt"}  # its own write: at once
        seen = set(reader.snapshot().docs)
        if time.monotonic() - asked < refresh:  # (a machine so loaded that the write took longer proves nothing)
            assert seen == {"first.txt"}  # within the interval: the catalog is not asked again
        time.sleep(max(0.0, asked + refresh + 0.05 - time.monotonic()))
        snap = reader.snapshot()
        assert set(snap.docs) == {"first.txt", "second.txt"} and "second.txt#1" in snap.chunks
        assert snap.bm25.ids == list(snap.chunks)
        # A write through the reader itself is seen by it at once, whatever the interval.
        _fake_write(reader, "third.txt", "丙")
        assert "third.txt" in reader.snapshot().docs
        assert not (tmp_path / "a" / "catalog.sqlite").exists() and not (tmp_path / "b" / "writer.lock").exists()
    finally:
        writer.close()
        reader.close()


def test_a_broken_connection_is_made_again_and_a_server_down_leaves_the_last_view_answering(pg_url, tmp_path):
    import psycopg

    from qa_app.index.store import Index

    index = Index(Settings(data_dir=tmp_path / "a", catalog_url=pg_url, index_refresh_s=0.0))
    try:
        _fake_write(index, "a.txt", "甲")
        assert set(index.snapshot().docs) == {"a.txt"}
        # The server ends this process's sessions (as a restart would): the next use connects again.
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE application_name LIKE 'qa-app%%' AND pid <> pg_backend_pid()")
        index.snapshot()  # answered from the view it has, even if this very check met the dead session
        _fake_write(index, "b.txt", "乙")
        assert set(index.snapshot().docs) == {"a.txt", "b.txt"} and index.health()["status"] == "ok"
    finally:
        index.close()

    with local_servers.local_postgres() as own:
        index = Index(Settings(data_dir=tmp_path / "b", catalog_url=own, index_refresh_s=0.0))
        _fake_write(index, "c.txt", "丙")
        assert set(index.snapshot().docs) == {"c.txt"}
    try:  # the server is gone now
        assert set(index.snapshot().docs) == {"c.txt"}  # the last view still answers
        health = index.health()
        assert health["status"] == "degraded" and health["queries"] and not health["writable"]
        assert "127.0.0.1" in health["reason"] and local_servers.PASSWORD not in health["reason"]
        with pytest.raises(StorageError, match="PostgreSQL"):
            _fake_write(index, "d.txt", "丁")
    finally:
        index.close()


def test_doctor_checks_an_index_whose_catalog_is_on_the_server(pg_url, tmp_path):
    from qa_app.doctor import run_doctor
    from qa_app.index.store import Index

    settings = Settings(data_dir=tmp_path / "d", catalog_url=pg_url)
    index = Index(settings)
    _fake_write(index, "a.txt", "甲")
    index.close()
    report = run_doctor(settings, repair=False)
    kinds = {f.kind for f in report.found}
    assert report.documents == 1 and report.chunks == 2
    assert "catalog_damaged" not in kinds and "catalog_missing" not in kinds and "no_index" not in kinds
    assert kinds == {"source_missing"} and report.ok  # /src/a.txt is made up: a warning, not drift
    assert report.catalog == pg_url.split("//qa:")[0] + "//qa@" + pg_url.split("@")[1].split("?")[0]
    assert f"The catalog is on {report.catalog}" in report.text() and local_servers.PASSWORD not in report.text()
    # Drift is found and repaired as with SQLite: a vector no catalog chunk has.
    index = Index(settings)
    index.vectors.upsert(["stray#0"], [[0.0, 1.0, 0.0, 0.0]], [{"doc_id": "stray", "year": 0, "ordinal": 0, "kind": "text"}])
    index.close()
    found = run_doctor(settings, repair=False)
    assert [f.items for f in found.found if f.kind == "orphan_vectors"] == [["stray#0"]] and not found.ok
    repaired = run_doctor(settings, repair=True)
    assert repaired.ok and {f.kind for f in repaired.remaining} == {"source_missing"}
    # A writer holding the lock elsewhere is named, with its host.
    child = _hold_in_child(pg_url, "ingest on host b")
    try:
        running = [f for f in run_doctor(settings, repair=False).found if f.kind == "writer_running"]
        assert running and "ingest on host b" in running[0].message
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    # A server that is down: findings, not a traceback.
    closed = local_servers.free_port()
    down = run_doctor(Settings(data_dir=tmp_path / "d", catalog_url=f"postgresql://qa@127.0.0.1:{closed}/qa"), repair=False)
    assert not down.ok and any(f"127.0.0.1:{closed}" in f.message for f in down.found)


# --- two API processes, one index -------------------------------------------------------------------
UPLOADED = (
    "海淀区量子测试专项报告\n\n一、总体情况\n"
    "2025年全区量子测试专项投入486亿元，同比增长9.5%。\n"
    "新建量子测试实验室37家，服务企业900余家。\n"
).encode("utf-8")
QUESTION = "2025年量子测试专项投入了多少亿元？"


@pytest.fixture(scope="module")
def chroma_port():
    with local_servers.local_chroma() as port:
        yield port


def _serve(tmp: Path, name: str, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = local_servers.free_port()
    log = (tmp / f"{name}.log").open("wb")
    exe = Path(sys.executable).with_name("qa-app")
    proc = subprocess.Popen([str(exe), "serve", "--no-ingest", "--port", str(port), "--data-dir", str(tmp / name)],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    return proc, f"http://127.0.0.1:{port}"


def _ready(proc: subprocess.Popen, url: str, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"qa-app serve exited ({proc.returncode}):\n{log.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=5).status_code in (200, 503):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    pytest.fail(f"qa-app serve was not ready after {timeout:.0f} s:\n{log.read_text(errors='replace')[-3000:]}")


def test_two_api_processes_serve_one_index(pg_url, chroma_port, tmp_path):
    refresh = 1.0
    env = {**os.environ, "QA_CATALOG_URL": pg_url, "QA_CHROMA_HOST": "127.0.0.1", "QA_CHROMA_PORT": str(chroma_port),
           "QA_INDEX_REFRESH_S": str(refresh), "QA_RATE_LIMIT_PER_MIN": "0", "ANONYMIZED_TELEMETRY": "False",
           "QA_CHROMA_COLLECTION": f"c{uuid.uuid4().hex[:8]}"}
    procs = [_serve(tmp_path, name, env) for name in ("one", "two")]
    try:
        for (proc, url), name in zip(procs, ("one", "two")):
            _ready(proc, url, tmp_path / f"{name}.log")
        (_, one), (_, two) = procs
        httpx.post(f"{two}/v1/ask", json={"question": QUESTION}, timeout=120)  # its first answer loads the models
        r = httpx.post(f"{one}/v1/documents", files={"files": ("quantum.txt", UPLOADED, "text/plain")}, timeout=300)
        assert r.status_code == 200 and r.json()["added"] == ["quantum.txt"], r.text
        uploaded = time.monotonic()  # the upload's reply comes after its commit
        # Any question reaching the second process once the interval has passed since the commit
        # finds the new version: its last version check is then either older than the interval
        # (so it asks again) or later than the commit. However loaded the machine, no polling.
        time.sleep(max(0.0, uploaded + refresh + 0.05 - time.monotonic()))
        body = httpx.post(f"{two}/v1/ask", json={"question": QUESTION}, timeout=120).raise_for_status().json()
        assert "486亿元" in body["answer"] and not body["refused"], body
        assert body["citations"][0]["doc_id"] == "quantum.txt"
        listed = httpx.get(f"{two}/v1/documents", timeout=30).json()
        assert [d["doc_id"] for d in listed["documents"]] == ["quantum.txt"]
        # And the other way round: deleted through the second, gone from the first within the bound.
        assert httpx.delete(f"{two}/v1/documents/quantum.txt", timeout=60).status_code == 200
        gone = time.monotonic()
        time.sleep(max(0.0, gone + refresh + 0.05 - time.monotonic()))
        assert httpx.get(f"{one}/v1/documents", timeout=30).json()["count"] == 0
        # Nothing of the catalog is left in either data folder.
        assert not any((tmp_path / n / "catalog.sqlite").exists() for n in ("one", "two"))
    finally:
        for proc, _ in procs:
            proc.send_signal(signal.SIGINT)
        for proc, _ in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
