"""The chat page (Gradio), mounted in the same FastAPI app as the HTTP API.

Presentation only: every answer comes from ``Assistant.stream_answer``; this module streams its
verified text, keeps each browser's conversations (qa_app/conversations.py) and ratings
(qa_app/feedback.py), and turns the page's filters and conversation into ``Filters`` and
``history``.
"""
from __future__ import annotations

import logging
import secrets
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import gradio as gr
from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from qa_app import deadline
from qa_app.answer import USER_ERRORS, Assistant
from qa_app.conversations import ConversationError, ConversationStore, check_owner, new_owner_id, title_for
from qa_app.feedback import Feedback, FeedbackError, FeedbackStore
from qa_app.index.hybrid import FilterError, make_filters
from qa_app.models import Answer
from qa_app.ui import render
from qa_app.ui.assets import CSS, HEAD, THEME

log = logging.getLogger("qa_app.ui")

STREAM_DELAY = 0.03  # seconds between streamed pieces, so the answer visibly grows
PAGE_WORKERS = 4
WAITING = "…"
STOPPED = "（已停止）"
OWNER_KEY = "qa-owner"
YEAR_LABEL = "报告所述年份"
YEAR_INFO = "报告标题中的年份（如“2023年计划执行情况”为 2023），不是发布日期"


def _text(message: dict) -> str:
    """A chat message's text, whether Gradio hands it back as a string or as content parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return "" if content is None else str(content)


def _plain(messages: list | None) -> list[dict[str, str]]:
    return [{"role": m["role"], "content": _text(m)} for m in messages or []]


def _asked(answers: dict[str, dict]) -> list[str]:
    """The questions answered so far, oldest first: the history a follow-up is read against."""
    return [answers[k]["question"] for k in sorted(answers, key=int)]


def _doc_label(d) -> str:
    title = d.title if len(d.title) <= 30 else d.title[:29] + "…"
    return f"{title}（{d.year}）" if d.year else title


def _browser_secret(data_dir: Path) -> str:
    """The key the browsers' ids are kept under (gr.BrowserState encrypts them): kept in the data
    dir, so a browser still finds its conversations after the server restarts."""
    path = Path(data_dir) / "page_secret"
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        pass
    secret = secrets.token_urlsafe(24)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600, exist_ok=False)
        path.write_text(secret, encoding="utf-8")
    except FileExistsError:  # another worker made it first
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        log.warning("page secret not saved (%s): conversations stay reachable until the server restarts", exc)
    return secret


def build_ui(
    assistant: Assistant,
    conversations: ConversationStore | None = None,
    feedback: FeedbackStore | None = None,
) -> gr.Blocks:
    settings = assistant.settings
    data_dir = Path(assistant.index.data_dir)
    conversations = conversations or ConversationStore.in_data_dir(data_dir)
    feedback = feedback or FeedbackStore.in_data_dir(data_dir)

    def choices():
        docs = assistant.index.documents()
        years = sorted({d.year for d in docs if d.year}, reverse=True)
        return [(_doc_label(d), d.doc_id) for d in docs], [str(y) for y in years]

    def docs_html() -> str:
        return render.document_list_html(assistant.index.documents(), assistant.index.chunk_counts())

    def refresh_docs(doc_ids: list[str], chosen_years: list[str]):
        """After an upload or a deletion: the filters' choices and the list, without a reload."""
        d, y = choices()
        known = {doc_id for _, doc_id in d}
        return (gr.Dropdown(choices=d, value=[x for x in doc_ids or [] if x in known]),
                gr.Dropdown(choices=y, value=[x for x in chosen_years or [] if x in y]), docs_html())

    def conv_choices(owner: str) -> list[tuple[str, str]]:
        return [(s.title, s.id) for s in conversations.summaries(owner)]

    def persist(owner: str, conv_id: str, messages: list, answers: dict) -> tuple[str, Any]:
        """Save the conversation (created on its first answer); its id and the list, updated."""
        try:
            if conv_id and conversations.save(owner, conv_id, messages, {"answers": answers}):
                return conv_id, gr.Radio(choices=conv_choices(owner), value=conv_id)
            first = next((_text(m) for m in messages if m["role"] == "user"), "新对话")
            conv = conversations.create(owner, title_for(first), messages, {"answers": answers})
            return conv.id, gr.Radio(choices=conv_choices(owner), value=conv.id)
        except (ConversationError, OSError) as exc:  # the answer stays on the page either way
            log.warning("conversation not saved: %s", exc)
            gr.Warning(f"对话未能保存：{exc}")
            return conv_id, gr.skip()

    def start(message: str, messages: list):
        """The question leaves the box and shows in the chat at once; answering follows in ``respond``,
        which never writes to the box (what is typed meanwhile stays)."""
        question = (message or "").strip()
        if not question:
            return gr.skip(), "", gr.skip()
        return "", question, _plain(messages) + [{"role": "user", "content": question},
                                                 {"role": "assistant", "content": WAITING}]

    def respond(question: str, messages: list, answers: dict, doc_ids: list[str], years: list[str],
                owner: str, conv_id: str) -> Iterator:
        if not question:
            return
        messages = _plain(messages)
        answers = dict(answers or {})
        at = len(messages) - 1  # the assistant's message being written

        def fail(text: str):
            messages[at] = {"role": "assistant", "content": f"⚠️ {render.e(text)}"}
            return (messages, answers, *persist(owner, conv_id, messages, answers))

        try:
            filters = make_filters(doc_ids, years, known_docs=assistant.index.snapshot().docs)
        except FilterError as exc:  # a document deleted since the page was loaded
            yield fail(str(exc))
            return
        # The same time limit as the API's, enforced on the work itself: a long question stops
        # instead of holding a worker while the next visitor waits.
        pieces = deadline.bounded(
            assistant.stream_answer(question, filters=filters, history=_asked(answers) or None),
            settings.request_timeout_s,
        )
        text, answer = "", None
        try:
            for item in pieces:
                if isinstance(item, Answer):
                    answer = item
                    break
                text += item
                messages[at] = {"role": "assistant", "content": render.md(text)}
                yield messages, answers, gr.skip(), gr.skip()
                if not assistant.uses_llm:  # whole sentences: pace them so the answer visibly grows
                    time.sleep(STREAM_DELAY)
        except USER_ERRORS as exc:
            yield fail(str(exc))
            return
        if answer is None:
            yield fail("没有得到回答。")
            return
        # The final render is the verified answer: with an LLM that failed verification it
        # replaces the streamed text with the fallback, under a badge that says so.
        messages[at] = {"role": "assistant",
                        "content": render.answer_markdown(answer, uuid.uuid4().hex[:8], filtered=filters is not None)}
        answers[str(at)] = {
            "question": question,
            "answer": answer.text,
            "citations": [c.to_dict() for c in answer.citations],
            "refused": answer.refused,
            "grounded": answer.grounded,
            "settings": {
                "generator": settings.generator, "llm_model": settings.llm_model,
                "embedding_model": settings.embedding_model, "backend": answer.backend,
                "docs": list(doc_ids or []), "years": list(years or []),
            },
        }
        yield (messages, answers, *persist(owner, conv_id, messages, answers))

    def stopped(messages: list, answers: dict, owner: str, conv_id: str):
        """Stop: the words shown so far stay, marked as stopped, and are saved."""
        messages = _plain(messages)
        if not messages or messages[-1]["role"] != "assistant" or str(len(messages) - 1) in (answers or {}):
            return gr.skip(), gr.skip(), gr.skip()
        shown = _text(messages[-1])
        messages[-1] = {"role": "assistant", "content": (shown if shown != WAITING else "") + f"\n\n*{STOPPED}*"}
        return (messages, *persist(owner, conv_id, messages, answers or {}))

    def redo(messages: list, answers: dict):
        """Regenerate: the last question asked again, its answer replaced."""
        messages = _plain(messages)
        last = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=None)
        if last is None:
            gr.Warning("还没有可以重新生成的回答。")
            return "", gr.skip(), gr.skip()
        kept = {k: v for k, v in (answers or {}).items() if int(k) < last}
        return _text(messages[last]), messages[: last + 1] + [{"role": "assistant", "content": WAITING}], kept

    def fresh():
        return [], {}, "", gr.Radio(value=None), ""

    def open_conv(conv_id: str, owner: str):
        try:
            conv = conversations.get(owner, conv_id) if conv_id else None
        except ConversationError as exc:
            raise gr.Error(str(exc)) from exc
        if conv is None:
            gr.Warning("这段对话已不存在。")
            return [], {}, "", gr.Radio(choices=conv_choices(owner), value=None), ""
        return conv.messages, conv.state.get("answers", {}), conv.id, gr.skip(), conv.title

    def rename(title: str, owner: str, conv_id: str):
        if not conv_id:
            gr.Warning("请先选择或开始一段对话。")
            return gr.skip()
        try:
            if not conversations.rename(owner, conv_id, title):
                gr.Warning("这段对话已不存在。")
        except ConversationError as exc:
            gr.Warning(str(exc))
            return gr.skip()
        return gr.Radio(choices=conv_choices(owner), value=conv_id)

    def delete(owner: str, conv_id: str):
        if not conv_id:
            gr.Warning("请先选择要删除的对话。")
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        try:
            conversations.delete(owner, conv_id)
        except ConversationError as exc:
            raise gr.Error(str(exc)) from exc
        return [], {}, "", gr.Radio(choices=conv_choices(owner), value=None), ""

    def rate(evt: gr.LikeData, answers: dict, owner: str, conv_id: str):
        index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        record = (answers or {}).get(str(index))
        if record is None or evt.liked not in (True, False):
            return gr.skip(), gr.skip()
        item = Feedback(
            rating="up" if evt.liked else "down", question=record["question"], answer=record["answer"],
            citations=record["citations"], refused=record["refused"], grounded=record["grounded"],
            settings=record["settings"], owner=owner, conversation=conv_id or "",
        )
        try:
            feedback_id = feedback.add(item)
        except (FeedbackError, OSError) as exc:
            gr.Warning(f"评价未能保存：{exc}")
            return gr.skip(), gr.skip()
        gr.Info("谢谢！可以在下方补充说明。")
        return feedback_id, gr.Group(visible=True)

    def comment(text: str, feedback_id: int | None, owner: str):
        if feedback_id is None:
            return gr.skip(), gr.skip()
        try:
            feedback.set_comment(int(feedback_id), owner, text or "")
        except (FeedbackError, OSError) as exc:
            gr.Warning(str(exc))
            return gr.skip(), gr.skip()  # the comment stays in the box
        gr.Info("说明已记录。")
        return "", gr.Group(visible=False)

    def init(owner: str):
        try:
            owner = check_owner(owner)
        except ConversationError:
            owner = new_owner_id()
        d, y = choices()  # documents added through the API since start-up show up on reload
        return (owner, gr.Radio(choices=conv_choices(owner), value=None), gr.Dropdown(choices=d), gr.Dropdown(choices=y),
                gr.Textbox(interactive=True), docs_html())

    doc_choices, year_choices = choices()
    with gr.Blocks(title=settings.ui_title, analytics_enabled=False) as demo:  # no calls home: the page works offline
        gr.Markdown(f"## {render.e(settings.ui_title)}\n{render.e(settings.ui_description)}", elem_id="qa-head")
        owner = gr.BrowserState("", storage_key=OWNER_KEY, secret=_browser_secret(data_dir))
        conv = gr.State("")  # the open conversation's id ("" until its first answer is saved)
        answers = gr.State({})  # the assistant message's index → the answer behind it (for follow-ups, feedback)
        pending = gr.State("")  # the question being answered
        feedback_id = gr.State(None)  # the last rating, for its comment
        with gr.Row(elem_id="qa-main"):
            with gr.Column(scale=1, min_width=250, elem_id="qa-side"):
                new = gr.Button("新对话", variant="secondary", elem_id="qa-new")
                with gr.Accordion("筛选", open=True, elem_id="qa-filters"):
                    docs = gr.Dropdown(doc_choices, value=[], multiselect=True, label="文档",
                                       info="不选则检索全部文档", elem_id="qa-docs")
                    years = gr.Dropdown(year_choices, value=[], multiselect=True, label=YEAR_LABEL,
                                        info=YEAR_INFO, elem_id="qa-years")
                with gr.Accordion("历史对话", open=False, elem_id="qa-history"):
                    convs = gr.Radio([], value=None, show_label=False, elem_id="qa-convs")
                    title = gr.Textbox(label="标题", max_lines=1, elem_id="qa-conv-title")
                    with gr.Row(elem_classes="qa-side-actions"):
                        rename_btn = gr.Button("重命名", size="sm", elem_id="qa-conv-rename")
                        delete_btn = gr.Button("删除此对话", size="sm", variant="stop", elem_id="qa-conv-delete")
                with gr.Accordion("文档管理", open=False, elem_id="qa-doc-admin"):
                    gr.HTML(render.UPLOAD_HTML, elem_id="qa-upload")
                    doc_list = gr.HTML(docs_html(), elem_id="qa-doc-list")
                    # Pressed by the page's script once an upload or a deletion is done.
                    refresh = gr.Button("刷新", size="sm", elem_id="qa-refresh")
            with gr.Column(scale=4):
                chatbot = gr.Chatbot(
                    show_label=False,
                    height="calc(100vh - 330px)",
                    min_height=420,
                    feedback_options=("Like", "Dislike"),
                    buttons=["copy"],
                    placeholder="在下方输入问题，或点击示例问题。",
                    elem_id="qa-chat",
                )
                with gr.Group(visible=False, elem_id="qa-fb") as fb_box:
                    fb_text = gr.Textbox(label="补充说明（可选）", placeholder="哪里好、哪里不对？", max_lines=4,
                                         elem_id="qa-fb-comment")
                    fb_send = gr.Button("提交说明", size="sm", elem_id="qa-fb-send")
                with gr.Row():
                    # Enabled once the page has loaded this browser's id: a question asked before
                    # that would be answered but not saved.
                    msg = gr.Textbox(placeholder="输入问题，按回车发送", show_label=False, scale=6, autofocus=True,
                                     interactive=False, elem_id="qa-input")
                    send = gr.Button("发送", variant="primary", scale=1, min_width=70, elem_id="qa-send")
                    stop = gr.Button("停止", variant="stop", scale=1, min_width=70, elem_id="qa-stop")
                    regen = gr.Button("重新生成", scale=1, min_width=90, elem_id="qa-regen")
                gr.Examples(settings.ui_examples, inputs=[msg], label="示例问题")

        answer_in = [pending, chatbot, answers, docs, years, owner, conv]
        answer_out = [chatbot, answers, conv, convs]
        answering = []
        for trigger in (msg.submit, send.click):
            first = trigger(start, [msg, chatbot], [msg, pending, chatbot], queue=False)
            answering.append(first.then(respond, answer_in, answer_out))
        redone = regen.click(redo, [chatbot, answers], [pending, chatbot, answers])
        answering.append(redone.then(respond, answer_in, answer_out))
        stop.click(stopped, [chatbot, answers, owner, conv], [chatbot, conv, convs], cancels=answering)
        # A new conversation stops an answer still streaming, or it would refill the cleared chat.
        clear_out = [chatbot, answers, conv, convs, title]
        new.click(fresh, None, clear_out, cancels=answering)
        chatbot.clear(fresh, None, clear_out, cancels=answering)  # the chat's bin icon: a new conversation too
        convs.input(open_conv, [convs, owner], clear_out, cancels=answering)
        rename_btn.click(rename, [title, owner, conv], [convs])
        title.submit(rename, [title, owner, conv], [convs])
        delete_btn.click(delete, [owner, conv], clear_out, cancels=answering)
        chatbot.like(rate, [answers, owner, conv], [feedback_id, fb_box])
        fb_send.click(comment, [fb_text, feedback_id, owner], [fb_text, fb_box])
        fb_text.submit(comment, [fb_text, feedback_id, owner], [fb_text, fb_box])
        refresh.click(refresh_docs, [docs, years], [docs, years, doc_list])
        demo.load(init, [owner], [owner, convs, docs, years, msg, doc_list])
    # Several visitors answered at once (Gradio's default is one at a time: a slow question made
    # the next visitor wait for it). Answering is thread-safe; the cores are shared either way.
    demo.queue(default_concurrency_limit=PAGE_WORKERS)
    return demo


def add_document_view(app: FastAPI, assistant: Assistant, path: str = "/") -> None:
    """GET <path>document?doc=&chunk=&quote=: a cited document whole, opened at the passage."""

    @app.get(f"{path.rstrip('/')}/{render.DOCUMENT_PATH}", include_in_schema=False, response_class=HTMLResponse)
    def view_document(doc: str, chunk: str = "", quote: str = ""):
        snap = assistant.index.snapshot()
        info = snap.docs.get(doc)
        if info is None:
            return HTMLResponse(render.document_html("未找到文档", f"没有这个文档：{doc}", "", None, ""), status_code=404)
        chunks = list(snap.by_doc.get(doc, ()))
        text, where = render.document_text(chunks)
        meta = " · ".join(x for x in (info.date, info.scope.place, info.doc_id) if x)
        return HTMLResponse(render.document_html(info.title, meta, text, where.get(chunk), quote))


def mount_ui(app: FastAPI, assistant: Assistant, path: str = "/") -> FastAPI:
    """Serve the chat page at ``path`` of ``app`` (register the API routes before calling this)."""
    add_document_view(app, assistant, path)
    return gr.mount_gradio_app(
        app, build_ui(assistant), path=path, theme=THEME, css=CSS, head=HEAD, ssr_mode=False, footer_links=[]
    )
