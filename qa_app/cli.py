"""Command line: ingest, ask, search, eval (eval-diff, eval-report), documents, run, serve, doctor.

Every command reads the same settings (``QA_*`` environment variables or ``qa_app.toml``);
``--data-dir`` overrides where the index lives. Messages follow one bilingual style
(``qa_app/cli_messages.py``), usage errors included. Commands that only read (``ask``, ``search``,
``documents``, ``eval``, ``doctor`` without ``--repair``) create nothing: an empty or missing data
folder is said to be empty, not initialised. ``ask`` answers through a running ``qa-app serve``
when there is one (``qa_app/asker.py``). A new command is one decorated function here.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer
from typer.core import TyperGroup

from qa_app.cli_messages import bilingual, error_line, errors, usage_error, warning_line
from qa_app.server_file import remove_record, write_record


class _Commands(TyperGroup):
    """Every command: an index that cannot be used (a read-only folder, a damaged file, a busy
    writer) is one plain message and exit status 1, never a traceback; a usage error is said in
    the same bilingual style as every other message (exit status 2)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:  # an embedding caller handles click's exceptions itself
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except errors.UsageError as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # `qa-app` alone: the help, not an error
                if exc.format_message().strip():  # (typer has printed it already)
                    typer.echo(exc.format_message())
            else:
                typer.echo(usage_error(exc), err=True)
            code = exc.exit_code
        except errors.ClickException as exc:
            typer.echo(error_line(bilingual("命令无法执行。", exc.format_message())), err=True)
            code = exc.exit_code
        except typer.Abort:
            typer.echo(error_line(bilingual("已中止。", "Aborted.")), err=True)
            code = 1
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx):
        from qa_app.index.embedding_rules import EmbeddingError
        from qa_app.index.errors import StorageError
        from qa_app.index.lock import IndexBusyError
        from qa_app.llm.sentence_model import SentenceModelError

        # Set when a command runs, not when the module is imported (a library user's environment
        # is theirs): no tokenizer fork warnings, no telemetry calls from Chroma.
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
        try:
            return super().invoke(ctx)
        except StorageError as exc:
            _fail(exc.message)
        except (IndexBusyError, SentenceModelError, EmbeddingError) as exc:
            # a busy writer; QA_SENTENCE_MODEL naming a misfit; an embedding server that cannot be reached
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
    typer.secho(error_line(message), fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _warn(message: str) -> None:
    typer.secho(warning_line(message), fg=typer.colors.YELLOW, err=True)


def _require_index(settings) -> None:
    """Stop a read-only command on a folder where nothing was indexed, before opening the index
    (which would create its files)."""
    from qa_app.data_folder import empty_index_message, index_exists

    if not index_exists(settings):
        _fail(empty_index_message(settings.resolved_data_dir()))


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
        _warn(bilingual(f"已跳过 {path}。", f"skipped {path}: {why}"))
    # What the next start reads instead of parsing every token list, saved without building a
    # reader's view and with the vector store let go: the command's peak stays the ingest's.
    index.close()
    _write_start_file(index)
    typer.echo(_ingest_summary(report) + "\n" + _index_size(index, settings.resolved_data_dir()))
    if report.failed and not (report.added or report.updated or report.unchanged):
        raise typer.Exit(1)


def _ingest_summary(report) -> str:
    failed = len(report.failed)
    return bilingual(
        f"新增 {len(report.added)}，更新 {len(report.updated)}，未变 {len(report.unchanged)}"
        + (f"，失败 {failed}" if failed else "") + f"；写入 {report.chunks} 个片段。",
        f"{len(report.added)} added, {len(report.updated)} updated, {len(report.unchanged)} unchanged"
        + (f", {failed} failed" if failed else "") + f"; {report.chunks} chunks written.")


def _write_start_file(index) -> None:
    """A start-up file that cannot be written is a start that takes longer, not a failed ingest."""
    from qa_app.index.errors import StorageError

    try:
        index.write_start_file()
    except (OSError, StorageError) as exc:
        _warn(bilingual(f"未能保存启动文件：{exc}", f"could not save the start-up file: {exc}"))


def _index_size(index, where: Path | None = None) -> str:
    # From the catalog: a count needs no in-memory view of the whole index.
    chunks, docs = index.catalog.count_chunks(), len(index.catalog.documents())
    at_zh, at_en = (f"（{where}）", f" at {where}") if where else ("", "")
    return bilingual(f"索引{at_zh}：{docs} 个文档，{chunks} 个片段。", f"Index{at_en}: {chunks} chunks in {docs} documents.")


def _print_answer(answer, data: dict, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    typer.echo(answer.text)
    if answer.citations:
        typer.echo("\n来源 Sources:")
        typer.echo(answer.sources_text())
    if not answer.grounded:
        typer.secho(warning_line(bilingual("这个回答未能完全核对：", "; ".join(answer.reasons))), fg=typer.colors.YELLOW)


@app.command()
def ask(
    question: Optional[str] = typer.Argument(
        None, help="The question. Omit it to ask several, one per line, as one conversation (follow-ups such as "
        "\"那2024年呢？\" build on the earlier questions; /new starts a new conversation) until an empty line or EOF."),
    data_dir: Optional[Path] = DataDir,
    doc: Optional[list[str]] = typer.Option(None, "--doc", help="Only this document (file name); repeatable."),
    year: Optional[list[int]] = typer.Option(None, "--year", help="Only documents of this year; repeatable."),
    as_json: bool = typer.Option(False, "--json", help="Print the full answer as JSON (citations, passages, timings)."),
    local: bool = typer.Option(False, "--local", help="Answer in this process even when a `qa-app serve` is running "
                               "on the data folder (or QA_SERVER_URL is set)."),
):
    """Answer a question from the indexed reports, with numbered citations.

    When `qa-app serve` runs on the same data folder (or QA_SERVER_URL names a server), the
    question goes to it, which answers at once instead of loading the models here; QA_API_KEY is
    sent to it. Without one, or if it stops answering, the answer is worked out in this process."""
    from qa_app.asker import Asker

    asker = Asker(_settings(data_dir), doc, year, use_server=not local, warn=_warn)
    if question is not None:
        if not _answer(asker, question, None, as_json):
            raise typer.Exit(1)
        return
    interactive = sys.stdin.isatty()
    _converse(asker, interactive, as_json)


def _answer(asker, question: str, history: list[str] | None, as_json: bool) -> bool:
    """Ask and print; a question that cannot be answered as asked is said (stderr). Whether it was answered."""
    from qa_app.asker import AskError

    try:
        answer, data = asker.ask(question, history)
    except AskError as exc:
        typer.secho(error_line(str(exc)), fg=typer.colors.RED, err=True)
        return False
    _print_answer(answer, data, as_json)
    return True


def _converse(asker, interactive: bool, as_json: bool = False, greet: bool | None = None) -> None:
    """Questions from the terminal or stdin as one conversation (``qa_app/terminal.py``)."""
    from qa_app.terminal import GREETING, NEW_STARTED, converse, read_lines

    if interactive if greet is None else greet:
        typer.echo(GREETING)

    def answer(question: str, history: list[str] | None) -> bool:
        done = _answer(asker, question, history, as_json)
        if interactive:
            typer.echo("")
        return done

    converse(read_lines(interactive), answer, on_new=lambda: typer.echo(NEW_STARTED))


@app.command()
def search(
    question: str = typer.Argument(..., help="The query."),
    k: int = typer.Option(5, "--k", "-k", min=1, max=100, help="How many passages (1-100)."),
    data_dir: Optional[Path] = DataDir,
    doc: Optional[list[str]] = typer.Option(None, "--doc", help="Only this document (file name); repeatable."),
    year: Optional[list[int]] = typer.Option(None, "--year", help="Only documents of this year; repeatable."),
    as_json: bool = typer.Option(False, "--json", help="Print the passages as JSON."),
):
    """Show the passages hybrid retrieval finds for a query (no answer)."""
    from qa_app.answer import EmptyIndexError, QuestionError

    settings = _settings(data_dir)
    _require_index(settings)
    assistant = _assistant(settings)
    try:
        passages = assistant.search(question, k=k, filters=_filters(assistant, doc, year))
    except (QuestionError, EmptyIndexError) as exc:
        _fail(str(exc))
    if as_json:
        typer.echo(json.dumps([p.to_dict() for p in passages], ensure_ascii=False, indent=2))
        return
    for p in passages:
        typer.secho(f"[{p.rank}] {p.doc.title} · {p.chunk.section}  (得分 score {p.score:.3f})", bold=True)
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
    withhold: bool = typer.Option(False, "--withhold-evidence", help="Ask each answerable question with the passages "
                                  "holding its evidence kept out of retrieval; it counts as unanswerable, so 'refused' "
                                  "is how often the answerer declines to answer from the nearest other passages."),
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
        _fail(bilingual(f"没有这个生成器：{backend}；可用：{', '.join(available())}。",
                        f"unknown backend {backend!r}; available: {', '.join(available())}"))
    settings = _settings(data_dir, generator=backend)
    try:
        items = load_eval_sets(files)
    except (EvalSetError, OSError) as exc:
        _fail(str(exc))
    _require_index(settings)
    assistant = _assistant(settings)
    if len(assistant.index) == 0:
        _fail(bilingual("索引为空：请先运行 `qa-app ingest`。", "the index is empty: run `qa-app ingest` first"))
    if withhold:
        from qa_app.eval.withheld import withheld_items

        items, skipped = withheld_items(items, list(assistant.index.snapshot().chunks.values()))
        typer.echo(bilingual(f"隐去证据：{len(items)} 个可回答的问题各自隐去含证据的段落后提问；{skipped} 项没有可隐去的证据，未运行。",
                             f"evidence withheld: {len(items)} answerable questions asked with the passages holding "
                             f"their evidence kept out; {skipped} items had no evidence to withhold and are not run"), err=True)
    workers = workers or DEFAULT_WORKERS.get(settings.generator, 1)
    fingerprint = settings_fingerprint(settings, top_k, assistant.index.documents())
    checkpoint = Checkpoint(checkpoint_path(json_path, report_dir, settings.resolved_data_dir()), fingerprint)
    if fresh:
        checkpoint.clear()
    done = checkpoint.load(items)
    if done:
        typer.echo(bilingual(f"继续上次的运行：{len(items)} 项中已完成 {len(done)} 项（{checkpoint.path}）；--fresh 重新开始。",
                             f"resuming: {len(done)} of {len(items)} items done earlier ({checkpoint.path}); "
                             "--fresh starts over"), err=True)
    try:
        results = evaluate(items, assistant, top_k=top_k, progress=not quiet, workers=workers, done=done, on_result=checkpoint.append)
    except (KeyboardInterrupt, GeneratorError) as exc:
        saved = len(checkpoint.load(items))
        why_zh, why_en = ("已中断", "interrupted") if isinstance(exc, KeyboardInterrupt) else ("已停止", f"stopped: {exc}")
        typer.echo("", err=True)
        _warn(bilingual(f"{why_zh}：{len(items)} 项中已完成 {saved} 项，保存在 {checkpoint.path}。再次运行同一命令即可继续"
                        "（加 --fresh 重新开始）。",
                        f"{why_en}; {saved} of {len(items)} items done, saved in {checkpoint.path}. "
                        "Run the same command again to resume (add --fresh to start over)."))
        raise typer.Exit(130 if isinstance(exc, KeyboardInterrupt) else 1)
    fallbacks = sum(1 for r in results if r.answered_by and r.answered_by != settings.generator)
    if fallbacks:
        _warn(bilingual(f"{len(results)} 个回答中有 {fallbacks} 个不是 {settings.generator} 给出的（改用了后备生成器，"
                        "见各项的 answered_by 和 reasons）。",
                        f"{fallbacks} of {len(results)} answers are not from {settings.generator} "
                        "(fallbacks: see answered_by and reasons in the items)"))
    document = results_document(results, run_info(settings, top_k=top_k, workers=workers, files=files, fingerprint=fingerprint,
                                                 withhold_evidence=withhold))
    if document["errors"]:
        shown = [r.error for r in results if r.error][:5]
        more = document["errors"] - len(shown)
        _warn(bilingual(f"{len(results)} 项中有 {document['errors']} 项无法运行，未计入指标（错误信息见结果和报告）：",
                        f"{document['errors']} of {len(results)} items could not be run and are left out of the "
                        "metrics (error items, with their messages in the results and the report):")
              + "\n  " + "\n  ".join(shown) + (f"\n  … 另有 and {more} more" if more else ""))
    typer.echo(format_table(document["metrics"], errors=document["errors"]))
    typer.echo("\n" + format_category_table(document["by_category"]))
    if json_path:
        write_json(json_path, document)
        typer.echo("\n" + bilingual(f"已写入 {json_path}。", f"wrote {json_path}"))
    if report_dir:
        _write_report(document, report_dir)
    # The run is complete and written: a later run should measure afresh, not replay this one.
    checkpoint.clear()


def _write_report(document, report_dir: Path) -> None:
    from qa_app.eval.report import write_report

    page = write_report(document, report_dir)
    typer.echo(bilingual(f"已写入 {page} 和 report.md。", f"wrote {page} and report.md"))


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
def documents(
    data_dir: Optional[Path] = DataDir,
    as_json: bool = typer.Option(False, "--json", help="Print the documents as JSON (with their chunk counts)."),
):
    """List the indexed documents."""
    from qa_app.data_folder import index_exists
    from qa_app.index.store import Index

    settings = _settings(data_dir)
    if not index_exists(settings):  # said without creating an index to list
        typer.echo("[]" if as_json else _NO_DOCUMENTS)
        return
    index = Index(settings)
    docs = index.documents()
    counts = index.chunk_counts()
    if as_json:
        typer.echo(json.dumps([{**d.__dict__, "chunks": counts.get(d.doc_id, 0)} for d in docs], ensure_ascii=False, indent=2))
        return
    if not docs:
        typer.echo(_NO_DOCUMENTS)
    for d in docs:
        typer.echo(f"{d.doc_id}\t{d.date or '-'}\t{d.kind or '-'}\t{counts.get(d.doc_id, 0)} 片段 chunks\t{d.title}")


_NO_DOCUMENTS = bilingual("还没有索引任何文档：请运行 `qa-app ingest`。", "no documents indexed yet: run `qa-app ingest`")


@app.command()
def delete(doc_id: str = typer.Argument(..., help="Document id (its file name)."), data_dir: Optional[Path] = DataDir):
    """Remove a document and its chunks from the index."""
    from qa_app.data_folder import index_exists
    from qa_app.index.store import Index

    settings = _settings(data_dir)
    # An empty folder has no document to delete: said without creating an index there.
    if not index_exists(settings) or not Index(settings).delete_document(doc_id):
        _fail(bilingual(f"索引中没有文档 {doc_id}（见 `qa-app documents`）。",
                        f"no document {doc_id!r} in the index (see `qa-app documents`)"))
    typer.echo(bilingual(f"已删除 {doc_id}。", f"deleted {doc_id}"))


feedback_app = typer.Typer(help="Ratings given on the chat page (👍/👎).", no_args_is_help=True)
app.add_typer(feedback_app, name="feedback")


@feedback_app.command("export")
def feedback_export(
    out: Path = typer.Argument(..., help="Eval-set file to write (JSONL, read by `qa-app eval`)."),
    data_dir: Optional[Path] = DataDir,
    disliked: bool = typer.Option(
        False, "--disliked", help="Also write 👎 answers (category `disliked`, no answer keys: review them before use)."),
):
    """Write the chat page's rated answers as an eval set, so users' verdicts feed `qa-app eval`:
    a 👍 answer becomes an answerable item (its figures as keys, its quotes as evidence), a 👍
    refusal an unanswerable one."""
    from qa_app.feedback import FeedbackStore, export_eval_set

    store = FeedbackStore.in_data_dir(_settings(data_dir).resolved_data_dir())
    if not store.path.exists():  # said without creating the store
        _fail(bilingual(f"还没有任何评价（{store.path} 不存在）。", f"no ratings yet ({store.path} does not exist)"))
    n = export_eval_set(store.path, out, include_disliked=disliked)
    typer.echo(bilingual(f"已写入 {n} 条评测题：{out}", f"wrote {n} eval items to {out}"))


@app.command()
def run(data_dir: Optional[Path] = DataDir):
    """The main job at a terminal: index the bundled seeds if needed, then answer questions typed at
    the prompt as one conversation (follow-ups build on the earlier questions; /new starts over)."""
    from qa_app.answer import Assistant
    from qa_app.asker import Asker
    from qa_app.index.store import Index
    from qa_app.ingest.pipeline import ingest as run_ingest

    settings = _settings(data_dir)
    index = Index(settings)
    _ingest_seeds(index, run_ingest)
    asker = Asker(settings, use_server=False, warn=_warn, assistant=Assistant(settings, index=index))
    _converse(asker, sys.stdin.isatty(), greet=True)


def _ingest_seeds(index, run_ingest) -> None:
    """Index the seeds at start; an index that cannot take writes (read-only, damaged) is said
    and the command goes on: a read-only index still answers, a damaged one says why it cannot."""
    from qa_app.index.errors import StorageError

    try:
        report = run_ingest([index.settings.seeds_dir], index, progress=True)
        typer.echo(_ingest_summary(report) + "\n" + _index_size(index))
    except StorageError as exc:
        _warn(exc.message)


@app.command()
def backends(data_dir: Optional[Path] = DataDir):
    """List the answer generators, whether each is configured and reachable, and which one is active."""
    from qa_app.llm.registry import available, readiness

    settings = _settings(data_dir)
    for name in available():
        ready, detail = readiness(name, settings)  # each backend checks itself
        mark = "*" if name == settings.generator else " "
        typer.echo(f"{mark} {name:<13} {'可用 ready' if ready else '不可用 not ready':<16} {detail}")
    typer.echo(bilingual("（* = 当前使用：QA_GENERATOR）", "* = active: QA_GENERATOR"))


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
    from qa_app.server_file import client_url

    settings = _settings(data_dir, host=host, port=port)
    index = Index(settings)
    if not no_ingest:
        _ingest_seeds(index, run_ingest)
    app_ = create_app(settings, Assistant(settings, index=index))
    base = f"http://{settings.host}:{settings.port}"
    typer.echo(bilingual(f"聊天页面：{base}/   API 文档：{base}/docs", f"Chat page: {base}/   API docs: {base}/docs"))
    data = settings.resolved_data_dir()
    try:
        uvicorn.run(_Recorded(app_, data, client_url(settings.host, settings.port), _warn),
                    host=settings.host, port=settings.port, log_level="warning")
    finally:
        remove_record(data)


class _Recorded:
    """The app, plus the record ``qa-app ask`` finds it by (``qa_app/server_file.py``): written when
    the app has started, removed when it shuts down (and by ``serve`` after the server stops)."""

    def __init__(self, app_, data_dir: Path, url: str, warn):
        self.app, self.data_dir, self.url, self.warn = app_, data_dir, url, warn

    async def __call__(self, scope, receive, send):
        if scope["type"] != "lifespan":
            return await self.app(scope, receive, send)

        async def recording_send(message):
            if message["type"] == "lifespan.startup.complete":
                try:
                    write_record(self.data_dir, self.url)
                except OSError as exc:  # a read-only folder: the server still serves
                    self.warn(bilingual(f"无法写入 {self.data_dir} 中的服务器记录（{exc}）：`qa-app ask` 不会自动使用这个服务器。",
                                        f"cannot write the server record in {self.data_dir} ({exc}): `qa-app ask` "
                                        "will not find this server by itself (set QA_SERVER_URL)"))
            elif message["type"] == "lifespan.shutdown.complete":
                remove_record(self.data_dir)
            await send(message)

        return await self.app(scope, receive, recording_send)


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
