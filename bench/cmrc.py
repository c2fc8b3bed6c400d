"""CMRC 2018 (Cui et al., EMNLP-IJCNLP 2019), or any SQuAD-format file, run through our pipeline.

Open-corpus mode: every paragraph of the file pooled into one index (built once into
--pool-dir through the Index API, reused after), each question asked through Assistant.ask.
  recall@1/5/10, MRR    hit = a retrieved chunk of the question's own paragraph holding an accepted answer
Reader mode: each question answered by the generator from its own paragraph's chunks only.
Both modes:
  contains accuracy     the answer (not a refusal) contains an accepted answer (match_form on both sides)
  refusal rate          every CMRC question is answerable: each refusal is a false one
  EM / F1 (quote|span)  the official scorer's EM/F1 (x100) on the short span the answer offers; the
                        extractive answerer offers only quotes, so this is EM/F1 of the cited quote it
                        leads with, not comparable to the span EM/F1 of the published systems
  p50 ms                ask (open) or analyse + generate (reader), per question

The data (CC BY-SA 4.0) is read in place: --file, default the trial file in
<project>/../shared/benchmarks/cmrc2018 or $QA_CMRC_DIR; nothing of it is copied. The scorer is
cmrc2018_evaluate.py beside --file, else the one in that folder (see qa_app/eval/cmrc.py).

    python bench/cmrc.py --mode all [--file PATH] [--limit N] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from qa_app.eval import cmrc  # noqa: E402

PAPER_NOTE = (
    "Published reference points (upstream dev set, 10-run averages, span EM/F1): BERT (Chinese) EM 63.5 / "
    "F1 83.6; BERT (multilingual) 63.6 / 84.0; Z-Reader 79.8 / 92.7. Those systems return a short span; our "
    "extractive answerer quotes sentences, so its EM/F1 are computed on the quote it leads with and are "
    "named \"(quote)\". \"contains\" is a different, easier measure (the answer holds an accepted answer)."
)
OUTCOMES = ("correct", "wrong sentence", "wrong paragraph", "refused", "error")


def pct(x: float) -> str:
    return f"{100 * x:.2f}"


def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def scores_row(name: str, s: dict[str, Any]) -> list[Any]:
    return [name, s["n"], pct(s["contains_accuracy"]), f"{s['em']:.2f}", f"{s['f1']:.2f}", pct(s["refusal_rate"]), f"{s['ms_p50']:.1f}"]


def scores_header(s: dict[str, Any]) -> list[str]:
    label = cmrc.em_f1_label(s)
    return ["mode", "n", "contains (%)", f"EM ({label})", f"F1 ({label})", "refused (%)", "p50 ms"]


def outcome_line(s: dict[str, Any]) -> str:
    o = s["outcomes"]
    return ", ".join(f"{k}: {o.get(k, 0)}" for k in OUTCOMES if o.get(k) or k != "error")


def halves_line(dataset: cmrc.Dataset, results: list[cmrc.Result]) -> str:
    """Contains accuracy on each half of bench/calibrate.py's split: the extractive answerer's
    sentence model was fitted on the trial file's tune half (bench/fit_answerer.py), so its
    report half is the figure that measures it."""
    from calibrate import half

    parts: dict[str, list[cmrc.Result]] = {"tune": [], "report": []}
    for r in results:
        parts[half(dataset.path.name, r.id)].append(r)
    return "by half (" + dataset.path.name + "): " + ", ".join(
        f"{h} {pct(sum(r.contains for r in rs) / len(rs))}% (n={len(rs)}, refused {pct(sum(r.refused for r in rs) / len(rs))}%)"
        for h, rs in parts.items() if rs)


def examples(results: list[cmrc.Result], n: int) -> str:
    if n <= 0:
        return ""
    lines = []
    for outcome in OUTCOMES[1:]:
        picked = [r for r in results if r.outcome == outcome][:n]
        if not picked:
            continue
        lines.append(f"\n{outcome} (first {len(picked)}):\n")
        for r in picked:
            lines.append(f"- {r.id}: {r.question} — accepted: {' / '.join(r.answers)} — given: "
                         f"{(r.error or r.prediction).replace(chr(10), ' ')[:160]}")
    return "\n".join(lines)


def write_items(report: dict[str, Any], mode: str, results: list[cmrc.Result]) -> None:
    report.setdefault("items", {})[mode] = [r.to_dict() for r in results]


# --- open-corpus mode ----------------------------------------------------------------------
def open_mode(args, dataset: cmrc.Dataset, scorer: cmrc.Scorer, report: dict[str, Any]) -> None:
    from qa_app.answer import Assistant
    from qa_app.config import settings_with
    from qa_app.index.store import Index

    pool_dir = pool_dir_for(args, dataset)
    settings = settings_with(data_dir=pool_dir, generator=args.backend)
    index = Index(settings)
    t0 = time.perf_counter()
    # The whole file's paragraphs, whatever --limit says: retrieval over a slice's paragraphs only would be easier.
    built = cmrc.build_pool(index, dataset.paragraphs, progress=not args.quiet)
    build_s = time.perf_counter() - t0
    print(f"pool: {len(index.documents())} paragraphs, {len(index)} chunks in {pool_dir} "
          f"({built.added} added, {built.unchanged} reused, {built.removed} removed in {build_s:.0f} s)", file=sys.stderr)
    questions = cmrc.first_questions(dataset, args.limit)
    t0 = time.perf_counter()
    results = cmrc.run_open(Assistant(settings, index), questions, scorer, progress=not args.quiet)
    run_s = time.perf_counter() - t0
    s = cmrc.summarise(results)
    print(f"\n### Open corpus (all {len(index.documents())} paragraphs, {len(index)} chunks, in one index; "
          f"n={s['n']} questions)\n")
    print("hit = a retrieved chunk of the question's own paragraph that contains an accepted answer "
          f"({s['answer_in_no_chunk']} questions have no chunk holding their answer whole)\n")
    print(table(
        ["retrieval", "recall@1", "recall@5", "recall@10", "MRR@10"],
        [[(f"hybrid ({settings.fusion}: BM25 {settings.bm25_weight} + dense {settings.dense_weight})" if settings.fusion != "model" else "hybrid (fitted fusion)"),
          f"{s['recall@1']:.3f}", f"{s['recall@5']:.3f}", f"{s['recall@10']:.3f}", f"{s['mrr']:.3f}"]],
    ))
    print()
    print(table(scores_header(s), [scores_row(f"open ({args.backend})", s)]))
    print(f"\noutcomes: {outcome_line(s)}")
    print(halves_line(dataset, results))
    print(examples(results, args.examples))
    report["open"] = {**s, "pool_dir": str(pool_dir), "pool_paragraphs": len(index.documents()), "pool_chunks": len(index),
                      "pool_added": built.added, "pool_build_s": round(build_s, 1), "run_s": round(run_s, 1)}
    write_items(report, "open", results)


def pool_dir_for(args, dataset: cmrc.Dataset) -> Path:
    return args.pool_dir or Path("/tmp/cmrc_pool") / dataset.path.stem


# --- reader mode ---------------------------------------------------------------------------
def reader_mode(args, dataset: cmrc.Dataset, scorer: cmrc.Scorer, report: dict[str, Any]) -> None:
    from qa_app.config import settings_with
    from qa_app.llm.registry import make_generator

    settings = settings_with(generator=args.backend)
    generator = make_generator(settings)
    questions = cmrc.first_questions(dataset, args.limit)
    vectors = None
    if args.vectors:
        from qa_app.index.store import Index

        # The pool's embedding cache holds these paragraphs' sentences once open mode has run.
        vectors = Index(settings_with(data_dir=pool_dir_for(args, dataset), generator=args.backend))
    t0 = time.perf_counter()
    results = cmrc.run_reader(generator, dataset, questions, scorer, settings, idf=args.idf, progress=not args.quiet,
                              vectors=vectors)
    run_s = time.perf_counter() - t0
    s = cmrc.summarise(results)
    print(f"\n### Reader (each question answered from its own paragraph only; n={s['n']}; term weights: {args.idf})\n")
    print(table(scores_header(s), [scores_row(f"reader ({generator.name})", s)]))
    print(f"\noutcomes: {outcome_line(s)}; answer split across two chunks: {s['answer_in_no_chunk']}")
    print(halves_line(dataset, results))
    print(examples(results, args.examples))
    report["reader"] = {**s, "idf": args.idf, "vectors": args.vectors, "run_s": round(run_s, 1)}
    write_items(report, "reader", results)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=("open", "reader", "all"), default="all")
    ap.add_argument("--file", type=Path, default=None,
                    help=f"a SQuAD-format file (default: {cmrc.TRIAL_FILE} in ../shared/benchmarks/cmrc2018 or ${cmrc.CMRC_DIR_ENV})")
    ap.add_argument("--limit", type=int, default=None, help="only the first N questions (the pool still holds every paragraph)")
    ap.add_argument("--backend", default="extractive", help="answer generator from qa_app/llm/registry.py")
    ap.add_argument("--pool-dir", type=Path, default=None,
                    help="index of the pooled paragraphs, reused when it holds the same ones (default /tmp/cmrc_pool/<file stem>)")
    ap.add_argument("--idf", choices=("pool", "local"), default="pool",
                    help="reader mode term weights: over every paragraph of the file (default) or the question's paragraph only")
    ap.add_argument("--vectors", action=argparse.BooleanOptionalAction, default=True,
                    help="reader mode: sentences compared with the question in meaning too, as for indexed passages "
                         "(vectors from the pool's embedding cache; --no-vectors: words alone)")
    ap.add_argument("--scorer", type=Path, default=None,
                    help=f"the official {cmrc.SCORER_FILE} (default: beside --file, else in the CMRC folder)")
    ap.add_argument("--examples", type=int, default=3, help="failed questions shown per kind of failure (0: none)")
    ap.add_argument("--json", type=Path, help="also write the figures and every question's result here")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    args = ap.parse_args()

    try:
        dataset = cmrc.load(args.file)
    except (cmrc.CMRCNotFound, cmrc.CMRCFormatError) as exc:
        sys.exit(str(exc))
    beside = dataset.path.parent / cmrc.SCORER_FILE
    scorer = cmrc.load_scorer(args.scorer or (beside if beside.is_file() else None))
    started = time.perf_counter()
    report: dict[str, Any] = {"file": str(dataset.path), "version": dataset.version, "limit": args.limit,
                              "backend": args.backend, "scorer": scorer.name, "skipped_without_answer": dataset.skipped}
    print(f"## CMRC 2018: {dataset.path.name} ({len(dataset.paragraphs)} paragraphs, {len(dataset.questions)} questions"
          + (f", {dataset.skipped} without an accepted answer left out" if dataset.skipped else "") + ")\n")
    print(f"{PAPER_NOTE}\n\nscorer: {scorer.name}")
    try:
        if args.mode in ("open", "all"):
            open_mode(args, dataset, scorer, report)
        if args.mode in ("reader", "all"):
            reader_mode(args, dataset, scorer, report)
    except cmrc.PoolError as exc:
        sys.exit(str(exc))
    report["wall_s"] = round(time.perf_counter() - started, 1)
    print(f"\nwall time: {report['wall_s']} s")
    if args.json:
        args.json.write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
