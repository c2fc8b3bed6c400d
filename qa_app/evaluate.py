"""Batch evaluation of a Q&A set (JSONL, format in DESIGN.md): retrieval and answers.

Metrics: recall@k and MRR (a hit is a retrieved chunk of the evidence document that
contains an evidence quote, compared in normalised form), answer accuracy (every answer
key contained), refusal accuracy, false refusals, citation precision, latency.

A run can be interrupted and resumed: every finished item is appended to a checkpoint
(JSONL) keyed by (file, id, settings fingerprint), and a later run with the same settings
skips the items found there.

One bad item never stops a run. A line that is not a usable item (not JSON, not an object,
no question, a question that is empty or not a string, answer keys or evidence of the wrong
shape, bytes that are not UTF-8) and an item whose answering raised an exception become
*error items*: kept in the results with their message (``error``), left out of every rate
(they measured nothing), counted in the results document's ``errors``, listed in the report,
and never checkpointed (a resumed run tries them again). Only Ctrl-C and a model that cannot
be reached at all (``GeneratorError.unavailable``) stop a run, and both leave it resumable.
"""
from __future__ import annotations

import hashlib
import json
import math
import statistics
import subprocess
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

from qa_app.llm.base import GeneratorError
from qa_app.question import QuestionError
from qa_app.text import match_form

NO_ANSWER_CATEGORIES = {"unanswerable", "missing_figure"}
PASSAGES_KEPT = 5  # retrieved passages stored per item: what the report shows for a failure

# Concurrent questions also share the CPU, which inflates the latency the run reports. The
# extractive answerer is mostly pure Python under the GIL (only the query embedding runs
# outside it): on the dev set, 2 threads cut wall time by ~1.3-1.6x on 2 busy cores, not
# enough to give up clean per-question latency by default. An in-process transformers model
# already uses every core; an HTTP model mostly waits, so there threads pay off.
DEFAULT_WORKERS = {"extractive": 1, "transformers": 1, "openai": 4}


class EvalSetError(ValueError):
    pass


@dataclass
class EvalItem:
    id: str
    question: str
    answer_keys: list[str]
    evidence: list[dict[str, str]]
    category: str
    raw: dict[str, Any] = field(default_factory=dict)
    file: str = ""  # the eval set's file name: ids are only unique within one file
    error: str = ""  # why the item cannot be run (bad line, bad question): it becomes an error item

    @property
    def answerable(self) -> bool:
        return bool(self.answer_keys) and self.category not in NO_ANSWER_CATEGORIES

    @property
    def key(self) -> tuple[str, str]:
        return (self.file, self.id)

    def digest(self) -> str:
        """Changes when the item is edited, so a checkpointed result of the old wording is not reused."""
        return hashlib.sha1(json.dumps(self.raw, ensure_ascii=False, sort_keys=True).encode()).hexdigest()[:12]


def load_eval_set(path: Path) -> list[EvalItem]:
    """The items of one JSONL eval set. A line that cannot be an item becomes an error item
    (``EvalItem.error`` says why, with the file and line) instead of stopping the load."""
    items = []
    # Lines are split on the bytes (\n, \r\n, \r only), not with str.splitlines, which also
    # breaks at U+2028 and other separators that may sit inside a JSON string.
    for n, data in enumerate(path.read_bytes().splitlines(), 1):
        where = f"{path.name}:{n}"
        fallback_id = f"{path.stem}-{n}"
        try:
            line = data.decode("utf-8-sig" if n == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            items.append(_error_item(fallback_id, {}, path, f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start})"))
            continue
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            items.append(_error_item(fallback_id, {"line": line[:200]}, path, f"{where}: not valid JSON ({exc})"))
            continue
        if not isinstance(obj, dict):
            items.append(_error_item(fallback_id, {"line": line[:200]}, path, f"{where}: not a JSON object but {_kind_of(obj)}"))
            continue
        item_id = str(obj.get("id", fallback_id))
        problem = _item_problem(obj)
        if problem:
            items.append(_error_item(item_id, obj, path, f"{where}: {problem}"))
            continue
        items.append(
            EvalItem(
                id=item_id,
                question=obj["question"],
                answer_keys=list(obj.get("answer_keys") or []),
                evidence=list(obj.get("evidence") or []),
                category=str(obj.get("category", "")),
                raw=obj,
                file=path.name,
            )
        )
    return items


def _kind_of(value: Any) -> str:
    return {type(None): "null", bool: "a boolean", int: "a number", float: "a number", str: "a string",
            list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def _item_problem(obj: dict[str, Any]) -> str | None:
    """What makes an eval item unusable, in plain words; None when it is fine."""
    if "question" not in obj:
        return 'no "question" field'
    question = obj["question"]
    if not isinstance(question, str):
        return f"the question is {_kind_of(question)}, not a string"
    if not question.strip():
        return "the question is empty"
    keys = obj.get("answer_keys")
    if keys is not None and not isinstance(keys, list):
        return f'"answer_keys" is {_kind_of(keys)}, not a list of strings'
    for i, key in enumerate(keys or []):
        if not isinstance(key, str):
            return f'"answer_keys"[{i}] is {_kind_of(key)}, not a string'
    evidence = obj.get("evidence")
    if evidence is not None and not isinstance(evidence, list):
        return f'"evidence" is {_kind_of(evidence)}, not a list of objects'
    for i, e in enumerate(evidence or []):
        if not isinstance(e, dict):
            return f'"evidence"[{i}] is {_kind_of(e)}, not an object'
        for name in ("doc", "quote"):
            if e.get(name) is not None and not isinstance(e[name], str):
                return f'"evidence"[{i}].{name} is {_kind_of(e[name])}, not a string'
    return None


def _error_item(item_id: str, obj: dict[str, Any], path: Path, message: str) -> EvalItem:
    question = obj.get("question")
    return EvalItem(
        id=item_id,
        question=question if isinstance(question, str) else "",
        answer_keys=[],
        evidence=[],
        category=str(obj.get("category", "")),
        raw=obj,
        file=path.name,
        error=message,
    )


def load_eval_sets(paths: Iterable[Path]) -> list[EvalItem]:
    items = [item for p in paths for item in load_eval_set(p)]
    seen: set[tuple[str, str]] = set()
    for item in items:
        if item.key in seen:
            raise EvalSetError(f"{item.file}: id {item.id!r} appears twice (results are keyed by file and id)")
        seen.add(item.key)
    return items


def _quotes(item: EvalItem) -> list[tuple[str | None, str]]:
    return [(e.get("doc"), match_form(e.get("quote", ""))) for e in item.evidence if e.get("quote")]


def hit_rank(item: EvalItem, retrieved: Iterable[tuple[str, str]]) -> int | None:
    """1-based rank of the first (doc_id, text) that holds an evidence quote, else None."""
    quotes = _quotes(item)
    for rank, (doc_id, text) in enumerate(retrieved, 1):
        t = match_form(text)
        if any((d is None or d == doc_id) and q and q in t for d, q in quotes):
            return rank
    return None


def answer_correct(item: EvalItem, answer_text: str) -> bool:
    t = match_form(answer_text)
    return all(match_form(k) in t for k in item.answer_keys)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    pos = (len(values) - 1) * q
    lo, hi = int(pos), min(int(pos) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


@dataclass
class ItemResult:
    item: EvalItem
    rank: int | None
    answer: str = ""
    refused: bool = False
    correct: bool = False
    cited_hits: int = 0
    cited: int = 0
    grounded: bool = True
    latency_ms: float = 0.0
    retrieved: list[dict[str, Any]] = field(default_factory=list)
    citations: list[dict[str, Any]] = field(default_factory=list)
    answered_by: str = ""  # the backend that answered: an LLM run may fall back to extractive
    reasons: list[str] = field(default_factory=list)  # the answerer's notes (checks failed, fallbacks)
    error: str = ""  # set for an error item: the item could not be run, and why

    @property
    def outcome_ok(self) -> bool:
        """Right for its kind: a correct answer when answerable, a refusal when not."""
        return self.correct if self.item.answerable else self.refused

    def result_fields(self) -> dict[str, Any]:
        """What the run produced (not the item): the checkpoint stores exactly this."""
        return {
            "rank": self.rank,
            "given_answer": self.answer,
            "refused": self.refused,
            "correct": self.correct,
            "answerable": self.item.answerable,
            "cited": self.cited,
            "cited_hits": self.cited_hits,
            "grounded": self.grounded,
            "latency_ms": round(self.latency_ms, 2),
            "retrieved": self.retrieved,
            "citations": self.citations,
            "answered_by": self.answered_by,
            "reasons": self.reasons,
            "error": self.error or None,
        }

    def to_dict(self) -> dict[str, Any]:
        # Every field of the eval item is carried, unknown ones included, so a report or a
        # later script can group by them.
        item = self.item
        core = {"id": item.id, "question": item.question, "answer_keys": item.answer_keys, "evidence": item.evidence,
                "category": item.category}
        if self.error:
            # The item as written may have fields of the wrong shape: readers get well-formed ones,
            # and the original under "raw".
            return {**item.raw, **core, "raw": item.raw, "file": item.file, **self.result_fields()}
        return {**core, **item.raw, "file": item.file, **self.result_fields()}

    @classmethod
    def from_fields(cls, item: EvalItem, fields: dict[str, Any]) -> "ItemResult":
        return cls(
            item=item,
            rank=fields["rank"],
            answer=fields["given_answer"],
            refused=fields["refused"],
            correct=fields["correct"],
            cited_hits=fields["cited_hits"],
            cited=fields["cited"],
            grounded=fields["grounded"],
            latency_ms=fields["latency_ms"],
            retrieved=fields["retrieved"],
            citations=fields["citations"],
            answered_by=fields.get("answered_by", ""),
            reasons=fields.get("reasons", []),
            error=fields.get("error") or "",
        )


def _hit_at(r: ItemResult, k: int) -> float:
    return 1.0 if r.rank and r.rank <= k else 0.0


def _with_evidence(results: list[ItemResult]) -> list[ItemResult]:
    return [r for r in _measured(results) if r.item.evidence and r.item.category not in NO_ANSWER_CATEGORIES]


def _measured(results: list[ItemResult]) -> list[ItemResult]:
    """The results that measured something: error items are counted apart (``count_errors``)."""
    return [r for r in results if not r.error]


def count_errors(results: list[ItemResult]) -> int:
    return sum(1 for r in results if r.error)


def summarise(results: list[ItemResult], ks=(1, 5, 10)) -> dict[str, float]:
    """The run's rates over the items that ran; ``n`` is how many did. Error items are left
    out of every figure here: ``count_errors`` (the results document's ``errors``) counts them."""
    results = _measured(results)
    with_evidence = _with_evidence(results)
    answerable = [r for r in results if r.item.answerable]
    unanswerable = [r for r in results if not r.item.answerable]
    answered = [r for r in answerable if not r.refused]
    m: dict[str, float] = {}
    for k in ks:
        m[f"recall@{k}"] = _mean([_hit_at(r, k) for r in with_evidence])
    m["mrr"] = _mean([1.0 / r.rank if r.rank else 0.0 for r in with_evidence])
    m["answer_accuracy"] = _mean([1.0 if r.correct else 0.0 for r in answerable])
    m["refusal_accuracy"] = _mean([1.0 if r.refused else 0.0 for r in unanswerable])
    m["false_refusal_rate"] = _mean([1.0 if r.refused else 0.0 for r in answerable])
    cited = sum(r.cited for r in answered)
    m["citation_precision"] = (sum(r.cited_hits for r in answered) / cited) if cited else 0.0
    m["grounded_rate"] = _mean([1.0 if r.grounded else 0.0 for r in results])
    m["answer_chars_median"] = float(statistics.median([len(r.answer) for r in results])) if results else 0.0
    lat = [r.latency_ms for r in results]
    m["latency_p50_ms"] = percentile(lat, 0.5)
    m["latency_p95_ms"] = percentile(lat, 0.95)
    m["n"] = len(results)
    return m


def recall_curve(results: list[ItemResult], max_k: int) -> list[float]:
    """recall@k for k = 1..max_k."""
    ev = _with_evidence(results)
    return [_mean([_hit_at(r, k) for r in ev]) for k in range(1, max_k + 1)]


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def error_result(item: EvalItem, message: str) -> ItemResult:
    return ItemResult(item=item, rank=None, error=message)


def run_item_safely(item: EvalItem, assistant, top_k: int) -> ItemResult:
    """``run_item``, with whatever goes wrong for this one item turned into an error item.
    Ctrl-C and a model that cannot be reached at all still stop the run (they would fail
    every item after this one too); both leave it resumable."""
    if item.error:
        return error_result(item, item.error)
    try:
        return run_item(item, assistant, top_k)
    except GeneratorError as exc:
        if exc.unavailable:
            raise
        return error_result(item, f"{item.file}: id {item.id}: the answerer failed: {exc}")
    except Exception as exc:  # noqa: BLE001 - one item's failure must not end a run of a thousand
        what = str(exc) if isinstance(exc, QuestionError) else f"{type(exc).__name__}: {exc}"
        return error_result(item, f"{item.file}: id {item.id}: {what}")


def run_item(item: EvalItem, assistant, top_k: int) -> ItemResult:
    """One question through retrieval (top_k, for recall@k) and the answerer."""
    passages = assistant.search(item.question, k=top_k)
    rank = hit_rank(item, [(p.doc.doc_id, p.chunk.text) for p in passages])
    t0 = time.perf_counter()
    ans = assistant.ask(item.question)
    latency = (time.perf_counter() - t0) * 1000
    citations = [
        {
            "n": c.n,
            "doc": c.doc_id,
            "chunk_id": c.chunk_id,
            "section": c.section,
            "quote": c.quote,
            "evidence": hit_rank(item, [(c.doc_id, _chunk_text(assistant, c.chunk_id))]) is not None,
        }
        for c in ans.citations
    ]
    return ItemResult(
        item=item,
        rank=rank,
        answer=ans.text,
        refused=ans.refused,
        correct=(not ans.refused) and answer_correct(item, ans.text),
        cited_hits=sum(c["evidence"] for c in citations),
        cited=len(citations),
        grounded=ans.grounded,
        latency_ms=latency,
        retrieved=[
            {
                "rank": n,
                "doc": p.doc.doc_id,
                "chunk_id": p.chunk.chunk_id,
                "section": p.chunk.section,
                "text": p.chunk.text,
                "evidence": hit_rank(item, [(p.doc.doc_id, p.chunk.text)]) is not None,
            }
            for n, p in enumerate(passages[:PASSAGES_KEPT], 1)
        ],
        citations=citations,
        answered_by=ans.backend,
        reasons=list(ans.reasons),
    )


def _chunk_text(assistant, chunk_id: str) -> str:
    chunk = assistant.index.chunk(chunk_id)
    return chunk.text if chunk else ""


def evaluate(
    items: list[EvalItem],
    assistant,
    *,
    top_k: int = 10,
    progress: bool = True,
    workers: int = 1,
    done: dict[tuple[str, str], ItemResult] | None = None,
    on_result: Callable[[ItemResult], None] | None = None,
) -> list[ItemResult]:
    """Results for ``items`` in their order. Items in ``done`` (by ``EvalItem.key``) are not run
    again; every new result goes to ``on_result`` as soon as it is finished, in the calling
    thread, so a checkpoint never sees two writers. An item that cannot be run becomes an error
    item and the run goes on; Ctrl-C (or an unreachable model) stops it: questions not yet
    started are cancelled, finished ones have already been handed over."""
    from tqdm import tqdm

    done = dict(done or {})
    todo = [i for i in items if i.key not in done]
    bar = tqdm(total=len(items), initial=len(items) - len(todo), desc="Evaluating", unit="q", disable=not progress)

    def finished(result: ItemResult) -> None:
        done[result.item.key] = result
        if on_result:
            on_result(result)
        bar.update()

    try:
        _run_pool(todo, assistant, top_k, max(1, workers), finished)
    finally:
        bar.close()
    return [done[i.key] for i in items]


def _run_pool(todo: list[EvalItem], assistant, top_k: int, workers: int, finished: Callable[[ItemResult], None]) -> None:
    # Even one worker runs off the main thread: the main thread only collects results, so it
    # stays free to see Ctrl-C at once and is the checkpoint's only writer.
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="eval")
    pending = {pool.submit(run_item_safely, item, assistant, top_k) for item in todo}
    try:
        while pending:
            # A timeout keeps the main thread waking up, so Ctrl-C is seen promptly.
            completed, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for fut in completed:
                pending.discard(fut)
                finished(fut.result())
    except KeyboardInterrupt:
        # Questions that finished while the interrupt arrived are kept too.
        for fut in [f for f in pending if f.done() and not f.cancelled() and f.exception() is None]:
            finished(fut.result())
        raise
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def by_category(results: list[ItemResult]) -> dict[str, dict[str, float]]:
    cats: dict[str, list[ItemResult]] = {}
    for r in _measured(results):
        cats.setdefault(r.item.category, []).append(r)
    out = {}
    for cat, rs in sorted(cats.items()):
        ev = _with_evidence(rs)
        out[cat] = {
            "n": len(rs),
            "recall@5": _mean([_hit_at(r, 5) for r in ev]) if ev else float("nan"),
            "correct": _mean([1.0 if r.outcome_ok else 0.0 for r in rs]),
        }
    return out


def format_value(key: str, v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if key in ("n", "errors"):
        return str(int(v))
    return f"{v:.1f}" if "ms" in key or "chars" in key else f"{v:.3f}"


def format_table(metrics: dict[str, float], errors: int | None = None) -> str:
    """The metrics as a Markdown table; with ``errors``, a last row counting the error items."""
    lines = ["| metric | value |", "|---|---|"]
    lines += [f"| {k} | {format_value(k, v)} |" for k, v in metrics.items()]
    if errors is not None:
        lines.append(f"| errors | {errors} |")
    return "\n".join(lines)


def format_category_table(cats: dict[str, dict[str, float]]) -> str:
    lines = ["| category | n | recall@5 | correct |", "|---|---|---|---|"]
    lines += [
        f"| {cat} | {m['n']} | {format_value('recall@5', m['recall@5'])} | {m['correct']:.3f} |" for cat, m in cats.items()
    ]
    return "\n".join(lines)


# --- settings fingerprint, run description, checkpoint ------------------------------------------

# Settings that cannot change an answer: where things live, how the server listens, secrets.
_NOT_IN_FINGERPRINT = {
    "data_dir", "seeds_dir", "chroma_host", "chroma_port", "host", "port", "api_key", "llm_api_key",
    "cors_origins", "max_upload_mb", "max_request_kb", "embedding_batch_size", "embedding_device",
}


def settings_fingerprint(settings, top_k: int, documents: Iterable[Any] = ()) -> str:
    """Same fingerprint = same answers expected: the answer-relevant settings, top_k and the
    indexed documents' contents. (Code changes are not seen: use --fresh after editing code.)"""
    relevant = {k: v for k, v in settings.model_dump(mode="json").items() if k not in _NOT_IN_FINGERPRINT}
    docs = sorted((d.doc_id, d.sha256) for d in documents)
    blob = json.dumps({"settings": relevant, "top_k": top_k, "docs": docs}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def git_commit(cwd: Path | None = None) -> str | None:
    """HEAD of the checkout qa_app runs from, with "-dirty" when it has uncommitted changes."""
    cwd = cwd or Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd, capture_output=True, text=True, timeout=5)
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def run_info(settings, *, top_k: int, workers: int, files: list[Path], fingerprint: str) -> dict[str, Any]:
    return {
        "backend": settings.generator,
        "llm_model": settings.llm_model,
        "top_k": top_k,
        "workers": workers,
        "embedding_model": settings.embedding_model,
        "files": [str(f) for f in files],
        "git_commit": git_commit(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "fingerprint": fingerprint,
    }


def _json_safe(obj: Any) -> Any:
    """NaN (a category with nothing to measure) is not valid JSON: write null."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    return obj


def results_document(results: list[ItemResult], run: dict[str, Any] | None = None) -> dict[str, Any]:
    """What ``--json`` writes and ``eval-diff`` and the report read. ``errors`` counts the
    error items (each one is among ``items``, with its message in ``error``)."""
    return _json_safe(
        {
            "run": run or {},
            "metrics": summarise(results),
            "errors": count_errors(results),
            "by_category": by_category(results),
            "recall_curve": recall_curve(results, (run or {}).get("top_k", 10)),
            "items": [r.to_dict() for r in results],
        }
    )


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(document, ensure_ascii=False, indent=1), encoding="utf-8")
    tmp.replace(path)  # a reader never sees half a file


class Checkpoint:
    """Finished results, one JSON line each, keyed by (file, id, settings fingerprint).

    Appended and flushed per item, so an interrupted run loses at most the item being
    written (a torn last line is ignored on load)."""

    def __init__(self, path: Path, fingerprint: str):
        self.path = path
        self.fingerprint = fingerprint

    def load(self, items: list[EvalItem]) -> dict[tuple[str, str], ItemResult]:
        """Results in the checkpoint for these items, under this fingerprint and item wording."""
        if not self.path.is_file():
            return {}
        wanted = {i.key: i for i in items}
        found: dict[tuple[str, str], ItemResult] = {}
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
                item = wanted.get((rec["file"], rec["id"]))
                if item is not None and rec["fingerprint"] == self.fingerprint and rec["item"] == item.digest():
                    found[item.key] = ItemResult.from_fields(item, rec["result"])
            except (ValueError, KeyError, TypeError):
                continue
        return found

    def append(self, result: ItemResult) -> None:
        if result.error:
            return  # not a finished item: a resumed run tries it again
        rec = {
            "file": result.item.file,
            "id": result.item.id,
            "fingerprint": self.fingerprint,
            "item": result.item.digest(),
            "result": result.result_fields(),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def checkpoint_path(json_path: Path | None, report_dir: Path | None, data_dir: Path) -> Path:
    """Next to the results it will become, so one output location = one resumable run."""
    if json_path is not None:
        return json_path.with_name(json_path.name + ".checkpoint.jsonl")
    if report_dir is not None:
        return report_dir / "checkpoint.jsonl"
    return data_dir / "eval_checkpoint.jsonl"
