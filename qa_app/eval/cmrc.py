"""CMRC 2018 (Cui et al., "A Span-Extraction Dataset for Chinese Machine Reading Comprehension",
EMNLP-IJCNLP 2019) as an evaluation adapter for our pipeline.

Any SQuAD-format file is read in place, by path (``data[].paragraphs[].context``,
``qas[].question``, ``qas[].answers[].text``); the default is the trial file in
``<project>/../shared/benchmarks/cmrc2018`` (or ``$QA_CMRC_DIR``). The data is CC BY-SA 4.0
and is never copied into the project. Each paragraph is one document (its article title as
the title), cleaned and chunked by the ingest pipeline's own functions.

Two modes:
- open corpus: every paragraph of the file pooled into one index of its own (built through
  ``Index.put_document``, reused when it already holds the same paragraphs), every question
  asked through ``Assistant.ask``. A retrieval hit is a retrieved chunk of the question's own
  paragraph that contains an accepted answer.
- reader: each question answered from its own paragraph only: the paragraph's chunks are
  given to the generator as passages (as RGB's generator mode gives its 5 passages).

Scores, for both: "contains" accuracy (the answer, not a refusal, contains an accepted
answer, compared after ``match_form`` on both sides, citation markers removed), refusal rate
(every CMRC question is answerable, so every refusal is a false one), latency p50, and the
official EM/F1 of the short span the answerer offers. The extractive answerer offers no
span shorter than a quote, so EM/F1 are then computed on the cited quote it leads with, as
it shows it (``offered_span``), and reported as "EM/F1 (quote)", a different thing from the
span EM/F1 the published systems are measured by.

EM/F1 use the official scorer's own functions, run from ``cmrc2018_evaluate.py`` by path.
That file is Python 2 (``ur''`` literals, ``str.decode``, ``sys.setdefaultencoding``) and calls
``nltk.word_tokenize`` on the non-Chinese runs of a string; nltk is not a dependency and its
punkt sentence model cannot be downloaded here. So the file's source gets five mechanical
Python 3 edits (listed in ``_PY3_EDITS``; each must match exactly, or the file is not used)
and runs with ``word_tokenize`` below, a port of NLTK 3.9's ``NLTKWordTokenizer`` (the word
tokenizer ``nltk.word_tokenize`` applies after punkt). The one difference from the original:
a non-Chinese run is not first split into sentences, which changes tokens only when such a
run holds a sentence-final period followed by more text ("Mr. Smith" is unaffected; "end.
Next" keeps "end." as one token instead of "end", "."). When the official file is absent
or does not take the edits, ``ReimplementedScorer`` stands in: the same mixed segmentation,
punctuation list, longest-common-substring F1 and maximum over answers, written for Python 3
(a test checks that the two agree).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import time
import types
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from qa_app.config import PROJECT_DIR
from qa_app.index.bm25 import BM25Index
from qa_app.index.query import Query
from qa_app.ingest.chunk import chunk_text
from qa_app.ingest.clean import clean_text
from qa_app.ingest.metadata import detect_script
from qa_app.ingest.pipeline import chunk_tokens
from qa_app.models import Answer, Chunk, DocumentInfo, Passage
from qa_app.question import QuestionAnalysis, QuestionError, analyse, clean_question
from qa_app.text import match_form

CMRC_DIR_ENV = "QA_CMRC_DIR"
TRIAL_FILE = "cmrc2018_trial.json"
SCORER_FILE = "cmrc2018_evaluate.py"
KIND = "cmrc"  # DocumentInfo.kind of a pooled paragraph


class CMRCNotFound(FileNotFoundError):
    pass


class CMRCFormatError(ValueError):
    """The file is not SQuAD-format data."""


class PoolError(RuntimeError):
    """The pool folder holds documents that are not CMRC paragraphs."""


def default_cmrc_dir() -> Path:
    return Path(os.environ.get(CMRC_DIR_ENV) or PROJECT_DIR.parent / "shared" / "benchmarks" / "cmrc2018")


def default_file() -> Path:
    return default_cmrc_dir() / TRIAL_FILE


# --- the data ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Question:
    id: str
    question: str
    answers: tuple[str, ...]  # the accepted answers (CMRC's dev set has three per question)
    paragraph_id: str
    doc_id: str  # the document of its paragraph


@dataclass(frozen=True)
class Paragraph:
    id: str
    title: str
    context: str
    questions: tuple[Question, ...]

    @property
    def doc_id(self) -> str:
        return paragraph_doc_id(self.title, self.context)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(f"{self.title}\n{self.context}".encode("utf-8")).hexdigest()


@dataclass
class Dataset:
    path: Path
    version: str
    paragraphs: list[Paragraph]
    skipped: int = 0  # questions left out: no accepted answer (SQuAD 2.0's unanswerable ones)

    @property
    def questions(self) -> list[Question]:
        return [q for p in self.paragraphs for q in p.questions]


def paragraph_doc_id(title: str, context: str) -> str:
    """By content: the same paragraph is the same document in every pool, whichever file it came from."""
    return "cmrc_" + hashlib.sha1(f"{title}\n{context}".encode("utf-8")).hexdigest()[:16]


def load(path: Path | str | None = None) -> Dataset:
    """A SQuAD-format file, read in place. Raises ``CMRCNotFound`` (no such file) or
    ``CMRCFormatError`` (not SQuAD data, saying where)."""
    path = Path(path) if path else default_file()
    if not path.is_file():
        raise CMRCNotFound(
            f"CMRC 2018 data not found at {path}: it lives in ../shared/benchmarks/cmrc2018 beside the clone "
            f"(or set ${CMRC_DIR_ENV}, or give a SQuAD-format file's path)"
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8-sig"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise CMRCFormatError(f"{path}: not a JSON file ({exc})") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("data"), list):
        raise CMRCFormatError(f'{path}: not SQuAD-format data (no "data" list at the top)')
    paragraphs, skipped = [], 0
    for a, article in enumerate(raw["data"]):
        if not isinstance(article, dict) or not isinstance(article.get("paragraphs"), list):
            raise CMRCFormatError(f'{path}: data[{a}] has no "paragraphs" list')
        title = str(article.get("title") or "")
        for b, para in enumerate(article["paragraphs"]):
            where = f"data[{a}].paragraphs[{b}]"
            if not isinstance(para, dict) or not isinstance(para.get("context"), str):
                raise CMRCFormatError(f'{path}: {where} has no "context" text')
            pid = str(para.get("id") or f"{path.stem}_{a}_{b}")
            doc_id = paragraph_doc_id(title, para["context"])
            questions = []
            for c, qa in enumerate(para.get("qas") or []):
                if not isinstance(qa, dict):
                    raise CMRCFormatError(f"{path}: {where}.qas[{c}] is not an object")
                answers = tuple(dict.fromkeys(
                    a["text"] for a in qa.get("answers") or [] if isinstance(a, dict) and isinstance(a.get("text"), str) and a["text"].strip()
                ))
                if not answers:
                    skipped += 1
                    continue
                question = qa.get("question")
                questions.append(Question(
                    id=str(qa.get("id") or f"{pid}_Q{c}"),
                    # a question that is not text is kept: asking it gives the answerer's own error
                    question=question if isinstance(question, str) else "",
                    answers=answers,
                    paragraph_id=pid,
                    doc_id=doc_id,
                ))
            paragraphs.append(Paragraph(pid, title, para["context"], tuple(questions)))
    return Dataset(path, str(raw.get("version", "")), paragraphs, skipped)


def first_questions(dataset: Dataset, limit: int | None) -> list[Question]:
    questions = dataset.questions
    return questions if limit is None else questions[:limit]


# --- the official scorer -------------------------------------------------------------------
# NLTK 3.9's NLTKWordTokenizer (nltk/tokenize/destructive.py, Apache License 2.0), the rules
# as they are there, applied in the same order (convert_parentheses off, as word_tokenize has it).
_STARTING_QUOTES = [
    (re.compile("([«“‘„]|[`]+)"), r" \1 "),
    (re.compile(r"^\""), r"``"),
    (re.compile(r"(``)"), r" \1 "),
    (re.compile(r"([ \(\[{<])(\"|\'{2})"), r"\1 `` "),
    (re.compile(r"(?i)(\')(?!re|ve|ll|m|t|s|d|n)(\w)\b"), r"\1 \2"),
]
_ENDING_QUOTES = [
    (re.compile("([»”’])"), r" \1 "),
    (re.compile(r"''"), " '' "),
    (re.compile(r'"'), " '' "),
    (re.compile(r"\s+"), " "),
    (re.compile(r"([^' ])('[sS]|'[mM]|'[dD]|') "), r"\1 \2 "),
    (re.compile(r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) "), r"\1 \2 "),
]
_PUNCTUATION = [
    (re.compile(r'([^\.])(\.)([\]\)}>"\'' "»”’ " r"]*)\s*$"), r"\1 \2 \3 "),
    (re.compile(r"([:,])([^\d])"), r" \1 \2"),
    (re.compile(r"([:,])$"), r" \1 "),
    (re.compile(r"\.{2,}"), r" \g<0> "),
    (re.compile(r"[;@#$%&]"), r" \g<0> "),
    (re.compile(r'([^\.])(\.)([\]\)}>"\']*)\s*$'), r"\1 \2\3 "),
    (re.compile(r"[?!]"), r" \g<0> "),
    (re.compile(r"([^'])' "), r"\1 ' "),
    (re.compile(r"[*]"), r" \g<0> "),
]
_PARENS_BRACKETS = (re.compile(r"[\]\[\(\)\{\}\<\>]"), r" \g<0> ")
_DOUBLE_DASHES = (re.compile(r"--"), r" -- ")
_CONTRACTIONS = [
    re.compile(p) for p in (
        r"(?i)\b(can)(?#X)(not)\b", r"(?i)\b(d)(?#X)('ye)\b", r"(?i)\b(gim)(?#X)(me)\b", r"(?i)\b(gon)(?#X)(na)\b",
        r"(?i)\b(got)(?#X)(ta)\b", r"(?i)\b(lem)(?#X)(me)\b", r"(?i)\b(more)(?#X)('n)\b", r"(?i)\b(wan)(?#X)(na)(?=\s)",
        r"(?i) ('t)(?#X)(is)\b", r"(?i) ('t)(?#X)(was)\b",
    )
]


def word_tokenize(text: str) -> list[str]:
    """``nltk.word_tokenize(text, preserve_line=True)``: NLTK's word tokenizer on the whole text."""
    for regexp, sub in _STARTING_QUOTES:
        text = regexp.sub(sub, text)
    for regexp, sub in _PUNCTUATION:
        text = regexp.sub(sub, text)
    for regexp, sub in (_PARENS_BRACKETS, _DOUBLE_DASHES):
        text = regexp.sub(sub, text)
    text = f" {text} "
    for regexp, sub in _ENDING_QUOTES:
        text = regexp.sub(sub, text)
    for regexp in _CONTRACTIONS:
        text = regexp.sub(r" \1 \2 ", text)
    return text.split()


# The Python 2 → 3 edits made to cmrc2018_evaluate.py's source before it runs: (old, new, how
# many times old must occur). nltk is handed in as a stand-in module holding word_tokenize.
_PY3_EDITS = [
    ("reload(sys)\n", "", 1),
    ("sys.setdefaultencoding('utf8')\n", "", 1),
    ("import nltk\n", "", 1),
    ("ur'[\\u4e00-\\u9fa5]'", "r'[\\u4e00-\\u9fa5]'", 1),
    (".decode('utf-8')", "", 3),
]


@dataclass
class Scorer:
    """EM and F1 of one prediction against a question's accepted answers, as the official
    scorer computes them (each 0..1; the official script reports means × 100)."""

    name: str
    f1: Callable[[list[str], str], float]
    em: Callable[[list[str], str], int]
    segment: Callable[..., list[str]]

    def score(self, answers: Iterable[str], prediction: str) -> tuple[float, float]:
        answers = list(answers)
        if not answers:
            return 0.0, 0.0
        return float(self.em(answers, prediction)), float(self.f1(answers, prediction))


def load_scorer(path: Path | str | None = None) -> Scorer:
    """The official scorer's functions from ``path`` (default: the one in the CMRC folder),
    else the re-implementation, named so in ``Scorer.name``."""
    path = Path(path) if path else default_cmrc_dir() / SCORER_FILE
    why = "not found"
    if path.is_file():
        try:
            return official_scorer(path)
        except (ValueError, SyntaxError, KeyError) as exc:
            why = f"not usable: {exc}"
    return Scorer(f"re-implementation of cmrc2018_evaluate.py (official file {path} {why})",
                  reimplemented_f1, reimplemented_em, reimplemented_segmentation)


def official_scorer(path: Path) -> Scorer:
    source = path.read_text(encoding="utf-8")
    for old, new, count in _PY3_EDITS:
        if source.count(old) != count:
            raise ValueError(f"{path.name} is not the expected version ({old.strip()!r} occurs {source.count(old)} times, expected {count})")
        source = source.replace(old, new)
    nltk = types.SimpleNamespace(word_tokenize=word_tokenize)
    namespace: dict[str, Any] = {"__name__": "cmrc2018_evaluate", "__file__": str(path), "nltk": nltk}
    exec(compile(source, str(path), "exec"), namespace)  # noqa: S102 - the benchmark's own scorer, read by path
    return Scorer(f"official {path.name} (Python 3 edits, NLTK word tokenizer port)",
                  namespace["calc_f1_score"], namespace["calc_em_score"], namespace["mixed_segmentation"])


# The re-implementation: the same steps as the official functions, in Python 3.
_SP_CHAR = ['-', ':', '_', '*', '^', '/', '\\', '~', '`', '+', '=',
            '，', '。', '：', '？', '！', '“', '”', '；', '’', '《', '》', '……', '·', '、',
            '「', '」', '（', '）', '－', '～', '『', '』']  # "……" is two characters: it never matches one
_CJK_CHAR = re.compile("[\u4e00-\u9fa5]")


def reimplemented_segmentation(in_str: str, rm_punc: bool = False) -> list[str]:
    """Each Chinese character and punctuation mark a segment; other runs tokenized as words."""
    in_str = str(in_str).lower().strip()
    segs, run = [], ""
    for char in in_str:
        if rm_punc and char in _SP_CHAR:
            continue
        if _CJK_CHAR.search(char) or char in _SP_CHAR:
            if run:
                segs.extend(word_tokenize(run))
                run = ""
            segs.append(char)
        else:
            run += char
    if run:
        segs.extend(word_tokenize(run))
    return segs


def _remove_punctuation(in_str: str) -> str:
    return "".join(ch for ch in str(in_str).lower().strip() if ch not in _SP_CHAR)


def _lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common substring (contiguous), as the official find_lcs."""
    best = 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b):
            if x == y:
                cur[j + 1] = prev[j] + 1
                best = max(best, cur[j + 1])
        prev = cur
    return best


def reimplemented_f1(answers: list[str], prediction: str) -> float:
    scores = []
    pred = reimplemented_segmentation(prediction, rm_punc=True)
    for ans in answers:
        gold = reimplemented_segmentation(ans, rm_punc=True)
        lcs = _lcs_length(gold, pred)
        if lcs == 0:
            scores.append(0.0)
            continue
        precision, recall = lcs / len(pred), lcs / len(gold)
        scores.append(2 * precision * recall / (precision + recall))
    return max(scores)


def reimplemented_em(answers: list[str], prediction: str) -> int:
    return int(any(_remove_punctuation(a) == _remove_punctuation(prediction) for a in answers))


# --- what an answer offers -----------------------------------------------------------------
_MARKER = re.compile(r"\[\d+\]")
_PIECE_EDGES = "…。，,；;：: \n"


def without_markers(text: str) -> str:
    return _MARKER.sub("", text)


def holds_answer(text: str, answers: Iterable[str]) -> bool:
    """Does ``text`` contain one of the accepted answers (compared in match_form)?"""
    t = match_form(text)
    return any(match_form(a) and match_form(a) in t for a in answers)


def offered_span(answer: Answer) -> tuple[str, str]:
    """(kind, text): what EM/F1 are computed on. "span" when the answer carries a short answer
    of its own (a non-empty ``span`` attribute; no generator has one yet). Otherwise "quote":
    the cited quote the answer leads with, as the answer shows it (its text up to the first
    citation marker: the quote of citation [1], trimmed as the answerer trims it), without
    ellipses or edge punctuation; the first citation's full quote if the text has no such
    piece. A refusal offers nothing: ("refusal", "")."""
    if answer.refused:
        return "refusal", ""
    span = getattr(answer, "span", None)
    if isinstance(span, str) and span.strip():
        return "span", span.strip()
    pieces = [p.strip(_PIECE_EDGES) for p in _MARKER.split(answer.text)]
    pieces = [p for p in pieces if p] or [c.quote.strip(_PIECE_EDGES) for c in answer.citations if c.quote.strip(_PIECE_EDGES)]
    return "quote", pieces[0] if pieces else answer.text.strip()


# --- paragraphs as documents -----------------------------------------------------------------
@dataclass
class PreparedParagraph:
    doc: DocumentInfo
    chunks: list[Chunk]
    tokens: list[list[str]]

    def passages(self) -> list[Passage]:
        """The paragraph's chunks in order, as if retrieved (rank 1..n)."""
        return [Passage(c, self.doc, score=1.0, rank=i) for i, c in enumerate(self.chunks, 1)]


def prepare(paragraph: Paragraph, settings) -> PreparedParagraph:
    """One paragraph as the ingest pipeline makes a file: cleaned, chunked, tokenised."""
    cleaned = clean_text(paragraph.context) or paragraph.context.strip()
    doc = DocumentInfo(doc_id=paragraph.doc_id, title=paragraph.title, kind=KIND, script=detect_script(cleaned),
                       sha256=paragraph.sha256)
    chunks = chunk_text(doc.doc_id, cleaned, target=settings.chunk_chars, max_chars=settings.chunk_max_chars)
    return PreparedParagraph(doc, chunks, [chunk_tokens(doc.title, c) for c in chunks])


def unique_paragraphs(paragraphs: Iterable[Paragraph]) -> dict[str, Paragraph]:
    out: dict[str, Paragraph] = {}
    for p in paragraphs:
        out.setdefault(p.doc_id, p)
    return out


@dataclass
class PoolReport:
    added: int = 0
    unchanged: int = 0
    removed: int = 0
    chunks: int = 0  # chunks written


def build_pool(index, paragraphs: Iterable[Paragraph], progress: bool = True) -> PoolReport:
    """Make ``index`` hold exactly these paragraphs, one document each, written through
    ``Index.put_documents`` under one writer lock (embedded before it): paragraphs already there unchanged are kept
    (so a pool is reused, and a half-built one resumes, the embedding cache keeping the vectors
    made so far), CMRC paragraphs of another file are deleted. A folder holding any other kind
    of document is refused, so a pool never deletes or mixes with a real index."""
    from tqdm import tqdm

    wanted = unique_paragraphs(paragraphs)
    existing = {d.doc_id: d for d in index.documents()}
    foreign = sorted(d for d, info in existing.items() if info.kind != KIND)
    if foreign:
        raise PoolError(f"{index.data_dir} holds {len(foreign)} documents that are not CMRC paragraphs "
                        f"({foreign[0]}, …): give the pool a folder of its own")
    report = PoolReport()
    todo = [prepare(p, index.settings) for doc_id, p in wanted.items()
            if doc_id not in existing or existing[doc_id].sha256 != p.sha256]
    report.unchanged = len(wanted) - len(todo)
    chunks = [c for t in todo for c in t.chunks]
    # Embedded before the writer lock is taken (the slow part; the cache keeps what is made).
    with tqdm(total=index.unit_count(chunks), desc="Embedding CMRC paragraphs", disable=not progress or not chunks) as bar:
        vectors = index.embed_chunks(chunks, progress=bar)
    batch, start = [], 0
    for t in todo:
        batch.append((t.doc, t.chunks, t.tokens, vectors[start : start + len(t.chunks)]))
        start += len(t.chunks)
    with index.writing("CMRC pool"):
        for doc_id in sorted(set(existing) - set(wanted)):
            index.delete_document(doc_id)
            report.removed += 1
        index.put_documents(batch)
    report.added, report.chunks = len(todo), len(chunks)
    return report


# --- results -----------------------------------------------------------------------------
@dataclass
class Result:
    id: str
    question: str
    answers: tuple[str, ...]
    doc_id: str
    prediction: str = ""  # the answer as shown (citation markers included)
    refused: bool = False
    contains: bool = False  # answered (not refused) and the answer contains an accepted answer
    span_kind: str = "error"  # what EM/F1 were computed on: span | quote | refusal | error
    span: str = ""
    em: float = 0.0
    f1: float = 0.0
    ms: float = 0.0
    cited_docs: list[str] = field(default_factory=list)
    cited_answer: bool = False  # a cited chunk holds an accepted answer
    ranks: list[int] | None = None  # open mode: ranks (1-based, top 10) of retrieved hits
    answer_in_a_chunk: bool = True  # some chunk of the paragraph holds an accepted answer whole
    reasons: list[str] = field(default_factory=list)  # the answerer's notes (why it refused, checks)
    error: str = ""

    @property
    def outcome(self) -> str:
        """correct | refused | wrong sentence (own paragraph cited) | wrong paragraph | error."""
        if self.error:
            return "error"
        if self.contains:
            return "correct"
        if self.refused:
            return "refused"
        return "wrong sentence" if self.doc_id in self.cited_docs else "wrong paragraph"

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items()}
        d["answers"] = list(self.answers)
        d["outcome"] = self.outcome
        d["ms"] = round(self.ms, 2)
        return d


def score_answer(q: Question, answer: Answer, scorer: Scorer, ms: float, chunk_text_of: Callable[[str], str],
                 ranks: list[int] | None = None, answer_in_a_chunk: bool = True) -> Result:
    kind, span = offered_span(answer)
    em, f1 = scorer.score(q.answers, span) if kind != "refusal" else (0.0, 0.0)
    return Result(
        id=q.id, question=q.question, answers=q.answers, doc_id=q.doc_id,
        prediction=answer.text, refused=answer.refused,
        contains=(not answer.refused) and holds_answer(without_markers(answer.text), q.answers),
        span_kind=kind, span=span, em=em, f1=f1, ms=ms,
        cited_docs=list(dict.fromkeys(c.doc_id for c in answer.citations)),
        cited_answer=any(holds_answer(chunk_text_of(c.chunk_id), q.answers) for c in answer.citations),
        ranks=ranks, answer_in_a_chunk=answer_in_a_chunk, reasons=list(answer.reasons),
    )


def _failed(q: Question, message: str, ranks: list[int] | None = None) -> Result:
    return Result(id=q.id, question=q.question, answers=q.answers, doc_id=q.doc_id, ranks=ranks, error=message)


# --- open-corpus mode ----------------------------------------------------------------------
def run_open(assistant, questions: list[Question], scorer: Scorer, k: int = 10, progress: bool = False) -> list[Result]:
    """Each question asked through ``Assistant.ask`` over the whole pool; a separate top-k
    search afterwards scores retrieval (its time is not in the latency)."""
    from tqdm import tqdm

    index = assistant.index
    by_doc: dict[str, list[str]] = {}
    for c in index.chunks():
        by_doc.setdefault(c.doc_id, []).append(c.text)

    def text_of(chunk_id: str) -> str:
        chunk = index.chunk(chunk_id)
        return chunk.text if chunk else ""

    out = []
    for q in tqdm(questions, desc="Asking (open corpus)", unit="q", disable=not progress):
        whole = any(holds_answer(t, q.answers) for t in by_doc.get(q.doc_id, []))
        try:
            # Asked first, so its time includes embedding the question (the index keeps the
            # last questions' vectors: the search after it is served from there).
            t0 = time.perf_counter()
            answer = assistant.ask(q.question)
            ms = (time.perf_counter() - t0) * 1000
            found = assistant.search(q.question, k=k)
            ranks = [r for r, p in enumerate(found, 1) if p.doc.doc_id == q.doc_id and holds_answer(p.chunk.text, q.answers)]
        except QuestionError as exc:
            out.append(_failed(q, str(exc)))
            continue
        out.append(score_answer(q, answer, scorer, ms, text_of, ranks=ranks, answer_in_a_chunk=whole))
    return out


# --- reader mode ---------------------------------------------------------------------------
def analysis_for(question: str, prepared: PreparedParagraph, background: BM25Index | None = None) -> QuestionAnalysis:
    """The question analysed against its paragraph alone, as the Assistant analyses it against
    its index: "known" means "occurs in this paragraph (or its title)", and term weights come
    from ``background`` (a BM25 over every paragraph of the file, the weights the pool's index
    would give) or, without one, from a BM25 over the paragraph's own chunks."""
    ids = [c.chunk_id for c in prepared.chunks]
    local = BM25Index.build(ids, prepared.tokens)
    corpus = "\n".join(c.norm.lower() for c in prepared.chunks)
    idf = (background or local).term_idf
    return analyse(Query.parse(question), idf, lambda t: local.knows(t) or t.lower() in corpus)


def background_bm25(prepared: Iterable[PreparedParagraph]) -> BM25Index:
    ids, token_lists = [], []
    for p in prepared:
        ids += [c.chunk_id for c in p.chunks]
        token_lists += p.tokens
    return BM25Index.build(ids, token_lists)


def run_reader(generator, dataset: Dataset, questions: list[Question], scorer: Scorer, settings,
               idf: str = "pool", progress: bool = False, vectors=None) -> list[Result]:
    """Each question answered by ``generator`` from its own paragraph's chunks only. The
    question goes through the Assistant's own check (``clean_question``) first. ``idf``:
    "pool" (term weights over every paragraph of the file) or "local" (the paragraph's own).
    ``vectors``: an Index whose embedding cache gives the sentences their similarity with the
    question, as retrieval does for indexed passages (None: words alone)."""
    from tqdm import tqdm

    prepared = {doc_id: prepare(p, settings) for doc_id, p in unique_paragraphs(dataset.paragraphs).items()}
    background = background_bm25(prepared.values()) if idf == "pool" else None
    chunk_texts = {c.chunk_id: c.text for p in prepared.values() for c in p.chunks}
    out = []
    for q in tqdm(questions, desc="Reading (own paragraph)", unit="q", disable=not progress):
        para = prepared[q.doc_id]
        whole = any(holds_answer(c.text, q.answers) for c in para.chunks)
        t0 = time.perf_counter()
        try:
            text = clean_question(q.question, settings.max_question_chars)
            passages = para.passages()
            if vectors is not None:
                vectors.add_sentence_similarities(passages, text)
            answer = generator.generate(analysis_for(text, para, background), passages)
        except QuestionError as exc:
            out.append(_failed(q, str(exc)))
            continue
        ms = (time.perf_counter() - t0) * 1000
        out.append(score_answer(q, answer, scorer, ms, lambda cid: chunk_texts.get(cid, ""), answer_in_a_chunk=whole))
    return out


# --- summary -------------------------------------------------------------------------------
def _p50(values: list[float]) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def summarise(results: list[Result]) -> dict[str, Any]:
    """Rates over all questions (errors count as wrong, as the official script counts
    unanswered questions); EM and F1 as the official script reports them (means × 100)."""
    n = len(results)
    div = n or 1
    out: dict[str, Any] = {
        "n": n,
        "contains_accuracy": sum(r.contains for r in results) / div,
        "refusal_rate": sum(r.refused for r in results) / div,
        "em": 100 * sum(r.em for r in results) / div,
        "f1": 100 * sum(r.f1 for r in results) / div,
        "scored_on": dict(Counter(r.span_kind for r in results)),
        "outcomes": dict(Counter(r.outcome for r in results)),
        "errors": sum(bool(r.error) for r in results),
        "answer_in_no_chunk": sum(not r.answer_in_a_chunk for r in results),
        "ms_p50": _p50([r.ms for r in results if not r.error]),
    }
    if any(r.ranks is not None for r in results):
        ranks = [r.ranks or [] for r in results]
        for k in (1, 5, 10):
            out[f"recall@{k}"] = sum(any(x <= k for x in rs) for rs in ranks) / div
        out["mrr"] = sum(1.0 / min(rs) for rs in ranks if rs) / div
    return out


def em_f1_label(summary: dict[str, Any]) -> str:
    """What EM/F1 were computed on, for a table header: "span", "quote" or both."""
    kinds = [k for k in ("span", "quote") if summary["scored_on"].get(k)]
    return " + ".join(kinds) if kinds else "quote"
