"""A run that can be interrupted and resumed: every finished item is appended to a checkpoint
(JSONL) keyed by (file, id, settings fingerprint), and a later run with the same settings skips
the items found there; and the results document a run writes."""
from __future__ import annotations

import hashlib
import json
import math
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from qa_app.eval.metrics import ItemResult, by_category, count_errors, recall_curve, summarise
from qa_app.eval.sets import EvalItem

# --- settings fingerprint, run description, checkpoint ------------------------------------------

# Settings that cannot change an answer: where things live, how the server listens, secrets.
_NOT_IN_FINGERPRINT = {
    "data_dir", "seeds_dir", "chroma_host", "chroma_port", "host", "port", "api_key", "llm_api_key",
    "cors_origins", "max_upload_mb", "max_request_kb", "embedding_batch_size", "embedding_device",
    "public_docs", "session_hours", "rate_limit_per_min", "rate_limit_burst", "rate_limit_exempt",
    "request_timeout_s",
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


def run_info(settings, *, top_k: int, workers: int, files: list[Path], fingerprint: str,
             withhold_evidence: bool = False) -> dict[str, Any]:
    return {
        "withhold_evidence": withhold_evidence,
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
