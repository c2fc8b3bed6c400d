"""Answering a question set: item by item (threads for models that mostly wait), each finished
item handed on as it comes (the checkpoint keeps it), one bad item never stopping the run."""
from __future__ import annotations

import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Callable

from qa_app.eval.metrics import ItemResult, answer_correct, hit_rank
from qa_app.eval.sets import EvalItem
from qa_app.index.hybrid import Filters
from qa_app.llm.base import GeneratorError
from qa_app.question import QuestionError

PASSAGES_KEPT = 5  # retrieved passages stored per item: what the report shows for a failure

# Concurrent questions also share the CPU, which inflates the latency the run reports. The
# extractive answerer is mostly pure Python under the GIL (only the query embedding runs
# outside it): on the dev set, 2 threads cut wall time by ~1.3-1.6x on 2 busy cores, not
# enough to give up clean per-question latency by default. An in-process transformers model
# already uses every core; an HTTP model mostly waits, so there threads pay off.
DEFAULT_WORKERS = {"extractive": 1, "transformers": 1, "openai": 4}


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
    filters = Filters(without_chunks=item.withhold) if item.withhold else None
    passages = assistant.search(item.question, k=top_k, filters=filters)
    rank = hit_rank(item, [(p.doc.doc_id, p.chunk.text) for p in passages])
    t0 = time.perf_counter()
    ans = assistant.ask(item.question, filters=filters)
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

