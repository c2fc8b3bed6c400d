"""Command line: ingest, ask, search, eval (eval-diff, eval-report), documents, run.

Every command reads the same settings (``QA_*`` environment variables or ``qa_app.toml``);
``--data-dir`` overrides where the index lives.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer
from typer.core import TyperGroup


class _Commands(TyperGroup):
    """Every command: an index that cannot be used (a read-only folder, a damaged file, a busy
    writer) is one plain message and exit status 1, never a traceback."""

    def invoke(self, ctx):
        from qa_app.index.errors import StorageError
        from qa_app.index.lock import IndexBusyError

        # Set when a command runs, not when the module is imported (a library user's environment
        # is theirs): no tokenizer fork warnings, no telemetry calls from Chroma.
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
        try:
            return super().invoke(ctx)
        except StorageError as exc:
            _fail(exc.message)
        except IndexBusyError as exc:
            _fail(str(exc))


app = typer.Typer(
    cls=_Commands,
    help="qa-app: grounded question answering over Chinese reports (offline by default).\n\n"
    "Typical use: `qa-app serve` (chat page + API), or `qa-app ingest seeds/` once and then "
    "`qa-app ask \"2023年海淀区地区生产总值增长了多少？\"`.",
    no_args_is_help=True,
    add_completion=False,
)

DataDir = typer.Option(None, "--data-dir", help="Index folder (default: $QA_DATA_DIR or ./qa_data).")


@app.callback()
def _check_settings() -> None:
    """Settings are read before any command: a misspelt key in qa_app.toml is named, with the
    nearest valid one, instead of being ignored."""
    from qa_app.config import SettingsError, get_settings

    try:
        get_settings()
    except SettingsError as exc:
        _fail(str(exc), 2)


def _settings(data_dir: Optional[Path], **overrides):
    from qa_app.config import settings_with

    return settings_with(data_dir=data_dir, **overrides)


def _fail(message: str, code: int = 1) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _assistant(settings):
    from qa_app.answer import Assistant

    return Assistant(settings)


def _filters(assistant, doc: list[str] | None, year: list[int] | None):
    from qa_app.index.hybrid import FilterError, make_filters

    try:
        return make_filters(doc, year, known_docs=assistant.index.snapshot().docs)
    except FilterError as exc:
        _fail(str(exc))


@app.command()
def ingest(
    paths: list[Path] = typer.Argument(None, help="Files or folders (.txt .md .html .pdf .docx). Default: the bundled seeds."),
    data_dir: Optional[Path] = DataDir,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    force: bool = typer.Option(
        False, "--force", help="Read and index the files again even when unchanged (after changing the corpus pack, "
        "QA_LEXICON, or upgrading the cleaning); vectors come from the embedding cache."
    ),
):
    """Add or update documents in the index. Unchanged files are skipped; changed files replace their old chunks."""
    from qa_app.index.store import Index
    from qa_app.ingest.pipeline import ingest as run_ingest

    settings = _settings(data_dir)
    paths = paths or [settings.seeds_dir]
    index = Index(settings)
    report = run_ingest(paths, index, progress=not quiet, force=force)
    for path, why in report.failed.items():
        typer.secho(f"skipped {path}: {why}", fg=typer.colors.YELLOW, err=True)
    typer.echo(f"{report.summary()}. Index: {len(index)} chunks in {len(index.documents())} documents at {settings.resolved_data_dir()}")
    if report.failed and not (report.added or report.updated or report.unchanged):
        raise typer.Exit(1)


def _print_answer(answer, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(answer.to_dict(), ensure_ascii=False, indent=2))
        return
    typer.echo(answer.text)
    if answer.citations:
        typer.echo("\n来源 Sources:")
        typer.echo(answer.sources_text())
    if not answer.grounded:
        typer.secho("⚠ " + "; ".join(answer.reasons), fg=typer.colors.YELLOW)


@app.command()
def ask(
    question: Optional[str] = typer.Argument(None, help="The question. Omit it to ask several, one per line, until an empty line or EOF."),
    data_dir: Optional[Path] = DataDir,
    doc: Optional[list[str]] = typer.Option(None, "--doc", help="Only this document (file name); repeatable."),
    year: Optional[list[int]] = typer.Option(None, "--year", help="Only documents of this year; repeatable."),
    as_json: bool = typer.Option(False, "--json", help="Print the full answer as JSON (citations, passages, timings)."),
):
    """Answer a question from the indexed reports, with numbered citations."""
    from qa_app.answer import EmptyIndexError, QuestionError

    assistant = _assistant(_settings(data_dir))
    filters = _filters(assistant, doc, year)
    questions = [question] if question is not None else None
    interactive = questions is None and sys.stdin.isatty()
    if questions is None:
        questions = _read_questions(interactive)
    for q in questions:
        try:
            _print_answer(assistant.ask(q, filters=filters), as_json)
        except (QuestionError, EmptyIndexError) as exc:
            if not interactive and question is not None:
                _fail(str(exc))
            typer.secho(str(exc), fg=typer.colors.RED, err=True)
        if interactive:
            typer.echo("")


def _read_questions(interactive: bool):
    while True:
        try:
            line = input("问题> " if interactive else "")
        except EOFError:
            return
        if not line.strip():
            return
        yield line


@app.command()
def search(
    question: str = typer.Argument(..., help="The query."),
    k: int = typer.Option(5, "--k", "-k", min=1, max=100, help="How many passages (1-100)."),
    data_dir: Optional[Path] = DataDir,
    doc: Optional[list[str]] = typer.Option(None, "--doc"),
    year: Optional[list[int]] = typer.Option(None, "--year"),
    as_json: bool = typer.Option(False, "--json"),
):
    """Show the passages hybrid retrieval finds for a query (no answer)."""
    from qa_app.answer import EmptyIndexError, QuestionError

    assistant = _assistant(_settings(data_dir))
    try:
        passages = assistant.search(question, k=k, filters=_filters(assistant, doc, year))
    except (QuestionError, EmptyIndexError) as exc:
        _fail(str(exc))
    if as_json:
        typer.echo(json.dumps([p.to_dict() for p in passages], ensure_ascii=False, indent=2))
        return
    for p in passages:
        typer.secho(f"[{p.rank}] {p.doc.title} · {p.chunk.section}  (score {p.score:.3f})", bold=True)
        typer.echo(f"    {p.chunk.text[:300]}")


@app.command("eval")
def eval_cmd(
    files: list[Path] = typer.Argument(..., help="Eval sets (JSONL, one item per line; see DESIGN.md)."),
    data_dir: Optional[Path] = DataDir,
    top_k: int = typer.Option(10, "--top-k", min=1, max=100, help="Passages retrieved for recall@k (k up to this)."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write run settings, metrics, per-category figures and every item here."),
    report_dir: Optional[Path] = typer.Option(None, "--report", help="Write report.md and report.html (charts, every failed item) into this folder."),
    backend: Optional[str] = typer.Option(None, "--backend", help="Answer generator for this run (overrides QA_GENERATOR); see `qa-app backends`."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, max=64, help="Questions run at once (default: 1 for extractive and transformers, 4 for openai)."),
    fresh: bool = typer.Option(False, "--fresh", help="Ignore results saved by an interrupted run and start over."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
):
    """Run Q&A sets through retrieval and the answerer; print recall@k, MRR, accuracy, refusals, latency.

    Finished items are saved as they come (next to --json, else in --report, else in the data
    folder); after Ctrl-C the same command resumes where it stopped."""
    from qa_app.eval.checkpoint import Checkpoint, checkpoint_path, results_document, run_info, settings_fingerprint, write_json
    from qa_app.eval.report import format_category_table, format_table
    from qa_app.eval.runner import DEFAULT_WORKERS, evaluate
    from qa_app.eval.sets import EvalSetError, load_eval_sets
    from qa_app.llm.base import GeneratorError
    from qa_app.llm.registry import available

    if backend is not None and backend not in available():
        _fail(f"unknown backend {backend!r}; available: {', '.join(available())}")
    settings = _settings(data_dir, generator=backend)
    try:
        items = load_eval_sets(files)
    except (EvalSetError, OSError) as exc:
        _fail(str(exc))
    assistant = _assistant(settings)
    if len(assistant.index) == 0:
        _fail("the index is empty: run `qa-app ingest` first")
    workers = workers or DEFAULT_WORKERS.get(settings.generator, 1)
    fingerprint = settings_fingerprint(settings, top_k, assistant.index.documents())
    checkpoint = Checkpoint(checkpoint_path(json_path, report_dir, settings.resolved_data_dir()), fingerprint)
    if fresh:
        checkpoint.clear()
    done = checkpoint.load(items)
    if done:
        typer.echo(f"resuming: {len(done)} of {len(items)} items done earlier ({checkpoint.path}); --fresh starts over", err=True)
    try:
        results = evaluate(items, assistant, top_k=top_k, progress=not quiet, workers=workers, done=done, on_result=checkpoint.append)
    except (KeyboardInterrupt, GeneratorError) as exc:
        saved = len(checkpoint.load(items))
        why = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"stopped: {exc}"
        typer.secho(
            f"\n{why}\n{saved} of {len(items)} items done, saved in {checkpoint.path}.\n"
            "Run the same command again to resume (add --fresh to start over).",
            fg=typer.colors.YELLOW,
            err=True,
        )
        raise typer.Exit(130 if isinstance(exc, KeyboardInterrupt) else 1)
    fallbacks = sum(1 for r in results if r.answered_by and r.answered_by != settings.generator)
    if fallbacks:
        typer.secho(f"warning: {fallbacks} of {len(results)} answers are not from {settings.generator} "
                    "(fallbacks: see answered_by and reasons in the items)", fg=typer.colors.YELLOW, err=True)
    document = results_document(results, run_info(settings, top_k=top_k, workers=workers, files=files, fingerprint=fingerprint))
    if document["errors"]:
        shown = [r.error for r in results if r.error][:5]
        more = document["errors"] - len(shown)
        typer.secho(f"warning: {document['errors']} of {len(results)} items could not be run and are left out of the "
                    "metrics (error items, with their messages in the results and the report):\n  "
                    + "\n  ".join(shown) + (f"\n  … and {more} more" if more else ""), fg=typer.colors.YELLOW, err=True)
    typer.echo(format_table(document["metrics"], errors=document["errors"]))
    typer.echo("\n" + format_category_table(document["by_category"]))
    if json_path:
        write_json(json_path, document)
        typer.echo(f"\nwrote {json_path}")
    if report_dir:
        _write_report(document, report_dir)
    # The run is complete and written: a later run should measure afresh, not replay this one.
    checkpoint.clear()


def _write_report(document, report_dir: Path) -> None:
    from qa_app.eval.report import write_report

    typer.echo(f"wrote {write_report(document, report_dir)} and report.md")


def _load_results(path: Path):
    from qa_app.eval.diff import load_results

    try:
        return load_results(path)
    except (OSError, ValueError) as exc:
        _fail(str(exc))


@app.command("eval-diff")
def eval_diff_cmd(
    before: Path = typer.Argument(..., help="Results of the earlier run (`qa-app eval --json`)."),
    after: Path = typer.Argument(..., help="Results of the later run."),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
):
    """Which items got better or worse between two eval runs (answers, refusals, evidence rank) and the metric deltas."""
    from qa_app.eval.diff import diff, format_diff

    d = diff(_load_results(before), _load_results(after))
    typer.echo(json.dumps(d, ensure_ascii=False, indent=1) if as_json else format_diff(d))


@app.command("eval-report")
def eval_report_cmd(
    results: Path = typer.Argument(..., help="Results of a run (`qa-app eval --json`)."),
    report_dir: Path = typer.Argument(..., help="Folder for report.md and report.html."),
):
    """Write the report of an earlier eval run from its --json results, without running it again."""
    _write_report(_load_results(results), report_dir)


@app.command()
def documents(data_dir: Optional[Path] = DataDir, as_json: bool = typer.Option(False, "--json")):
    """List the indexed documents."""
    from qa_app.index.store import Index

    index = Index(_settings(data_dir))
    docs = index.documents()
    counts = index.chunk_counts()
    if as_json:
        typer.echo(json.dumps([{**d.__dict__, "chunks": counts.get(d.doc_id, 0)} for d in docs], ensure_ascii=False, indent=2))
        return
    if not docs:
        typer.echo("no documents indexed yet: run `qa-app ingest`")
    for d in docs:
        typer.echo(f"{d.doc_id}\t{d.date or '-'}\t{d.kind or '-'}\t{counts.get(d.doc_id, 0)} chunks\t{d.title}")


@app.command()
def delete(doc_id: str = typer.Argument(..., help="Document id (its file name)."), data_dir: Optional[Path] = DataDir):
    """Remove a document and its chunks from the index."""
    from qa_app.index.store import Index

    if not Index(_settings(data_dir)).delete_document(doc_id):
        _fail(f"no document {doc_id!r} in the index (see `qa-app documents`)")
    typer.echo(f"deleted {doc_id}")


@app.command()
def run(data_dir: Optional[Path] = DataDir):
    """The main job: index the bundled seeds if needed, then answer questions typed at the prompt."""
    from qa_app.index.store import Index
    from qa_app.ingest.pipeline import ingest as run_ingest

    settings = _settings(data_dir)
    index = Index(settings)
    _ingest_seeds(index, run_ingest)
    typer.echo("输入问题并回车；空行或 Ctrl-D 退出。 Type a question and press Enter; an empty line or Ctrl-D quits.")
    from qa_app.answer import Assistant, QuestionError

    assistant = Assistant(settings, index=index)
    for q in _read_questions(sys.stdin.isatty()):
        try:
            _print_answer(assistant.ask(q), False)
        except QuestionError as exc:
            typer.secho(str(exc), fg=typer.colors.RED, err=True)
        typer.echo("")


def _ingest_seeds(index, run_ingest) -> None:
    """Index the seeds at start; an index that cannot take writes (read-only, damaged) is said
    and the command goes on: a read-only index still answers, a damaged one says why it cannot."""
    from qa_app.index.errors import StorageError

    try:
        report = run_ingest([index.settings.seeds_dir], index, progress=True)
        typer.echo(f"{report.summary()}. {len(index)} chunks in {len(index.documents())} documents.")
    except StorageError as exc:
        typer.secho(f"warning: {exc.message}", fg=typer.colors.YELLOW, err=True)


@app.command()
def backends(data_dir: Optional[Path] = DataDir):
    """List the answer generators, whether each is configured and reachable, and which one is active."""
    from qa_app.llm.registry import available, readiness

    settings = _settings(data_dir)
    for name in available():
        ready, detail = readiness(name, settings)  # each backend checks itself
        mark = "*" if name == settings.generator else " "
        typer.echo(f"{mark} {name:<13} {'ready' if ready else 'not ready':<10} {detail}")
    typer.echo("(* = active: QA_GENERATOR)")


@app.command()
def serve(
    data_dir: Optional[Path] = DataDir,
    host: Optional[str] = typer.Option(None, "--host", help="Bind address (default 127.0.0.1: this machine only)."),
    port: Optional[int] = typer.Option(None, "--port", min=1, max=65535, help="Port (default 7860)."),
    no_ingest: bool = typer.Option(False, "--no-ingest", help="Do not index the bundled seeds at start."),
):
    """The main job: index the seeds if needed, then serve the chat page (/) and the HTTP API (/v1, /docs)."""
    import uvicorn

    from qa_app.answer import Assistant
    from qa_app.api import create_app
    from qa_app.index.store import Index
    from qa_app.ingest.pipeline import ingest as run_ingest

    settings = _settings(data_dir, host=host, port=port)
    index = Index(settings)
    if not no_ingest:
        _ingest_seeds(index, run_ingest)
    app_ = create_app(settings, Assistant(settings, index=index))
    typer.echo(f"Chat page: http://{settings.host}:{settings.port}/   API docs: http://{settings.host}:{settings.port}/docs")
    uvicorn.run(app_, host=settings.host, port=settings.port, log_level="warning")


@app.command("mcp")
def mcp_command(
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Index folder (default: $QA_DATA_DIR or ./qa_data)."),
):
    """Serve the tools ask, search and list_documents to an MCP client over stdio.

    The client starts this command and talks to it over stdin/stdout (see the README for a client
    configuration); the API server offers the same tools over HTTP at /v1/mcp/.
    """
    settings = _settings(data_dir)
    try:
        from qa_app.mcp_server import build_server
    except ImportError:
        _fail("MCP 需要安装 mcp 包：pip install 'qa_app[ui]'。(The MCP server needs the mcp package: pip install 'qa_app[ui]'.)")
    build_server(_assistant(settings)).run("stdio")


@app.command("doctor")
def doctor_command(
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Index folder (default: $QA_DATA_DIR or ./qa_data)."),
    repair: bool = typer.Option(False, "--repair", help="Fix what was found: delete orphan vectors, restore missing "
                                "ones, rebuild BM25 token lists, re-ingest changed files. Waits for a running ingest."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
):
    """Check that the index is whole: catalog, Chroma vectors, BM25 and source files agree.

    Reports drift left by a crash or a hand edit (vectors without catalog chunks and the reverse,
    BM25 rows that differ from the catalog, documents whose file changed or vanished, a lock or a
    write left by a killed ingest). Exits with 1 when drift is found and not repaired; `--repair`
    fixes it without losing indexed documents.
    """
    import json

    from qa_app.doctor import run_doctor

    report = run_doctor(_settings(data_dir), repair=repair)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    else:
        typer.echo(report.text())
    if not report.ok:
        raise typer.Exit(1)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
