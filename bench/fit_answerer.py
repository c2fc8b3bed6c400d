"""Fit the extractive answerer's sentence model (qa_app/llm/sentence_model.py) and choose its thresholds.

1. ``dump``: every question of the given sets goes through the real answer path (with the fixed
   thresholds, ``QA_SENTENCE_MODEL=off``); wherever the answerer chooses among candidate
   sentences, their features and labels (does the sentence hold the item's answer keys / an
   accepted CMRC answer / RGB's answer) are written to a JSONL file, with the answer given.
2. ``fit`` on the **tune** half of every set (a stable hash of set and item id, the split of
   bench/calibrate.py), each set weighing the same:
   - the ranker, a conditional logit over each question's candidates (with and without the
     sentence-vector features);
   - the decider, a logistic model of "the candidates hold the answer" from the ranker's best;
   - per kind, the threshold with the best tune-half accuracy among those that refuse at least
     ``--min-refused`` of the unanswerable items (the generalization issue's targets: 90% for
     our sets, 40% for RGB's rejection); ``--curve`` writes the curve it was chosen on.
3. Every run prints, per set and half, what the fixed thresholds did and what the fitted model
   does (an offline replay of the recorded candidates: the report half measures it, the tune
   half only shows the fit). The real figures come from ``qa-app eval`` / bench/cmrc.py / bench/rgb.py.

    export QA_SENTENCE_MODEL=off
    python bench/fit_answerer.py dump --eval eval_sets/seeds_dev.jsonl:/tmp/qa_seeds \
        --eval eval_sets/seeds_holdout.jsonl:/tmp/qa_seeds --eval eval_sets/seeds_paraphrase.jsonl:/tmp/qa_seeds \
        --eval eval_sets/provinces_dev.jsonl:/tmp/qa_prov \
        --cmrc ../shared/benchmarks/cmrc2018/cmrc2018_trial.json:/tmp/cmrc_pool/cmrc2018_trial \
        --rgb ../shared/benchmarks/rgb_zh --out /tmp/cands.jsonl
    python bench/fit_answerer.py fit /tmp/cands.jsonl --l2 0.001 --curve /tmp/curve.json
"""
from __future__ import annotations

import argparse
import math
import json
import sys
from collections import Counter, defaultdict
from dataclasses import replace
from types import SimpleNamespace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from calibrate import half  # noqa: E402  (the same tune/report split as the threshold grid)
from qa_app.llm.extractive import ExtractiveGenerator  # noqa: E402
from qa_app.llm.sentence_model import (  # noqa: E402
    BUILTIN, DECISION, LEXICAL, SEMANTIC, Linear, SentenceModel, decision_row, features, softmax,
)


class Recorder(ExtractiveGenerator):
    """The extractive generator, keeping the candidates of every choice it makes."""

    def __init__(self, settings):
        super().__init__(settings)
        self.calls: list[tuple] = []

    def choose(self, q, cands):
        chosen = super().choose(q, cands)
        self.calls.append((q, list(cands), [cands.index(c) for c in chosen], [self.supported(q, c) for c in cands]))
        return chosen


_ATTRS = ("lexical", "cov_sentence", "bigram", "has_target", "subject_ok", "rule_ok", "sem", "sem_gap", "retrieval", "span", "echo")


def _record(rec: Recorder, set_name: str, item_id: str, answerable: bool, label, refused: bool, correct: bool) -> dict:
    calls = []
    for q, cands, chosen, supported in rec.calls:
        calls.append({
            "sem": features(q, cands, True), "lex": features(q, cands, False),
            "cands": [{a: getattr(c, a) for a in _ATTRS} for c in cands],
            "q": {"subject": bool(q.subject), "qtype": q.qtype},
            "labels": [bool(label(c.text)) for c in cands], "chosen": chosen, "supported": supported,
        })
    rec.calls.clear()
    # An item the answerer settled without choosing (a scope refusal, a list run) takes its set's kind (load_dumps).
    kind = None if not calls else "semantic" if any(x["sem"] is not None for c in calls for x in c["cands"]) else "lexical"
    return {"set": set_name, "id": item_id, "half": half(set_name, item_id), "answerable": answerable,
            "refused": refused, "correct": correct, "calls": calls, "kind": kind}


def _recording_assistant(data_dir: str):
    """(recorder, assistant) over the index in ``data_dir``."""
    from qa_app.answer import Assistant
    from qa_app.config import settings_with
    from qa_app.index.store import Index

    settings = settings_with(data_dir=data_dir)
    rec = Recorder(settings)
    return rec, Assistant(settings, index=Index(settings), generator=rec)


def _withheld(record: dict) -> dict:
    """A record of a question asked with its evidence withheld: answerable only if some other
    candidate still holds the answer (the labels say), and right when it is refused otherwise."""
    holds = any(any(call["labels"]) for call in record["calls"])
    # The question's own half: a report-half question never reaches the fit, withheld or not.
    return {**record, "set": record["set"] + WITHHELD,
            "answerable": holds, "correct": record["correct"] if holds else record["refused"]}


# A set's questions asked again with the passages that answer them withheld (qa_app/eval/withheld.py,
# as `qa-app eval --withhold-evidence`): the nearest passages that remain (the same report's
# neighbouring figures, the article's other paragraphs) are what an unanswerable question meets,
# in numbers no hand-written set reaches.
WITHHELD = "-withheld"


def dump_eval(spec: str, out, withhold: bool = False) -> None:
    from qa_app.eval.metrics import answer_correct
    from qa_app.eval.sets import load_eval_set
    from qa_app.eval.withheld import withheld_items
    from qa_app.index.hybrid import Filters

    path, _, data_dir = spec.partition(":")
    rec, assistant = _recording_assistant(data_dir)
    name = Path(path).name
    items = load_eval_set(Path(path))
    if withhold:  # the items of `qa-app eval --withhold-evidence`, those with evidence to withhold
        items = [i for i in withheld_items(items, list(assistant.index.snapshot().chunks.values()))[0] if not i.error]
    for item in items:
        answer = assistant.ask(item.question, filters=Filters(without_chunks=item.withhold) if item.withhold else None)
        # A withheld item keeps its answer keys: a candidate that still holds them is labelled so
        # (and _withheld then counts the item answerable).
        keyed = item.answerable or bool(item.withhold)
        correct = (not answer.refused) and answer_correct(item, answer.text) if keyed else answer.refused
        label = (lambda text, item=item: answer_correct(item, text)) if keyed else (lambda text: False)
        record = _record(rec, name, item.id, item.answerable, label, answer.refused, correct)
        out.write(json.dumps(_withheld(record) if withhold else record) + "\n")


def dump_cmrc(spec: str, out, withhold: bool = False) -> None:
    from qa_app.eval import cmrc
    from qa_app.index.hybrid import Filters
    from qa_app.question import QuestionError

    path, _, pool = spec.partition(":")
    rec, assistant = _recording_assistant(pool)
    name = Path(path).name
    snap = assistant.index.snapshot()
    for q in cmrc.load(path).questions:
        # Withheld: the question's whole paragraph, every chunk of it.
        hide = frozenset(c.chunk_id for c in snap.by_doc.get(q.doc_id, ())) if withhold else frozenset()
        try:
            answer = assistant.ask(q.question, filters=Filters(without_chunks=hide) if hide else None)
        except QuestionError:
            rec.calls.clear()
            continue
        correct = not answer.refused and cmrc.holds_answer(answer.text, q.answers)
        label = lambda text, q=q: cmrc.holds_answer(text, q.answers)  # noqa: E731
        record = _record(rec, name, q.id, True, label, answer.refused, correct)
        out.write(json.dumps(_withheld(record) if withhold else record) + "\n")


def dump_rgb(rgb_dir: str, out, vectors_dir: str | None = None, rates=(0.4, 1.0)) -> None:
    from qa_app.eval import rgb
    from qa_app.config import settings_with
    from qa_app.index.store import Index

    settings = settings_with()
    vectors = Index(settings_with(data_dir=vectors_dir)) if vectors_dir else None
    rec = Recorder(settings)
    items = rgb.load("refine", Path(rgb_dir))
    background = rgb.pool_bm25(items)
    for rate in rates:
        name = f"rgb_refine@{rate}" + ("+vectors" if vectors else "")
        for item in items:
            r = rgb.answer_item(rec, item, "refine", rate, background, vectors)
            answerable = rate < 1.0
            label = (lambda text, item=item: rgb.contains_answer(text, item["answer"])) if answerable else (lambda text: False)
            correct = r.correct if answerable else r.rejected
            out.write(json.dumps(_record(rec, name, str(item["id"]), answerable, label, r.rejected, correct)) + "\n")


# --- fitting and replay ---------------------------------------------------------------------
def load_dumps(paths: list[Path]) -> list[dict]:
    records = [json.loads(line) for path in paths for line in path.open(encoding="utf-8")]
    kinds: dict[str, Counter] = defaultdict(Counter)
    for r in records:
        if r["kind"]:
            kinds[r["set"]][r["kind"]] += 1
    for r in records:
        if not r["kind"]:
            r["kind"] = kinds[r["set"]].most_common(1)[0][0] if kinds[r["set"]] else "semantic"
    return records


def ablate(records: list[dict], names: list[str]) -> None:
    """Zero these candidate features (ranker columns and the attributes the decider reads), as
    if the answerer had never computed them: the model they would give is fitted alongside."""
    columns = [LEXICAL.index(n) for n in names]
    for r in records:
        for call in r["calls"]:
            for key in ("sem", "lex"):
                for row in call[key] or ():
                    for i in columns:
                        row[i] = 0.0
            for c in call["cands"]:
                for n in names:
                    c[n] = 0.0


def key_for(record: dict) -> str:
    """Which kind of model an item's candidates go to: with sentence vectors or without."""
    return record["kind"]


def _rowkey(kind: str) -> str:
    return "sem" if kind == "semantic" else "lex"


def _standardise(x):
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    return mean, scale


def _set_weights(sets: list[str]) -> list[float]:
    """Each set weighs the same in a fit, however many items it has (CMRC's 1,000 questions do
    not drown the 60 of a report set), and all weights sum to 1."""
    counts = defaultdict(int)
    for s in sets:
        counts[s] += 1
    return [1.0 / (len(counts) * counts[s]) for s in sets]


def _choices(records: list[dict], kind: str) -> list[tuple[list[list[float]], list[bool], str]]:
    """(candidate rows, labels, set) of every choice a ranker can learn from: two candidates at
    least, some holding the answer and some not."""
    return [(call[_rowkey(kind)], call["labels"], r["set"]) for r in records for call in r["calls"]
            if len(call["labels"]) >= 2 and any(call["labels"]) and not all(call["labels"])]


def fit_ranker(records: list[dict], kind: str, names: tuple[str, ...], l2: float) -> Linear:
    """Conditional logit: for each question whose candidates include one that holds the answer,
    maximise the softmax probability of those, against its other candidates."""
    import numpy as np
    from scipy.optimize import minimize

    choices = _choices(records, kind)
    groups = [(np.asarray(rows, dtype=float), np.asarray(ys, dtype=bool)) for rows, ys, _ in choices]
    mean, scale = _standardise(np.vstack([x for x, _ in groups]))
    weights = _set_weights([s for _, _, s in choices])
    groups = [((x - mean) / scale, y) for x, y in groups]

    def loss(w):
        total, grad = l2 * w @ w, 2 * l2 * w
        for (x, y), weight in zip(groups, weights):
            z = x @ w
            z -= z.max()
            p = np.exp(z)
            p /= p.sum()
            pos = p[y].sum()
            total -= weight * np.log(pos)
            # d(-log Σ_pos p)/dw = E_p[x] − E_{p|pos}[x]
            grad += weight * (p @ x - (p[y] / pos) @ x[y])
        return total, grad

    w = minimize(loss, np.zeros(len(names)), jac=True, method="L-BFGS-B").x
    return Linear(names, tuple(mean.tolist()), tuple(scale.tolist()), tuple(w.tolist()), 0.0)


def _decision_rows(records: list[dict], kind: str, ranker: Linear):
    """(record, call, decision row, best index) for every single-choice item."""
    out = []
    for r in records:
        if len(r["calls"]) != 1 or not r["calls"][0]["labels"]:
            continue
        call = r["calls"][0]
        cands = [SimpleNamespace(**c) for c in call["cands"]]
        q = SimpleNamespace(subject=[1] if call["q"]["subject"] else [], qtype=call["q"]["qtype"])
        rows = call[_rowkey(kind)]
        probs = softmax([ranker.score(row) for row in rows])
        best = max(range(len(probs)), key=probs.__getitem__)
        out.append((r, call, decision_row(q, cands, probs, kind == "semantic"), best))
    return out


def _decisions(records: list[dict], kind: str, ranker) -> tuple[list[list[float]], list[bool], list[float]]:
    """The decider's rows, whether each item's candidates hold the answer at all, and the set weights."""
    data = _decision_rows(records, kind, ranker)
    return ([row for _, _, row, _ in data], [r["answerable"] and any(call["labels"]) for r, call, _, _ in data],
            _set_weights([r["set"] for r, _, _, _ in data]))


def fit_decider(records: list[dict], kind: str, ranker: Linear, l2: float) -> Linear:
    """Logistic: do the candidates hold the answer at all (never, for unanswerable items)? The
    ranker's best is what the decider looks at; whether it is the right one is the ranker's job."""
    import numpy as np
    from scipy.optimize import minimize

    rows, targets, weights = _decisions(records, kind, ranker)
    x, y, weights = np.asarray(rows, dtype=float), np.asarray(targets, dtype=float), np.asarray(weights)
    mean, scale = _standardise(x)
    xs = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])

    def loss(w):
        z = xs @ w
        p = 1 / (1 + np.exp(-np.clip(z, -30, 30)))
        eps = 1e-12
        reg = l2 * (w[:-1] @ w[:-1])
        g = xs.T @ (weights * (p - y))
        g[:-1] += 2 * l2 * w[:-1]
        return -np.sum(weights * (y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps))) + reg, g

    w = minimize(loss, np.zeros(xs.shape[1]), jac=True, method="L-BFGS-B").x
    return Linear(DECISION, tuple(mean.tolist()), tuple(scale.tolist()), tuple(w[:-1].tolist()), float(w[-1]))


class Boosted:
    """Gradient-boosted trees (scikit-learn) in place of a linear ranker or decider, for a replay
    only (``fit --boosted``): the shipped file holds linear models. Scores are computed for all
    rows at once and looked up by row (the replay asks for each row many times)."""

    def __init__(self, clf, rows: list[list[float]]):
        import numpy as np

        self.clf = clf
        p = clf.predict_proba(np.asarray(rows))[:, 1] if rows else []
        self._p = {id(r): float(v) for r, v in zip(rows, p)}

    def probability(self, row) -> float:
        import numpy as np

        p = self._p.get(id(row))
        return p if p is not None else float(self.clf.predict_proba(np.asarray([row]))[0, 1])

    def score(self, row) -> float:  # the ranker's log-odds
        p = min(max(self.probability(row), 1e-6), 1 - 1e-6)
        return math.log(p / (1 - p))


def _trees(leaves: int, leaf: int, rounds: int):
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(max_iter=rounds, learning_rate=0.05, max_leaf_nodes=leaves,
                                          min_samples_leaf=leaf, l2_regularization=1.0, random_state=0)


def fit_boosted(records: list[dict], own: list[dict], kind: str, every: list[dict]):
    """The ranker as a classifier of candidates (each set weighing the same), the decider on its
    best; ``every``: all records the replay will read (their rows are scored once)."""
    import numpy as np

    choices = _choices(records, kind)
    x = [row for rows, _, _ in choices for row in rows]
    y = [label for _, labels, _ in choices for label in labels]
    w = np.asarray(_set_weights([s for rows, _, s in choices for _ in rows])) * len(x)
    rows = [row for r in every for call in r["calls"] for row in (call[_rowkey(kind)] or ())]
    ranker = Boosted(_trees(15, 40, 200).fit(np.asarray(x), np.asarray(y), sample_weight=w), rows)
    xd, yd, wd = _decisions(own, kind, ranker)
    if len(set(yd)) < 2:  # every item answerable (or none): nothing to learn but that
        return ranker, SimpleNamespace(probability=lambda row, p=float(yd[0]) if yd else 0.0: p)
    decider = Boosted(_trees(7, 30, 100).fit(np.asarray(xd), np.asarray(yd), sample_weight=np.asarray(wd) * len(yd)), [])
    return ranker, decider


def replay(record: dict, model: SentenceModel | None) -> tuple[bool, bool]:
    """(refused, outcome ok) of one item: as recorded when the answerer chose nothing or several
    times (compound questions, lists), else the model's choice and decision."""
    if model is None or len(record["calls"]) != 1 or not record["calls"][0]["labels"]:
        return record["refused"], record["correct"]
    kind = key_for(record)
    (r, call, row, best), = _decision_rows([record], kind, model.rankers[kind])
    if model.deciders[kind].probability(row) < model.thresholds[kind]:
        return True, not record["answerable"]
    probs = softmax([model.rankers[kind].score(x) for x in call[_rowkey(kind)]])
    mass, hit = 0.0, False
    for i in sorted(range(len(probs)), key=lambda i: -probs[i])[:2]:  # QA_ANSWER_MAX_SENTENCES
        hit, mass = hit or call["labels"][i], mass + probs[i]
        if mass >= model.answer_mass:
            break
    return False, record["answerable"] and hit


def measure(records: list[dict], model) -> dict[str, float]:
    answerable = [r for r in records if r["answerable"]]
    unanswerable = [r for r in records if not r["answerable"]]
    out = [replay(r, model) for r in answerable]
    miss = [replay(r, model) for r in unanswerable]
    mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")  # noqa: E731
    return {"n": len(records), "accuracy": mean([ok for _, ok in out]), "false_refusals": mean([ref for ref, _ in out]),
            "missed_refusals": mean([not ref for ref, _ in miss])}


def curve(records: list[dict], model: SentenceModel, kind: str) -> list[tuple[float, float, float, float]]:
    """(threshold, accuracy, false refusals, missed refusals) of ``kind``'s decider over
    ``records``, each averaged over the sets that have such items (every set weighs the same)."""
    by_set = defaultdict(list)
    for r in records:
        by_set[r["set"]].append(r)
    points = []
    for t in [i / 100 for i in range(2, 96, 2)]:
        at = replace(model, thresholds={**model.thresholds, kind: t})
        ms = [measure(rs, at) for rs in by_set.values()]
        avg = lambda key: (lambda xs: sum(xs) / len(xs) if xs else float("nan"))([m[key] for m in ms if m[key] == m[key]])  # noqa: E731
        points.append((t, avg("accuracy"), avg("false_refusals"), avg("missed_refusals")))
    return points


def operating_point(points: list[tuple[float, float, float, float]], min_refused: float) -> float:
    """The threshold with the best accuracy among those that refuse at least ``min_refused`` of
    the unanswerable items (the issue's targets); the one that refuses most when none does."""
    ok = [p for p in points if p[3] != p[3] or 1 - p[3] >= min_refused - 1e-9]
    if not ok:
        return min(points, key=lambda p: p[3])[0]
    return max(ok, key=lambda p: (p[1], -p[0]))[0]


def plot(curves: dict[str, list[tuple[float, float, float, float]]], chosen: dict[str, float], path: Path) -> None:
    """False refusals against missed refusals as the decider's threshold moves, per kind, with
    the operating point marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=110)
    for kind, points in curves.items():
        xs = [p[2] for p in points]
        ys = [p[3] for p in points]
        ax.plot(xs, ys, marker=".", label=f"{kind} (tune half)")
        at = min(points, key=lambda p: abs(p[0] - chosen[kind]))
        ax.annotate(f"threshold {chosen[kind]:.2f}", (at[2], at[3]), textcoords="offset points", xytext=(8, 8))
        ax.plot([at[2]], [at[3]], "o", color="black")
    ax.set_xlabel("false refusals (answerable items refused)")
    ax.set_ylabel("missed refusals (unanswerable items answered)")
    ax.set_title("When the extractive answerer answers: the decider's threshold")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


def table(records: list[dict], model) -> str:
    lines = ["| set | half | n | now: acc / false ref / missed ref | fitted: acc / false ref / missed ref |", "|---|---|---|---|---|"]
    groups = defaultdict(list)
    for r in records:
        groups[(r["set"], r["half"])].append(r)
    fmt = lambda m: " / ".join("–" if v != v else f"{v:.3f}" for v in (m["accuracy"], m["false_refusals"], m["missed_refusals"]))  # noqa: E731
    for (s, h), rs in sorted(groups.items()):
        lines.append(f"| {s} | {h} | {len(rs)} | {fmt(measure(rs, None))} | {fmt(measure(rs, model))} |")
    return "\n".join(lines)


def with_operating_point(model: SentenceModel, tune: list[dict], kind: str, min_refused: float):
    """``model`` with ``kind``'s threshold at its operating point on the tune half, and the curve it
    was chosen on. The operating point is chosen on the questions people wrote (the issue's targets
    are theirs); withheld questions teach the decider, they do not set the bar."""
    written = [r for r in tune if not r["set"].endswith(WITHHELD)]
    points = curve([r for r in written if key_for(r) == kind] or written, model, kind)
    return replace(model, thresholds={**model.thresholds, kind: operating_point(points, min_refused)}), points


def write_model(args, model: SentenceModel) -> None:
    if not args.dry_run:
        args.out.write_text(json.dumps(model.to_dict(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        print(f"\nwritten: {args.out}")


def decider_only(args, records: list[dict], tune: list[dict], measured: list[dict]) -> None:
    """Refit one kind's decider on the tune half, the base model's ranker reading the candidates,
    and choose its threshold by the same rule: for when what a decider reads has moved (a new
    question vector, new answer kinds) but the rankers still order the candidates well."""
    from qa_app.llm import sentence_model

    kind = args.decider_only
    base = sentence_model.load(args.base)
    own = [r for r in tune if key_for(r) == kind]
    model = replace(base, deciders={**base.deciders, kind: fit_decider(own or tune, kind, base.rankers[kind], args.l2)})
    model, points = with_operating_point(model, tune, kind, args.min_refused if kind == "semantic" else args.min_refused_lexical)
    sets = sorted({r["set"] for r in own or tune})
    model = replace(model, fitted_on=f"{base.fitted_on}; the {kind} decider refitted on the tune halves of {', '.join(sets)}")
    print(f"{kind} decider: threshold {model.thresholds[kind]} (was {base.thresholds[kind]})\n")
    print(table(records + measured, model))
    print(f"\ndecider {kind}: " + ", ".join(f"{n} {w:+.2f}" for n, w in zip(model.deciders[kind].names, model.deciders[kind].coef)))
    if args.curve:
        args.curve.write_text(json.dumps({kind: points}) + "\n", encoding="utf-8")
    write_model(args, model)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dump", help="record candidates and labels")
    d.add_argument("--eval", action="append", default=[], help="SET.jsonl:DATA_DIR (an index over its corpus)")
    d.add_argument("--cmrc", action="append", default=[], help="SQuAD-format FILE:POOL_DIR (bench/cmrc.py --pool-dir)")
    d.add_argument("--rgb", help="the RGB zh data folder (generator mode, noise 0.4 and 1.0)")
    d.add_argument("--rgb-vectors", help="an index folder whose embedding cache gives RGB's passages sentence vectors "
                                         "(bench/rgb.py --pool-dir); default: plain passages")
    d.add_argument("--out", type=Path, required=True)
    d.add_argument("--withhold", action="store_true",
                   help="ask the --eval and --cmrc questions with the passages that answer them withheld "
                        "(sets named <set>-withheld): unanswerable questions that meet their nearest neighbours")
    f = sub.add_parser("fit", help="fit on the tune half, report both halves")
    f.add_argument("dumps", type=Path, nargs="+")
    f.add_argument("--l2", type=float, default=0.01, help="L2 penalty on the standardised weights")
    f.add_argument("--curve", type=Path, help="write the tune half's curve (threshold, accuracy, false, missed refusals) as JSON")
    f.add_argument("--min-refused", type=float, default=0.9,
                   help="share of unanswerable items the semantic decider must refuse (the issue's target: 0.9)")
    f.add_argument("--min-refused-lexical", type=float, default=0.4,
                   help="the same for the lexical decider (RGB's rejection target: 0.4)")
    f.add_argument("--out", type=Path, default=BUILTIN)
    f.add_argument("--plot", type=Path, help="draw the curves (PNG), the operating points marked")
    f.add_argument("--dry-run", action="store_true", help="print the table, write nothing")
    f.add_argument("--measure", type=Path, nargs="*", default=[],
                   help="dumps replayed in the table but never fitted on (e.g. a --withhold dump)")
    f.add_argument("--boosted", action="store_true",
                   help="gradient-boosted trees (scikit-learn) instead of the linear models: the table only, "
                        "nothing written (an experiment; the shipped file holds linear models)")
    f.add_argument("--drop", default="", help="candidate features to zero before fitting (comma-separated names "
                                               "of LEXICAL that are also candidate attributes): an ablation")
    f.add_argument("--decider-only", choices=("semantic", "lexical"),
                   help="refit only this kind's decider and its threshold, on top of the shipped model (--base): "
                        "its rankers and the other kind stay as they are")
    f.add_argument("--base", type=Path, default=BUILTIN, help="the model --decider-only starts from (default: the shipped one)")
    args = ap.parse_args()
    if args.cmd == "dump":
        with args.out.open("w", encoding="utf-8") as out:
            for spec in args.eval:
                dump_eval(spec, out, args.withhold)
            for spec in args.cmrc:
                dump_cmrc(spec, out, args.withhold)
            if args.rgb:
                dump_rgb(args.rgb, out, args.rgb_vectors)
        return
    records = load_dumps(args.dumps)
    if args.drop:
        ablate(records, args.drop.split(","))
    tune = [r for r in records if r["half"] == "tune"]
    measured = load_dumps(args.measure) if args.measure else []
    if args.drop:
        ablate(measured, args.drop.split(","))
    if args.decider_only:
        decider_only(args, records, tune, measured)
        return
    rankers, deciders = {}, {}
    for kind in ("semantic", "lexical"):
        own = [r for r in tune if key_for(r) == kind]
        names = LEXICAL + SEMANTIC if kind == "semantic" else LEXICAL
        # Which sentence answers reads the same in any setting: the lexical ranker learns from
        # every set (their rows without the vector features). How sure to be before answering
        # depends on where the passages come from (an index's ranking, or handed over as they
        # are), so each decider learns from the sets of its own kind.
        # (With no set of a kind at hand, every set stands in for it.)
        if args.boosted:
            rankers[kind], deciders[kind] = fit_boosted(tune if kind == "lexical" or not own else own, own or tune, kind,
                                                        records + measured)
            continue
        rankers[kind] = fit_ranker(tune if kind == "lexical" or not own else own, kind, names, args.l2)
        deciders[kind] = fit_decider(own or tune, kind, rankers[kind], args.l2)
    sets = sorted({r["set"] for r in tune})
    model = SentenceModel(rankers, deciders, {"semantic": 0.5, "lexical": 0.5}, "tune halves of " + ", ".join(sets))
    curves = {}
    for kind, min_refused in (("semantic", args.min_refused), ("lexical", args.min_refused_lexical)):
        model, curves[kind] = with_operating_point(model, tune, kind, min_refused)
    print(f"thresholds {model.thresholds} (tune half; at least {args.min_refused:.0%} / {args.min_refused_lexical:.0%} "
          "of unanswerable items refused)\n")
    print(table(records + measured, model))
    if args.boosted:
        return
    for kind in rankers:
        print(f"\nranker {kind}: " + ", ".join(f"{n} {w:+.2f}" for n, w in zip(rankers[kind].names, rankers[kind].coef)))
        print(f"decider {kind}: " + ", ".join(f"{n} {w:+.2f}" for n, w in zip(deciders[kind].names, deciders[kind].coef)))
    if args.curve:
        args.curve.write_text(json.dumps(curves) + "\n", encoding="utf-8")
    if args.plot:
        plot(curves, model.thresholds, args.plot)
    write_model(args, model)

if __name__ == "__main__":
    main()
