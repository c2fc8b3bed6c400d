"""Chroma in client/server mode: a real `chroma run` on a free loopback port."""
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qa_app.config import Settings
from qa_app.index.store import Index
from qa_app.index.vector_store import VectorStoreError
from qa_app.ingest.pipeline import ingest

from .conftest import seed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def chroma_server(tmp_path):
    exe = Path(sys.executable).with_name("chroma")
    assert exe.exists(), "the chroma command ships with the chromadb package"
    port = _free_port()
    proc = subprocess.Popen(
        [str(exe), "run", "--path", str(tmp_path / "server"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("chroma run did not start within 60 s")
    yield port
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_index_and_search_through_a_chroma_server(chroma_server, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(seed("002"), docs / "review.txt")
    settings = Settings(data_dir=tmp_path / "data", chroma_host="127.0.0.1", chroma_port=chroma_server)
    index = Index(settings)
    report = ingest([docs], index, progress=False)
    assert report.added == ["review.txt"]
    # The vectors live in the server, not in an embedded store under data_dir.
    assert index.vectors.count() == len(index) > 0
    assert not (tmp_path / "data" / "chroma").exists()
    hits = index.dense_search("家庭医生团队", k=5)
    assert hits and all(index.chunk(cid) is not None for cid, _ in hits)
    from qa_app.answer import Assistant

    answer = Assistant(settings, index=index).ask("2019年海淀建立了多少支家庭医生团队？")
    assert "653支" in answer.text and not answer.refused


def test_unreachable_chroma_server_is_a_clear_error(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", chroma_host="127.0.0.1", chroma_port=_free_port())
    with pytest.raises(VectorStoreError, match="cannot reach the Chroma server"):
        Index(settings).vectors
