"""Storage failures: a read-only data folder, damaged catalog and vector-store files, and what an
upload killed half-way leaves behind. Each is a clear StorageError naming the file (the CLI prints
it, no traceback) or a `qa-app doctor` finding, and `doctor --repair` recovers without deleting
anything damaged.

The indexes are three short documents (two from a folder, one uploaded with manifest metadata),
built per test in a second or so; one embedder is shared by every index and CLI run here.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qa_app.answer import Assistant
from qa_app.config import Settings
from qa_app.doctor import run_doctor
from qa_app.index.errors import DAMAGED, READ_ONLY, StorageError
from qa_app.index.leftovers import STALE_AFTER_S, sweep_upload_leftovers, upload_staging
from qa_app.index.store import REBUILD_FLAG, WRITING_FLAG, Index
from qa_app.manifest import update_manifest
from qa_app.ingest.pipeline import ingest

from .conftest import ROOT

PARKS = "海淀区公园建设情况\n2023年海淀区新建口袋公园12座，绿道36公里。\n全区公园绿地面积继续增加。\n"
SCHOOLS = "海淀区教育发展情况\n2023年海淀区新增中小学学位5000个。\n全区新建幼儿园3所。\n"
TRANSPORT = "海淀区交通建设情况\n2023年海淀区新开通公交线路8条。\n全区慢行系统继续完善。\n"
PARKS_Q, PARKS_A = "2023年海淀区新建口袋公园多少座？", "12座"
TRANSPORT_Q, TRANSPORT_A = "2023年海淀区新开通公交线路多少条？", "8条"
TRANSPORT_TITLE = "海淀区交通报告（上传）"


@pytest.fixture(scope="module")
def embedder():
    from qa_app.index.embeddings import make_embeddings

    return make_embeddings(Settings())


@pytest.fixture(autouse=True)
def one_embedder(monkeypatch, embedder):
    # Every Index made here, the CLI's included, uses the one model already loaded.
    monkeypatch.setattr("qa_app.index.store.make_embeddings", lambda settings: embedder)


@pytest.fixture
def data(tmp_path, embedder) -> Path:
    """A data folder indexing docs/parks.txt, docs/schools.txt and an upload, uploads/transport.txt."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "parks.txt").write_text(PARKS, encoding="utf-8")
    (docs / "schools.txt").write_text(SCHOOLS, encoding="utf-8")
    data = tmp_path / "data"
    uploads = data / "uploads"
    uploads.mkdir(parents=True)
    (uploads / "transport.txt").write_text(TRANSPORT, encoding="utf-8")
    update_manifest(uploads, {"transport.txt": {"title": TRANSPORT_TITLE}})
    index = Index(Settings(data_dir=data), embeddings=embedder)
    report = ingest([docs, uploads], index, progress=False)
    assert len(report.added) == 3 and not report.failed
    index.close()
    return data


def open_index(data: Path, embedder) -> Index:
    return Index(Settings(data_dir=data), embeddings=embedder)


def answer(index: Index, question: str) -> str:
    return Assistant(index.settings, index=index).ask(question).text


def assert_whole(data: Path, embedder) -> None:
    """Every document back, answering, with its upload metadata, and doctor finding nothing."""
    index = open_index(data, embedder)
    assert sorted(d.doc_id for d in index.documents()) == ["parks.txt", "schools.txt", "transport.txt"]
    assert index.document("transport.txt").title == TRANSPORT_TITLE  # from uploads/manifest.json
    assert PARKS_A in answer(index, PARKS_Q) and TRANSPORT_A in answer(index, TRANSPORT_Q)
    assert index.interrupted_write() is None
    report = run_doctor(index.settings, repair=False, index=index)
    assert report.ok and not report.found, report.text()
    assert index.health() == {"status": "ok", "reason": None, "writable": True, "queries": True}
    index.close()


def cli(*args: str):
    from qa_app.cli import app

    result = CliRunner().invoke(app, list(args))
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def files(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size if p.is_file() else 0, p.stat().st_mtime_ns)
            for p in [folder, *folder.rglob("*")]}


# --- a read-only data folder ---------------------------------------------------------------------
def make_read_only(folder: Path, monkeypatch) -> None:
    for p in [*folder.rglob("*"), folder]:
        p.chmod(stat.S_IMODE(p.stat().st_mode) & ~0o222)
    if os.geteuid() == 0:
        # Root writes through any mode bits (CI containers often run as root): the folder is made
        # read-only for this process's checks too, so the index opens it as it would for a user.
        # SQLite's read-only open then refuses writes itself, and `files()` proves nothing changed.
        real_access = os.access
        inside = str(folder)

        def access(path, mode, *args, **kwargs):
            if mode & os.W_OK and str(Path(path).resolve()).startswith(inside):
                return False
            return real_access(path, mode, *args, **kwargs)

        monkeypatch.setattr(os, "access", access)


def make_writable(folder: Path) -> None:
    for p in [folder, *folder.rglob("*")]:
        p.chmod(stat.S_IMODE(p.stat().st_mode) | 0o200)


def test_a_read_only_folder_answers_questions_and_refuses_writes_without_writing(data, tmp_path, monkeypatch, embedder):
    new = tmp_path / "docs" / "roads.txt"
    new.write_text("海淀区道路建设情况\n2023年海淀区新建道路15公里。\n", encoding="utf-8")
    before = files(data)
    make_read_only(data, monkeypatch)
    try:
        index = open_index(data, embedder)
        health = index.health()
        assert health["status"] == "degraded" and health["queries"] and not health["writable"]
        assert "数据目录只读" in health["reason"] and "read-only" in health["reason"] and str(data) in health["reason"]
        # Embedded Chroma cannot open read-only: dense search ranks vectors made from the embedding cache.
        assert index.dense_search(PARKS_Q, k=1)[0][0] in {c.chunk_id for c in index.chunks() if c.doc_id == "parks.txt"}
        assert PARKS_A in answer(index, PARKS_Q) and TRANSPORT_A in answer(index, TRANSPORT_Q)
        for write in (lambda: ingest([new], index, progress=False), lambda: index.delete_document("parks.txt"),
                      index.rebuild_vectors, lambda: sweep_upload_leftovers(index, remove=True)):
            with pytest.raises(StorageError) as refused:
                write()
            assert refused.value.kind == READ_ONLY and str(data) in refused.value.message

        asked = cli("ask", PARKS_Q, "--data-dir", str(data))
        assert asked.exit_code == 0 and PARKS_A in asked.output
        for args in (["ingest", str(new)], ["delete", "parks.txt"], ["doctor", "--repair"]):
            refused = cli(*args, "--data-dir", str(data))
            assert refused.exit_code == 1 and "数据目录只读" in refused.output and "writes" in refused.output, refused.output
        checked = cli("doctor", "--data-dir", str(data))
        assert checked.exit_code == 0 and "read-only" in checked.output
        assert files(data) == before  # nothing written: no WAL, no cache rows, no lock, no flag
    finally:
        make_writable(data)
    assert PARKS_A in answer(open_index(data, embedder), PARKS_Q)


# --- a damaged catalog -----------------------------------------------------------------------------
def truncate(path: Path) -> None:
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size // 2)


def garbage(path: Path) -> None:
    path.write_bytes(os.urandom(path.stat().st_size))


def zero_bytes(path: Path) -> None:
    path.write_bytes(b"")


def overwrite_a_page(path: Path) -> None:
    with path.open("r+b") as f:
        f.seek(2 * 4096)  # the first table's root page: SQLite's check finds it, reads fail
        f.write(os.urandom(4096))


@pytest.mark.parametrize("damage", [truncate, garbage, zero_bytes, overwrite_a_page])
def test_a_damaged_catalog_is_named_everywhere_and_rebuilt_by_doctor_repair(data, embedder, damage):
    catalog = data / "catalog.sqlite"
    damage(catalog)
    original = catalog.read_bytes()

    index = open_index(data, embedder)  # a server can still start, and say what is wrong
    with pytest.raises(StorageError, match=re.escape(str(catalog))) as opened:
        index.documents()
    assert opened.value.kind == DAMAGED and "doctor --repair" in opened.value.message
    health = index.health()
    assert health["status"] == "degraded" and not health["queries"] and str(catalog) in health["reason"]
    index.close()

    for args in (["ask", PARKS_Q], ["search", "口袋公园"], ["documents"], ["ingest", str(data / "uploads")]):
        failed = cli(*args, "--data-dir", str(data))
        assert failed.exit_code == 1 and str(catalog) in failed.output and "doctor --repair" in failed.output, failed.output
    found = cli("doctor", "--data-dir", str(data))
    assert found.exit_code == 1 and str(catalog) in found.output and "索引目录损坏" in found.output

    repaired = cli("doctor", "--repair", "--data-dir", str(data))
    assert repaired.exit_code == 0 and "no drift" in repaired.output, repaired.output
    aside = list(data.glob("catalog.sqlite.damaged-*"))
    assert [p.read_bytes() for p in aside if not p.name.endswith(("-wal", "-shm"))] == [original]  # kept as it was
    assert_whole(data, embedder)


def test_without_sources_json_the_vectors_say_what_was_indexed(data, embedder):
    """An index written before sources.json: the stored vectors' document ids say what was indexed;
    the upload is found in uploads/, the others are named as lost, nothing else is added."""
    (data / "sources.json").unlink()
    garbage(data / "catalog.sqlite")
    report = run_doctor(Settings(data_dir=data), repair=True, index=open_index(data, embedder))
    assert report.ok, report.text()
    lost = next(n for n in report.notes if "could not be rebuilt" in n)
    assert "parks.txt" in lost and "schools.txt" in lost
    index = open_index(data, embedder)
    assert [d.doc_id for d in index.documents()] == ["transport.txt"]
    assert TRANSPORT_A in answer(index, TRANSPORT_Q) and index.document("transport.txt").title == TRANSPORT_TITLE


def test_a_rebuild_stopped_half_way_is_finished_by_the_next_repair(data, embedder):
    """Killed (or Ctrl-C) while refilling the new catalog: the plan it left is finished, and
    meanwhile no sweep takes the uploads not yet re-indexed for leftovers."""
    index = open_index(data, embedder)
    assert index.delete_document("transport.txt")  # not re-indexed yet when the rebuild stopped
    index.catalog.set_flag(REBUILD_FLAG, json.dumps({"paths": [str(data / "uploads" / "transport.txt")], "lost": []}))
    assert sweep_upload_leftovers(index, remove=False) == []
    report = run_doctor(index.settings, repair=False, index=index)
    assert [f.kind for f in report.found] == ["unfinished_rebuild"] and not report.ok
    report = run_doctor(index.settings, repair=True, index=index)
    assert report.ok and index.unfinished_rebuild() is None, report.text()
    index.close()
    assert_whole(data, embedder)


def test_a_real_process_prints_the_message_and_no_traceback(data):
    garbage(data / "catalog.sqlite")
    env = {**os.environ, "QA_DATA_DIR": str(data)}
    run = subprocess.run([sys.executable, "-m", "qa_app.cli", "ask", PARKS_Q], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=120, check=False)
    assert run.returncode == 1 and "Traceback" not in run.stderr + run.stdout
    assert f"索引目录损坏：{data / 'catalog.sqlite'} 不是有效的 SQLite 数据库" in run.stderr
    assert "run `qa-app doctor --repair`" in run.stderr


def test_an_empty_catalog_without_vectors_is_a_new_index_not_damage(tmp_path, embedder):
    data = tmp_path / "data"
    data.mkdir()
    (data / "catalog.sqlite").write_bytes(b"")
    index = open_index(data, embedder)
    assert index.documents() == [] and index.health()["status"] == "empty"


# --- a damaged vector store ----------------------------------------------------------------------
def test_a_damaged_vector_store_is_rebuilt_without_leaving_the_writing_mark(data, embedder):
    with sqlite3.connect(data / "catalog.sqlite") as db:  # and a write had been killed half-way
        db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (WRITING_FLAG, json.dumps({"pid": 1, "purpose": "ingest"})))
    garbage(data / "chroma" / "chroma.sqlite3")

    index = open_index(data, embedder)
    assert PARKS_A in answer(index, PARKS_Q)  # dense search falls back to the embedding cache
    health = index.health()
    assert health["status"] == "degraded" and health["queries"] and "向量库损坏" in health["reason"]
    index.close()
    refused = cli("ingest", str(data / "uploads"), "--data-dir", str(data))
    assert refused.exit_code == 1 and "doctor --repair" in refused.output and str(data / "chroma") in refused.output

    found = cli("doctor", "--data-dir", str(data))
    assert found.exit_code == 1 and "the vector store cannot be read" in found.output
    repaired = cli("doctor", "--repair", "--data-dir", str(data))
    assert repaired.exit_code == 0 and "moved the damaged vector store aside" in repaired.output, repaired.output
    assert len(list(data.glob("chroma.damaged-*"))) == 1
    index = open_index(data, embedder)
    assert not index.vector_drift() and index.vectors.count() == len(index)
    index.close()
    assert_whole(data, embedder)


# --- leftovers of a killed upload ------------------------------------------------------------------
ROADS = "海淀区道路建设情况\n2023年海淀区新建道路15公里。\n"


def age(folder: Path, seconds: float) -> None:
    then = time.time() - seconds
    for p in [*folder.rglob("*"), folder]:
        os.utime(p, (then, then))


def test_leftovers_of_a_killed_upload_are_reported_and_swept(data, embedder):
    uploads, staging = data / "uploads", data / ".upload_staging" / "5e1f"
    # What a server killed during an upload leaves: the staged file, and the same file moved into
    # uploads/ with its manifest entry, never indexed (the client never got an answer).
    staging.mkdir(parents=True)
    (staging / "roads.txt").write_text(ROADS, encoding="utf-8")
    (uploads / "roads.txt").write_text(ROADS, encoding="utf-8")
    update_manifest(uploads, {"roads.txt": {"title": "道路"}})
    index = open_index(data, embedder)
    # Just written and not marked by upload_staging(): it could be an upload running in another process.
    assert sweep_upload_leftovers(index, remove=False) == []
    age(staging, STALE_AFTER_S + 60)
    assert sweep_upload_leftovers(index, remove=False) == [".upload_staging/5e1f/", "uploads/roads.txt"]
    report = run_doctor(index.settings, repair=False, index=index)
    assert not report.ok and [f.kind for f in report.found] == ["upload_leftovers"]
    index.close()

    repaired = cli("doctor", "--repair", "--data-dir", str(data))
    assert repaired.exit_code == 0 and "swept 2 upload leftovers" in repaired.output, repaired.output
    assert not (data / ".upload_staging").exists() and not (uploads / "roads.txt").exists()
    kept = list((data / ".upload_leftovers").glob("*/roads.txt"))  # moved aside, not deleted
    assert len(kept) == 1 and kept[0].read_text(encoding="utf-8") == ROADS
    assert json.loads((kept[0].parent / "manifest.json").read_text(encoding="utf-8")) == {"roads.txt": {"title": "道路"}}
    assert json.loads((uploads / "manifest.json").read_text(encoding="utf-8")) == {"transport.txt": {"title": TRANSPORT_TITLE}}
    assert (uploads / "transport.txt").read_text(encoding="utf-8") == TRANSPORT  # indexed: never touched
    assert_whole(data, embedder)


def test_an_upload_in_progress_is_left_alone_and_a_dead_one_swept_at_once(data, embedder):
    index = open_index(data, embedder)
    with upload_staging(data) as staging:
        (staging / "roads.txt").write_text(ROADS, encoding="utf-8")
        (data / "uploads" / "roads.txt").write_text(ROADS, encoding="utf-8")  # moved in, being indexed
        age(staging, STALE_AFTER_S * 10)
        assert sweep_upload_leftovers(index, remove=True) == []  # its owner is alive: nothing judged
        assert (staging / "roads.txt").is_file() and (data / "uploads" / "roads.txt").is_file()
    assert not staging.exists() and not (data / ".upload_staging").exists()  # an upload cleans up after itself

    # The same marked folder whose owner died (the kernel dropped its lock): swept at once.
    dead = data / ".upload_staging" / "d3ad"
    dead.mkdir(parents=True)
    (dead / ".owner").write_text("", encoding="utf-8")
    assert sweep_upload_leftovers(index, remove=True) == [".upload_staging/d3ad/", "uploads/roads.txt"]
    assert not dead.exists() and not (data / "uploads" / "roads.txt").exists()
    index.close()
    assert_whole(data, embedder)


def test_a_replacement_that_never_finished_puts_the_indexed_version_back(data, embedder):
    uploads = data / "uploads"
    staging = data / ".upload_staging" / "7ee1"
    staging.mkdir(parents=True)
    (staging / ".owner").write_text("", encoding="utf-8")
    # replace=true moves the indexed version aside, puts the new one in place, then is killed.
    shutil.move(uploads / "transport.txt", staging / ".previous-transport.txt")
    (uploads / "transport.txt").write_text(TRANSPORT.replace("8条", "9条"), encoding="utf-8")
    index = open_index(data, embedder)
    assert sweep_upload_leftovers(index, remove=True) == [".upload_staging/7ee1/", "uploads/transport.txt"]
    assert (uploads / "transport.txt").read_text(encoding="utf-8") == TRANSPORT
    assert "9条" in next((data / ".upload_leftovers").glob("*/transport.txt")).read_text(encoding="utf-8")
    index.close()
    assert_whole(data, embedder)


# --- through the API ---------------------------------------------------------------------------------
def test_the_api_says_degraded_and_refuses_writes_with_a_503_naming_the_folder(data, tmp_path, monkeypatch, embedder):
    import httpx

    from qa_app.api import create_app

    from .test_api import serve

    make_read_only(data, monkeypatch)
    try:
        index = open_index(data, embedder)
        app = create_app(index.settings, Assistant(index.settings, index=index), with_ui=False)
        with serve(app) as url:
            health = httpx.get(f"{url}/healthz").json()
            assert health["status"] == "degraded" and not health["writable"] and str(data) in health["reason"]
            asked = httpx.post(f"{url}/v1/ask", json={"question": PARKS_Q}, timeout=60)
            assert asked.status_code == 200 and PARKS_A in asked.json()["answer"]
            for r in (httpx.post(f"{url}/v1/documents", files={"files": ("roads.txt", "海淀区道路\n".encode())}, timeout=60),
                      httpx.delete(f"{url}/v1/documents/parks.txt", timeout=60)):
                error = r.json()["error"]
                assert r.status_code == 503 and error["code"] == "read_only" and str(data) in error["message"], r.text
    finally:
        make_writable(data)


def test_the_api_starts_on_a_damaged_catalog_and_health_names_it(data, embedder):
    import httpx

    from qa_app.api import create_app

    from .test_api import serve

    garbage(data / "catalog.sqlite")
    index = open_index(data, embedder)
    app = create_app(index.settings, Assistant(index.settings, index=index), with_ui=False)
    with serve(app, ready="/docs") as url:
        r = httpx.get(f"{url}/healthz")
        assert r.status_code == 503 and r.json()["status"] == "degraded" and "catalog.sqlite" in r.json()["reason"]
        asked = httpx.post(f"{url}/v1/ask", json={"question": PARKS_Q}, timeout=60)
        error = asked.json()["error"]
        assert asked.status_code == 503 and error["code"] == "damaged" and "doctor --repair" in error["message"]


def test_the_api_sweeps_a_killed_uploads_leftovers_at_start(data, embedder):
    from qa_app.api import create_app

    from .test_api import serve

    staging = data / ".upload_staging" / "dead"
    staging.mkdir(parents=True)
    (staging / "half.txt").write_text("半截", encoding="utf-8")
    (data / "uploads" / "never.txt").write_text("海淀区从未索引的文件\n", encoding="utf-8")
    age(staging, 3600)
    index = open_index(data, embedder)
    with serve(create_app(index.settings, Assistant(index.settings, index=index), with_ui=False)):
        assert not staging.exists() and not (data / "uploads" / "never.txt").exists()
    assert (data / "uploads" / "transport.txt").exists()  # an indexed upload is never touched
    kept = list((data / ".upload_leftovers").rglob("never.txt"))
    assert len(kept) == 1  # moved aside, not deleted
