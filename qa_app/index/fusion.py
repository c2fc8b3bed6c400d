"""Fusing the three rankings (BM25, chunk vectors, closest sentence) with a model fitted on data.

Each channel proposes its ``candidates`` best chunks; every chunk of the union is described by
how each channel saw it (its score, how far behind that channel's best, its rank, whether it
made that channel's list at all), whether it speaks for the year the question names, whether
its report is the one the question names, and its length. A linear score over those, fitted by
``bench/fit_retrieval.py`` as a conditional logit (the chunks that hold the evidence against
the question's other candidates) on the tune halves of the eval sets and the CMRC 2018 trial
file, replaces hand-set channel weights and boosts. The passage score is the softmax
probability over the union: positive, comparable between one question's passages.
"""
from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from qa_app.linear import Linear, softmax
from qa_app.text import normalize, year_scope

if TYPE_CHECKING:  # pragma: no cover
    from qa_app.index.query import Query
    from qa_app.index.store import Snapshot

BUILTIN = Path(__file__).resolve().parent.parent / "resources" / "retrieval_model.json"

FEATURES = (
    "bm25", "bm25_rank", "in_bm25",
    "dense", "dense_gap", "dense_rank", "in_dense",
    "sentence", "sentence_gap", "sentence_rank", "in_sentence",
    "year", "year_other", "title", "length",
)


class FusionModelError(ValueError):
    """A retrieval model file that cannot be used."""


def feature_rows(
    lexical: list[tuple[str, float]], dense: list[tuple[str, float]], sentences: list[tuple[str, float]],
    snap: "Snapshot", query: "Query", depth: int,
) -> tuple[list[str], list[list[float]]]:
    """The union of the channels' candidates (in first-seen order) and one row of ``FEATURES``
    each. A chunk a channel did not propose gets that channel's lowest score and rank ``depth``."""
    ids = [c for c in dict.fromkeys([c for c, _ in lexical] + [c for c, _ in dense] + [c for c, _ in sentences])
           if c in snap.chunks and snap.chunks[c].doc_id in snap.docs]
    channels = []
    for hits, scale in ((lexical, True), (dense, False), (sentences, False)):
        scores = dict(hits)
        ranks = {c: i for i, (c, _) in enumerate(hits)}
        top = max(scores.values(), default=0.0)
        floor = min(scores.values(), default=0.0)
        channels.append((scores, ranks, top, floor, scale))
    years = set(query.years)
    named = named_reports(snap, query)
    rows = []
    for cid in ids:
        chunk = snap.chunks[cid]
        doc = snap.docs[chunk.doc_id]
        row: list[float] = []
        for i, (scores, ranks, top, floor, scale) in enumerate(channels):
            value = scores.get(cid, floor)
            if scale:  # BM25 scores mean nothing across questions; their share of the best does
                row += [value / top if top > 0 else 0.0, math.log1p(ranks.get(cid, depth)), 1.0 if cid in ranks else 0.0]
            else:
                row += [value, top - value, math.log1p(ranks.get(cid, depth)), 1.0 if cid in ranks else 0.0]
        about_year = bool(years) and bool(year_scope(chunk.norm, normalize(chunk.section), doc.years(), years))
        row += [
            1.0 if about_year else 0.0,
            1.0 if years and not about_year else 0.0,
            1.0 if doc.doc_id in named else 0.0,
            math.log1p(len(chunk.norm)),
        ]
        rows.append(row)
    return ids, rows


def named_reports(snap: "Snapshot", query: "Query") -> set[str]:
    """The documents whose title holds a longer term of the question ("政府工作报告", "十三五规划")."""
    terms = query.title_terms()
    return {d.doc_id for d in snap.docs.values() if any(t in normalize(d.title).lower() for t in terms)} if terms else set()


def fuse(model: Linear, ids: list[str], rows: list[list[float]]) -> dict[str, float]:
    """Each candidate's probability of being the one that holds the answer."""
    return dict(zip(ids, softmax([model.score(r) for r in rows])))


@lru_cache(maxsize=4)
def load(path: str | Path = BUILTIN) -> Linear:
    try:
        model = Linear.from_dict(json.loads(Path(path).read_text(encoding="utf-8"))["ranker"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise FusionModelError(f"检索模型文件无法读取：{path}（{exc}）(Cannot read the retrieval model {path}: {exc})") from exc
    if model.names != FEATURES:
        raise FusionModelError(f"检索模型的特征与本版本不符：{path} (The retrieval model {path} was fitted on other "
                               "features: refit it with bench/fit_retrieval.py)")
    return model
