"""Fit the retrieval fusion (qa_app/index/fusion.py): how the three rankings, the asked year
and the named report are weighed.

1. ``dump``: for every question of the given sets, the union of the three channels' candidates
   (``QA_CANDIDATES`` deep each) with their ``fusion.FEATURES`` rows, labelled (does the chunk
   hold the item's evidence / the CMRC question's paragraph with an accepted answer), and the
   rank the hand-weighted fusion (``fusion="score"``) gives the first labelled chunk.
2. ``fit`` on the **tune** half of every set (bench/calibrate.py's hash split), each set weighing
   the same: a conditional logit (the labelled chunks against the question's other candidates).
   Prints recall@1/5/8 per set and half, hand weights against the fitted model (the report
   halves measure it), and writes ``qa_app/resources/retrieval_model.json`` unless ``--dry-run``.

    python bench/fit_retrieval.py dump --eval eval_sets/seeds_dev.jsonl:/tmp/qa_seeds \\
        --eval eval_sets/seeds_holdout.jsonl:/tmp/qa_seeds --eval eval_sets/seeds_paraphrase.jsonl:/tmp/qa_seeds \\
        --eval eval_sets/provinces_dev.jsonl:/tmp/qa_prov \\
        --cmrc ../shared/benchmarks/cmrc2018/cmrc2018_trial.json:/tmp/cmrc_pool/cmrc2018_trial --out /tmp/ret.jsonl
    python bench/fit_retrieval.py fit /tmp/ret.jsonl
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from calibrate import half  # noqa: E402
from qa_app.index import fusion  # noqa: E402
from qa_app.linear import Linear  # noqa: E402


def _searchers(data_dir: str):
    from qa_app.config import settings_with
    from qa_app.index.hybrid import HybridSearcher
    from qa_app.index.store import Index

    index = Index(settings_with(data_dir=data_dir, fusion="score"))
    return HybridSearcher(index)


def _record(searcher, set_name: str, item_id: str, question: str, holds) -> dict | None:
    """``holds(doc_id, text)``: does this chunk hold the answer's evidence."""
    from qa_app.index.query import Query
    from qa_app.index.scope import resolve as resolve_scope

    query = Query.parse(question)
    snap = searcher.index.snapshot()
    scope = resolve_scope(query.norm, list(snap.docs.values()))
    allowed = searcher.allowed(query, snap, scope=scope)
    if allowed is not None and not allowed:
        return None
    lexical, dense, sentences, _ = searcher.channels(query, allowed, snap, framing=scope.framing)
    ids, rows = fusion.feature_rows(lexical, dense, sentences, snap, query, searcher.settings.candidates)
    labels = [bool(holds(snap.chunks[c].doc_id, snap.chunks[c].text)) for c in ids]
    by_hand = searcher.search(query, 10, snap=snap)
    hand_rank = next((i for i, p in enumerate(by_hand, 1) if holds(p.doc.doc_id, p.chunk.text)), None)
    return {"set": set_name, "id": item_id, "half": half(set_name, item_id), "rows": rows, "labels": labels,
            "hand_rank": hand_rank}


def dump(args) -> None:
    from qa_app.eval.metrics import hit_rank
    from qa_app.eval.sets import load_eval_set

    with open(args.out, "w", encoding="utf-8") as out:
        for spec in args.eval:
            path, _, data_dir = spec.partition(":")
            searcher = _searchers(data_dir)
            for item in load_eval_set(Path(path)):
                if not item.answerable or not item.evidence:
                    continue
                r = _record(searcher, Path(path).name, item.id, item.question,
                            lambda doc, text, item=item: hit_rank(item, [(doc, text)]) is not None)
                if r:
                    out.write(json.dumps(r) + "\n")
        for spec in args.cmrc:
            from qa_app.eval import cmrc

            path, _, pool = spec.partition(":")
            searcher = _searchers(pool)
            for q in cmrc.load(path).questions:
                if not q.question.strip():
                    continue
                r = _record(searcher, Path(path).name, q.id, q.question,
                            lambda doc, text, q=q: doc == q.doc_id and cmrc.holds_answer(text, q.answers))
                if r:
                    out.write(json.dumps(r) + "\n")


def fit_ranker(records: list[dict], l2: float) -> Linear:
    import numpy as np
    from scipy.optimize import minimize

    groups = [(np.asarray(r["rows"], float), np.asarray(r["labels"], bool)) for r in records
              if r["half"] == "tune" and any(r["labels"]) and not all(r["labels"])]
    sets = [r["set"] for r in records if r["half"] == "tune" and any(r["labels"]) and not all(r["labels"])]
    x_all = np.vstack([x for x, _ in groups])
    mean, scale = x_all.mean(axis=0), x_all.std(axis=0)
    scale[scale < 1e-9] = 1.0
    counts = defaultdict(int)
    for s in sets:
        counts[s] += 1
    weights = [1.0 / (len(counts) * counts[s]) for s in sets]  # each set weighs the same
    groups = [((x - mean) / scale, y) for x, y in groups]

    def loss(w):
        total, grad = l2 * w @ w, 2 * l2 * w
        for (x, y), weight in zip(groups, weights):
            z = x @ w
            p = np.exp(z - z.max())
            p /= p.sum()
            py = p[y].sum()
            total -= weight * math.log(max(py, 1e-12))
            grad -= weight * (x[y].T @ (p[y] / py) - x.T @ p)
        return total, grad

    w = minimize(loss, np.zeros(x_all.shape[1]), jac=True, method="L-BFGS-B").x
    return Linear(fusion.FEATURES, tuple(mean.tolist()), tuple(scale.tolist()), tuple(w.tolist()), 0.0)


def report(records: list[dict], model: Linear) -> str:
    stats: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for r in records:
        s = stats[(r["set"], r["half"])]
        s["n"] += 1
        scores = [model.score(row) for row in r["rows"]]
        order = sorted(range(len(scores)), key=lambda i: -scores[i])
        rank = next((i for i, j in enumerate(order, 1) if r["labels"][j]), None)
        for k in (1, 5, 8):
            s[f"hand@{k}"] += bool(r["hand_rank"] and r["hand_rank"] <= k)
            s[f"model@{k}"] += bool(rank and rank <= k)
        s["pool"] += any(r["labels"])
    lines = ["| set | half | n | in the candidates | hand weights: recall@1 / @5 / @8 | fitted: recall@1 / @5 / @8 |",
             "|---|---|---|---|---|---|"]
    for (name, h), s in sorted(stats.items()):
        n = s["n"]
        lines.append(f"| {name} | {h} | {int(n)} | {s['pool'] / n:.3f} | "
                     + " / ".join(f"{s[f'hand@{k}'] / n:.3f}" for k in (1, 5, 8)) + " | "
                     + " / ".join(f"{s[f'model@{k}'] / n:.3f}" for k in (1, 5, 8)) + " |")
    return "\n".join(lines)


def fit(args) -> None:
    records = [json.loads(line) for path in args.dumps for line in Path(path).open(encoding="utf-8")]
    if args.drop:
        # An ablation: these features zeroed, as if never computed.
        columns = [fusion.FEATURES.index(n) for n in args.drop.split(",")]
        for r in records:
            for row in r["rows"]:
                for i in columns:
                    row[i] = 0.0
    model = fit_ranker(records, args.l2)
    print(report(records, model))
    print()
    print("fusion: " + ", ".join(f"{n} {c:+.2f}" for n, c in zip(model.names, model.coef)))
    if not args.dry_run:
        sets = sorted({r["set"] for r in records})
        fusion.BUILTIN.write_text(json.dumps({"ranker": model.to_dict(), "fitted_on": "tune halves of " + ", ".join(sets)},
                                             ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        print(f"written: {fusion.BUILTIN}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dump")
    d.add_argument("--eval", action="append", default=[], help="EVAL_SET.jsonl:INDEX_DIR")
    d.add_argument("--cmrc", action="append", default=[], help="SQUAD_FILE.json:POOL_INDEX_DIR")
    d.add_argument("--out", required=True)
    f = sub.add_parser("fit")
    f.add_argument("dumps", nargs="+")
    f.add_argument("--l2", type=float, default=0.001)
    f.add_argument("--dry-run", action="store_true")
    f.add_argument("--drop", default="", help="features to zero before fitting (comma-separated): an ablation")
    args = ap.parse_args()
    dump(args) if args.cmd == "dump" else fit(args)


if __name__ == "__main__":
    main()
