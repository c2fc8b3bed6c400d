"""Which sentence answers, and whether any may: two small models fitted on data.

The extractive answerer knows a lot about each candidate sentence — how much of the question
it covers by word (in itself, or through its heading and neighbours) and by character pairs,
how close in meaning it is (the sentence vectors), whether it holds the kind of answer asked
for, where its passage ranked, where it stands in the passage, whether it states a goal, and
what the hand-set rules made of it. Two models weigh that evidence:

- the **ranker** gives every candidate a score; a softmax over one question's candidates is
  the probability that each is the one that answers (fitted as a conditional logit: the
  likelihood of the sentences that hold the answer, against the question's other candidates);
- the **decider** looks at the best candidate against the rest (its share of the probability,
  its lead over the second, its own evidence) and gives the probability that it answers at
  all; the answer is a refusal below ``threshold``, the operating point chosen on the curve of
  false against missed refusals.

Both are linear (a dot product at run time, no library beyond the standard one), fitted by
``bench/fit_answerer.py`` on the tune halves of the eval sets, the CMRC 2018 trial file and
RGB (never their report halves), and shipped as package data (``resources/sentence_model.json``).
Each comes in two kinds: with sentence vectors, and lexical for passages given as plain text
(benchmark passages that never went through an index).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, Sequence

from qa_app.linear import Linear, softmax

if TYPE_CHECKING:  # pragma: no cover
    from qa_app.question import QuestionAnalysis


class Candidate(Protocol):
    """What the models read of a candidate sentence (``qa_app.llm.extractive.Candidate`` has it all)."""

    passage_index: int
    position: int
    norm: str
    score: float  # the fixed rules' score
    lexical: float  # word coverage, the sentence with its heading and neighbours
    cov_sentence: float  # word coverage, the sentence alone
    bigram: float
    shared: float
    wh_left: float
    wh_right: float
    has_target: bool
    sets_goal: bool
    subject_ok: bool
    rule_ok: bool
    retrieval: float
    sem: float | None
    sem_gap: float
    span: bool
    echo: float

BUILTIN = Path(__file__).resolve().parent.parent / "resources" / "sentence_model.json"

LEXICAL = (
    "lexical", "cov_sentence", "lexical_gap", "lexical_top", "typed_hit", "typed_miss", "passage_rank",
    "first_passage", "position", "first_sentence", "length", "sets_goal", "goal_asked", "subject_ok",
    "retrieval", "bigram", "bigram_gap", "rule_score", "rule_gap", "rule_ok", "rule_top",
    "shared", "shared_top", "wh_left", "wh_right", "wh_both", "goal_unasked", "span_unasked", "span_asked",
    "echo",
)
SEMANTIC = ("sem", "sem_gap", "sem_top", "sem_rank")
DECISION = (
    "p_top", "p_lead", "n_candidates", "no_subject", "typed_question", "has_sem",
    "top_lexical", "top_cov_sentence", "top_bigram", "top_typed_hit", "top_typed_miss", "top_subject_ok",
    "top_rule_ok", "top_sem", "top_sem_gap", "top_retrieval", "any_rule_ok",
)


def features(q: "QuestionAnalysis", cands: Sequence[Candidate], semantic: bool) -> list[list[float]]:
    """One row per candidate, in the order of ``LEXICAL`` (+ ``SEMANTIC``). Some features are
    relative to the other candidates of the same question (gap to the best), so rows are made
    for a question's candidates together."""
    if not cands:
        return []
    best_lexical = max(c.lexical for c in cands)
    best_bigram = max(c.bigram for c in cands)
    best_rule = max(c.score for c in cands)
    best_shared = max(c.shared for c in cands)
    typed = q.qtype in ("number", "time", "list")
    sems = sorted((c.sem for c in cands if c.sem is not None), reverse=True)
    rows = []
    for c in cands:
        row = [
            c.lexical,
            c.cov_sentence,
            best_lexical - c.lexical,
            1.0 if c.lexical >= best_lexical - 1e-9 else 0.0,
            1.0 if typed and c.has_target else 0.0,
            1.0 if typed and not c.has_target else 0.0,
            math.log1p(c.passage_index),
            1.0 if c.passage_index == 0 else 0.0,
            math.log1p(c.position),
            1.0 if c.position == 0 else 0.0,
            math.log1p(len(c.norm)),
            1.0 if c.sets_goal else 0.0,
            1.0 if c.sets_goal and q.stance == "target" else 0.0,
            1.0 if c.subject_ok else 0.0,
            c.retrieval,
            c.bigram,
            best_bigram - c.bigram,
            c.score,
            best_rule - c.score,
            1.0 if c.rule_ok else 0.0,
            1.0 if c.score >= best_rule - 1e-9 else 0.0,
            c.shared,
            1.0 if c.shared >= best_shared - 1e-9 else 0.0,
            c.wh_left,
            c.wh_right,
            c.wh_left * c.wh_right,
            1.0 if c.sets_goal and q.stance != "target" else 0.0,  # results come first unless plans are asked
            # One year asked, and the sentence gives a figure over several (年均 over 十四五): another answer.
            1.0 if c.span and q.years and not q.asks_span else 0.0,
            1.0 if c.span and q.asks_span else 0.0,
            c.echo,  # a sentence that only restates the question does not answer it
        ]
        if semantic:
            sem = c.sem if c.sem is not None else (sems[-1] if sems else 0.0)
            rank = sems.index(c.sem) if c.sem is not None else len(sems)
            row += [sem, c.sem_gap, 1.0 if c.sem is not None and c.sem_gap <= 1e-9 else 0.0, math.log1p(rank)]
        rows.append(row)
    return rows


def decision_row(q: "QuestionAnalysis", cands: Sequence[Candidate], probs: Sequence[float], semantic: bool) -> list[float]:
    """The decider's evidence (``DECISION``) about the most probable candidate (its meaning
    features only for the semantic kind: the lexical one never sees sentence vectors)."""
    order = sorted(range(len(probs)), key=lambda i: -probs[i])
    top = cands[order[0]]
    second = probs[order[1]] if len(order) > 1 else 0.0
    typed = q.qtype in ("number", "time", "list")
    has_sem = semantic and top.sem is not None
    return [
        probs[order[0]],
        probs[order[0]] - second,
        math.log1p(len(cands)),
        0.0 if q.subject else 1.0,
        1.0 if typed else 0.0,
        1.0 if has_sem else 0.0,
        top.lexical,
        top.cov_sentence,
        top.bigram,
        1.0 if typed and top.has_target else 0.0,
        1.0 if typed and not top.has_target else 0.0,
        1.0 if top.subject_ok else 0.0,
        1.0 if top.rule_ok else 0.0,
        top.sem if has_sem else 0.0,
        top.sem_gap if has_sem else 0.0,
        top.retrieval,
        1.0 if any(c.rule_ok for c in cands) else 0.0,
    ]


@dataclass(frozen=True)
class Judgement:
    probs: list[float]  # per candidate: the ranker's probability that it is the one that answers
    best: int  # the most probable candidate
    confidence: float  # the decider's probability that it answers at all
    answers: bool  # the confidence reaches the operating point


@dataclass(frozen=True)
class SentenceModel:
    rankers: dict[str, Linear]  # "semantic" / "lexical"
    deciders: dict[str, Linear]
    thresholds: dict[str, float]  # per kind: answer when the decider's probability reaches this
    fitted_on: str = ""
    # The answer quotes the most probable sentences until together they hold this much of the
    # probability (at most QA_ANSWER_MAX_SENTENCES of them).
    answer_mass: float = 0.7

    def judge(self, q: "QuestionAnalysis", cands: Sequence[Candidate]) -> Judgement:
        kind = "semantic" if any(c.sem is not None for c in cands) else "lexical"
        rows = features(q, cands, kind == "semantic")
        probs = softmax([self.rankers[kind].score(r) for r in rows])
        best = max(range(len(probs)), key=probs.__getitem__)
        confidence = self.deciders[kind].probability(decision_row(q, cands, probs, kind == "semantic"))
        return Judgement(probs, best, confidence, confidence >= self.thresholds[kind])

    def to_dict(self) -> dict:
        return {"rankers": {k: m.to_dict() for k, m in self.rankers.items()},
                "deciders": {k: m.to_dict() for k, m in self.deciders.items()},
                "thresholds": self.thresholds, "answer_mass": self.answer_mass, "fitted_on": self.fitted_on}


class SentenceModelError(ValueError):
    """A sentence model file that cannot be used."""


def expected_names(kind: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return (LEXICAL + SEMANTIC if kind == "semantic" else LEXICAL), DECISION


@lru_cache(maxsize=4)
def load(path: str | Path = BUILTIN) -> SentenceModel:
    try:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
        model = SentenceModel(
            {k: Linear.from_dict(v) for k, v in d["rankers"].items()},
            {k: Linear.from_dict(v) for k, v in d["deciders"].items()},
            {k: float(v) for k, v in d["thresholds"].items()}, d.get("fitted_on", ""), float(d.get("answer_mass", 0.7)),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SentenceModelError(f"句子模型文件无法读取：{path}（{exc}）(Cannot read the sentence model {path}: {exc})") from exc
    for kind in ("semantic", "lexical"):
        ranker, decider = expected_names(kind)
        if kind not in model.rankers or kind not in model.deciders or kind not in model.thresholds \
                or model.rankers[kind].names != ranker \
                or model.deciders[kind].names != decider:
            raise SentenceModelError(f"句子模型的特征与本版本不符：{path} (The sentence model {path} was fitted on other "
                                     "features: refit it with bench/fit_answerer.py)")
    return model
