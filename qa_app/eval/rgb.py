"""RGB (Chen et al., "Benchmarking Large Language Models in Retrieval-Augmented Generation",
AAAI 2024, arXiv:2309.01431), Chinese data, as an evaluation adapter for our pipeline.

The data is CC BY-NC-SA 4.0: it is read by path from ``<project>/../shared/benchmarks/rgb_zh``
(or ``QA_RGB_DIR``) and never copied into the project.

Two modes:
- generator mode, as in the paper: each question gets exactly 5 passages sampled the way the
  upstream ``evalue.py`` does it (``random.seed(2333)`` before each item; noise rate r takes
  the first ⌈5r⌉ negatives and the first 5−⌈5r⌉ positives, then shuffles), and our generator
  answers from those alone. Scored by the upstream rule: every required answer string in
  the output, an output containing 信息不足 is a rejection (our refusal maps to that).
- open-corpus mode (ours): every zh_refine passage pooled into one index, each question
  answered by retrieval over the whole pool.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from qa_app.config import PROJECT_DIR
from qa_app.eval.metrics import rank_metrics
from qa_app.index.bm25 import BM25Index
from qa_app.index.query import Query
from qa_app.index.tokenize import tokens
from qa_app.models import Answer, Chunk, DocumentInfo, Passage
from qa_app.question import QuestionAnalysis, analyse
from qa_app.text import normalize

RGB_DIR_ENV = "QA_RGB_DIR"
FILES = {"refine": "zh_refine.jsonl", "int": "zh_int.jsonl", "fact": "zh_fact.jsonl"}
SEED = 2333
PASSAGE_NUM = 5
NOISE_RATES = (0.0, 0.2, 0.4, 0.6, 0.8)
INT_NOISE_RATES = (0.0, 0.2, 0.4)  # the rates the paper reports for information integration
# The substrings upstream's scorer looks for (its prompt tells a model to answer with
# sentences that hold them), and our refusal put in those terms.
REJECT_MARK = "信息不足"
REJECTION = "信息不足：给定的资料不能回答这个问题。"
FACT_MARK = "事实性错误"


class RGBNotFound(FileNotFoundError):
    pass


def default_rgb_dir() -> Path:
    return Path(os.environ.get(RGB_DIR_ENV) or PROJECT_DIR.parent / "shared" / "benchmarks" / "rgb_zh")


def load(task: str, rgb_dir: Path | None = None) -> list[dict[str, Any]]:
    """The items of one RGB file ("refine", "int" or "fact"), read in place."""
    path = Path(rgb_dir or default_rgb_dir()) / FILES[task]
    if not path.is_file():
        raise RGBNotFound(f"RGB benchmark not found at {path}: it lives in ../shared beside the clone")
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# --- sampling: the upstream processdata(), so our numbers line up with the paper's -----------
def sample(item: dict[str, Any], task: str, noise_rate: float, n: int = PASSAGE_NUM) -> list[str]:
    """The n passages upstream gives a model for ``item`` at ``noise_rate``. The generator is
    reseeded per item, as upstream does, so an item's passages do not depend on its neighbours."""
    rng = random.Random(SEED)
    pick = {"refine": _sample_refine, "int": _sample_int, "fact": _sample_fact}[task]
    docs = pick(item, noise_rate, n, rng)
    rng.shuffle(docs)
    return docs


def _sample_refine(item, noise_rate, n, rng) -> list[str]:
    neg = math.ceil(n * noise_rate)
    pos = n - neg
    if noise_rate == 1:
        neg, pos = n, 0
    elif neg > len(item["negative"]):  # too few negatives: positives make up the rest
        neg = len(item["negative"])
        pos = n - neg
    elif pos > len(item["positive"]):
        pos = len(item["positive"])
        neg = n - pos
    return item["positive"][:pos] + item["negative"][:neg]


def _sample_int(item, noise_rate, n, rng) -> list[str]:
    """One passage from each supporting group first (every sub-answer gets its evidence, so
    there may be more than n), then round-robin over the groups, then negatives."""
    pos = n - math.ceil(n * noise_rate)
    groups = [list(g) for g in item["positive"]]  # upstream shuffles in place; we copy
    for g in groups:
        rng.shuffle(g)
    docs = [g[0] for g in groups]
    for depth in range(1, max(len(g) for g in groups)):
        if len(docs) >= pos:
            break
        for g in groups:
            if len(g) > depth:
                docs.append(g[depth])
                if len(docs) == pos:
                    break
    return docs + item["negative"][: max(n - len(docs), 0)]


def _sample_fact(item, noise_rate, n, rng) -> list[str]:
    """Upstream defaults (correct_rate 0): the counterfactual versions of up to n positives."""
    neg = math.ceil(n * noise_rate)
    chosen = rng.sample(range(len(item["positive"])), min(len(item["positive"]), n - neg))
    return [item["positive_wrong"][i] for i in chosen] + item["negative"][:neg]


# --- scoring: the upstream rule -----------------------------------------------------------
def answer_labels(prediction: str, answer: Any) -> list[int]:
    """One 0/1 per required answer element; a nested list is a set of alternatives (any one
    will do). [-1] when the output is a rejection: then the answer is not looked at.
    Upstream drops ASCII spaces from Chinese outputs and compares in lower case (so its
    English rejection phrase can never match a Chinese output: only 信息不足 counts)."""
    text = prediction.replace(" ", "").lower()
    return [-1] if REJECT_MARK in text else _element_labels(text, answer)


def _element_labels(text: str, answer: Any) -> list[int]:
    required = answer if isinstance(answer, list) else [answer]
    options = [element if isinstance(element, list) else [element] for element in required]
    return [int(any(str(o).lower() in text for o in alternatives)) for alternatives in options]


def is_correct(labels: list[int]) -> bool:
    return 0 not in labels and 1 in labels


def flags_error(prediction: str) -> bool:
    return FACT_MARK in prediction.replace(" ", "")


def prediction_text(answer: Answer) -> str:
    """Our answer as the paper's scorer should read it: a refusal says 信息不足, as the
    upstream prompt instructs; what follows it (a quoted sentence) is kept for the record."""
    return f"{REJECTION}{answer.text}" if answer.refused else answer.text


# --- passages as our objects -------------------------------------------------------------
_MONTHS = {m: i for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}
_EN_DATE = re.compile(r"^\s*(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]* (\d{1,2}), ((?:19|20)\d{2})")
_NUM_DATE = re.compile(r"^\s*((?:19|20)\d{2})(?:-|年)(\d{1,2})(?:-|月)(\d{1,2})")


def leading_date(text: str) -> tuple[str, int | None]:
    """The publication date a search snippet opens with ("Nov 10, 2022 ...", "2022年11月10日"),
    as (ISO date, year): like a report's date, it lets the answerer place an undated sentence
    in its year."""
    m = _EN_DATE.match(text)
    if m:
        y, mo, d = int(m.group(3)), _MONTHS[m.group(1)], int(m.group(2))
    else:
        m = _NUM_DATE.match(text)
        if not m:
            return "", None
        y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if not (1 <= mo <= 12 and 1 <= d <= 31):
        return "", None
    return f"{y:04d}-{mo:02d}-{d:02d}", y


def passage_id(text: str) -> str:
    return "rgb_" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def as_document(text: str, doc_id: str | None = None) -> tuple[DocumentInfo, Chunk]:
    """One passage = one document with one chunk (no section, no title: snippets have none)."""
    doc_id = doc_id or passage_id(text)
    date, year = leading_date(text)
    doc = DocumentInfo(doc_id=doc_id, title="", date=date, year=year, kind="rgb", sha256=doc_id[4:])
    chunk = Chunk(f"{doc_id}#0", doc_id, 0, text, normalize(text), "", 0, len(text))
    return doc, chunk


def as_passages(texts: list[str]) -> list[Passage]:
    """The given passages, in the given order, as if retrieved (rank 1..n)."""
    out = []
    for rank, text in enumerate(texts, 1):
        doc, chunk = as_document(text, f"p{rank}")
        out.append(Passage(chunk, doc, score=1.0, rank=rank))
    return out


def analysis_for(question: str, passages: list[Passage], background: BM25Index | None = None) -> QuestionAnalysis:
    """The question analysed against the given passages alone, as the Assistant does against
    its index: "known" means "occurs in these passages", so a question about something none of
    them mentions is refused. Term weights come from a BM25 over these passages (a term every
    passage shares says little about which sentence answers) unless ``background`` — an index
    over a larger corpus — is given to supply steadier ones."""
    local = BM25Index.build([p.chunk.chunk_id for p in passages], [tokens(p.chunk.index_text()) for p in passages])
    corpus = "\n".join(p.chunk.norm.lower() for p in passages)
    idf = (background or local).term_idf
    return analyse(Query.parse(question), idf, lambda t: local.knows(t) or t.lower() in corpus)


def pool_bm25(items: Iterable[dict[str, Any]]) -> BM25Index:
    """A BM25 over every passage of ``items``: background term weights for generator mode."""
    texts = pool_texts(items)
    return BM25Index.build([passage_id(t) for t in texts], [tokens(normalize(t)) for t in texts])


# --- generator mode ------------------------------------------------------------------------
@dataclass
class ItemResult:
    id: int
    noise_rate: float
    labels: list[int]
    fact_flag: bool
    prediction: str
    ms: float

    @property
    def correct(self) -> bool:
        return is_correct(self.labels)

    @property
    def rejected(self) -> bool:
        return self.labels == [-1]


def answer_item(generator, item: dict[str, Any], task: str, noise_rate: float, background: BM25Index | None = None,
                vectors=None) -> ItemResult:
    """Our generator's answer to one item from its sampled passages, scored the upstream way.
    ``vectors``: an Index whose embedding cache gives the sentences their similarity with the
    question, as retrieval does for indexed passages (None: words alone, the paper's setting)."""
    t0 = time.perf_counter()
    passages = as_passages(sample(item, task, noise_rate))
    if vectors is not None:
        vectors.add_sentence_similarities(passages, item["query"])
    answer = generator.generate(analysis_for(item["query"], passages, background), passages)
    ms = (time.perf_counter() - t0) * 1000
    prediction = prediction_text(answer)
    return ItemResult(item["id"], noise_rate, answer_labels(prediction, item["answer"]), flags_error(prediction), prediction, ms)


def run_generator(
    generator, items: list[dict[str, Any]], task: str, noise_rate: float, background: BM25Index | None = None, vectors=None
) -> list[ItemResult]:
    return [answer_item(generator, item, task, noise_rate, background, vectors) for item in items]


@dataclass
class Summary:
    n: int
    accuracy: float  # upstream all_rate below noise 1.0: every required answer string present
    rejection: float  # share of outputs that say 信息不足 (Rej; upstream all_rate at noise 1.0 also counts answered items)
    error_detection: float  # share that say 事实性错误 (ED)
    correction: float  # of those flagged, the share with the true answer (CR; 0 when none flagged)
    ms_p50: float

    def to_dict(self) -> dict[str, float]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in self.__dict__.items()}


def summarise(results: list[ItemResult]) -> Summary:
    n = len(results)
    flagged = [r for r in results if r.fact_flag]
    times = sorted(r.ms for r in results)
    return Summary(
        n=n,
        accuracy=sum(r.correct for r in results) / n if n else 0.0,
        rejection=sum(r.rejected for r in results) / n if n else 0.0,
        error_detection=len(flagged) / n if n else 0.0,
        correction=sum(0 not in r.labels for r in flagged) / len(flagged) if flagged else 0.0,
        ms_p50=times[n // 2] if n else 0.0,
    )


# --- open-corpus mode -------------------------------------------------------------------
def pool_texts(items: Iterable[dict[str, Any]]) -> list[str]:
    """Every positive and negative passage once, in first-seen order (zh_int's positives come
    in groups, one per sub-answer: flattened)."""

    def flat(xs):
        for x in xs:
            yield from (flat(x) if isinstance(x, list) else [x])

    return list(dict.fromkeys(t for item in items for t in flat([item["positive"], item["negative"]])))


def build_pool(index, texts: list[str], progress: bool = True) -> int:
    """Index each passage as a one-chunk document; passages already in the index are skipped,
    so a half-built pool resumes (and the embedding cache saves the vectors made so far).
    Returns how many were added."""
    from tqdm import tqdm

    have = set(index.catalog.chunk_ids())
    todo = [as_document(t) for t in dict.fromkeys(texts)]
    todo = [(doc, chunk) for doc, chunk in todo if chunk.chunk_id not in have]
    if not todo:
        return 0
    with tqdm(total=index.unit_count([c for _, c in todo]), unit="sentence", desc="Embedding RGB pool", disable=not progress) as bar:
        vectors = index.embed_chunks([chunk for _, chunk in todo], progress=bar)
    # One batched write (Index.put_documents: vectors, one catalog transaction, sweep) instead of
    # a write per passage (7k small writes).
    index.put_documents([(doc, [chunk], [tokens(chunk.index_text())], [vector])
                         for (doc, chunk), vector in zip(todo, vectors)])
    return len(todo)


def contains_answer(text: str, answer: Any) -> bool:
    """Does a passage hold every required answer string (one alternative of each)?"""
    return is_correct(_element_labels(text.replace(" ", "").lower(), answer))


@dataclass
class OpenResult:
    id: int
    positive_ranks: list[int]  # 1-based ranks of the item's own positives among those retrieved
    answer_ranks: list[int]  # ranks of retrieved passages holding the answer strings
    labels: list[int]
    prediction: str
    ms: float  # answering time (retrieve + generate), without the extra search for scoring

    @property
    def correct(self) -> bool:
        return is_correct(self.labels)


def run_open(assistant, items: list[dict[str, Any]], k: int = 10) -> list[OpenResult]:
    """Each question answered over the whole pool; the top-k passages are kept to score retrieval."""
    out = []
    for item in items:
        positives = {passage_id(t) for t in item["positive"]}
        found = assistant.search(item["query"], k=k)
        t0 = time.perf_counter()
        answer = assistant.ask(item["query"])
        ms = (time.perf_counter() - t0) * 1000
        prediction = prediction_text(answer)
        out.append(
            OpenResult(
                id=item["id"],
                positive_ranks=[p.rank for p in found if p.doc.doc_id in positives],
                answer_ranks=[p.rank for p in found if contains_answer(p.chunk.text, item["answer"])],
                labels=answer_labels(prediction, item["answer"]),
                prediction=prediction,
                ms=ms,
            )
        )
    return out


def retrieval_metrics(ranks: list[list[int]]) -> dict[str, float]:
    """recall@1/5/10 and MRR from each question's hit ranks (the first one counts)."""
    return rank_metrics(min(rs) if rs else None for rs in ranks)


def open_summary(results: list[OpenResult]) -> dict[str, Any]:
    n = len(results) or 1
    times = sorted(r.ms for r in results)
    return {
        "n": len(results),
        "positive": retrieval_metrics([r.positive_ranks for r in results]),
        "answer_string": retrieval_metrics([r.answer_ranks for r in results]),
        "accuracy": sum(r.correct for r in results) / n,
        "rejection": sum(r.labels == [-1] for r in results) / n,
        "ms_p50": times[len(times) // 2] if times else 0.0,
    }

