"""Calibrate when the extractive answerer answers and when it refuses.

Runs eval sets through the answerer for every point of a grid of answer settings and
prints, per point, answer accuracy, false refusals (answerable items refused) and missed
refusals (unanswerable items answered) — the curve an operating point is chosen on.

Items are split in two halves by a stable hash of (file, id): choose the point on the
``tune`` half, read its figures on the ``report`` half, which played no part in choosing.

    python bench/calibrate.py --eval eval_sets/seeds_dev.jsonl:/tmp/qa_seeds \\
        --eval eval_sets/provinces_dev.jsonl:/tmp/qa_prov \\
        --grid min_support=0.4,0.5 --grid min_support_typed=0.2,0.3,0.4 --json cal.json --plot cal.png

Each ``--eval`` names a set and the data dir of an index built over its corpus (``qa-app
ingest`` with ``QA_DATA_DIR`` set). The grid may name answer and retrieval settings alike
(fusion weights, for instance); the index's stored data is shared by every point.
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qa_app.answer import Assistant  # noqa: E402
from qa_app.config import settings_with  # noqa: E402
from qa_app.eval.metrics import answer_correct  # noqa: E402
from qa_app.eval.sets import load_eval_set  # noqa: E402
from qa_app.index.store import Index  # noqa: E402


def half(file: str, item_id: str) -> str:
    digest = hashlib.sha1(f"{file}\x00{item_id}".encode()).digest()
    return "tune" if digest[0] % 2 == 0 else "report"


def _value(text: str) -> float | int | str:
    """A grid value: a number where it reads as one, else the text ("sentence_model=off,builtin")."""
    try:
        return float(text) if "." in text else int(text)
    except ValueError:
        return text


def parse_grid(specs: list[str]) -> dict[str, list[float]]:
    grid: dict[str, list[float]] = {}
    for spec in specs:
        name, _, values = spec.partition("=")
        if not values:
            raise SystemExit(f"--grid {spec!r}: write NAME=V1,V2,…")
        grid[name.strip()] = [_value(v) for v in values.split(",")]
    return grid


def scores(rows: list[dict]) -> dict[str, float]:
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    mean = lambda xs: sum(xs) / len(xs) if xs else 0.0  # noqa: E731
    return {
        "n": len(rows),
        "accuracy": mean([r["correct"] for r in answerable]),
        "false_refusals": mean([r["refused"] for r in answerable]),
        "missed_refusals": mean([not r["refused"] for r in unanswerable]),
        "n_unanswerable": len(unanswerable),
    }


def run_point(point: dict, sets: list[tuple[Path, Index]]) -> list[dict]:
    rows = []
    for path, index in sets:
        settings = settings_with(data_dir=str(index.data_dir), **point)
        index.settings = settings  # retrieval reads the index's settings: a grid may vary those too
        assistant = Assistant(settings, index=index)
        for item in load_eval_set(path):
            try:
                answer = assistant.ask(item.question)
                refused, correct = answer.refused, (not answer.refused and answer_correct(item, answer.text))
            except Exception as exc:  # noqa: BLE001 - a bad item counts as a wrong answer, the run goes on
                refused, correct = False, False
                print(f"{item.file} {item.id}: {type(exc).__name__}: {exc}", file=sys.stderr)
            rows.append({
                "file": item.file, "id": item.id, "half": half(item.file, item.id), "answerable": item.answerable,
                "refused": refused, "correct": bool(correct) if item.answerable else refused,
            })
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--eval", action="append", required=True, metavar="FILE:DATA_DIR", help="an eval set and the index it runs on")
    ap.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2", help="an answer setting and its values")
    ap.add_argument("--json", type=Path, help="write every point's figures (both halves) here")
    ap.add_argument("--plot", type=Path, help="draw false refusals against missed refusals (tune half) as a PNG")
    args = ap.parse_args(argv)
    sets = []
    for spec in args.eval:
        file, _, data_dir = spec.rpartition(":")
        sets.append((Path(file), Index(settings_with(data_dir=data_dir))))
    grid = parse_grid(args.grid)
    names = list(grid)
    results = []
    print("| " + " | ".join(names) + " | tune acc | tune false ref | tune missed ref | report acc | report false ref | report missed ref |")
    print("|" + "---|" * (len(names) + 6))
    for values in itertools.product(*grid.values()) if grid else [()]:
        point = dict(zip(names, values))
        t0 = time.perf_counter()
        rows = run_point(point, sets)
        tune = scores([r for r in rows if r["half"] == "tune"])
        report = scores([r for r in rows if r["half"] == "report"])
        results.append({"point": point, "tune": tune, "report": report, "by_file": {
            f: scores([r for r in rows if r["file"] == f]) for f in sorted({r["file"] for r in rows})
        }, "seconds": round(time.perf_counter() - t0, 1)})
        cells = [str(v) for v in values] + [
            f"{tune['accuracy']:.3f}", f"{tune['false_refusals']:.3f}", f"{tune['missed_refusals']:.3f}",
            f"{report['accuracy']:.3f}", f"{report['false_refusals']:.3f}", f"{report['missed_refusals']:.3f}",
        ]
        print("| " + " | ".join(cells) + " |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4.5))
        xs = [r["tune"]["missed_refusals"] for r in results]
        ys = [r["tune"]["false_refusals"] for r in results]
        ax.scatter(xs, ys)
        for r, x, y in zip(results, xs, ys):
            ax.annotate(",".join(str(v) for v in r["point"].values()), (x, y), fontsize=7)
        ax.set_xlabel("missed refusals (unanswerable answered), tune half")
        ax.set_ylabel("false refusals (answerable refused), tune half")
        ax.set_title("points: " + ", ".join(names), fontsize=8)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
