"""The chat page (Gradio), mounted in the same FastAPI app as the HTTP API.

Presentation only: every answer comes from ``Assistant.ask``; this module streams its verified
text, shows its sources with the quoted words highlighted, and turns the page's filters and
conversation into ``Filters`` and ``history``.
"""
from __future__ import annotations

import html
import re
import time
from typing import Iterator

import gradio as gr
from fastapi import FastAPI

from qa_app import deadline
from qa_app.answer import USER_ERRORS, Assistant
from qa_app.highlight import highlight_html
from qa_app.index.hybrid import FilterError, make_filters
from qa_app.models import Answer, Citation

TITLE = "海淀区报告问答"
EXAMPLES = [
    "2023年海淀区地区生产总值增长了多少？",
    "2024年海淀在未来产业上布局了哪些新赛道？",
    "学院路街道有哪些养老助餐点？",
    "2019年海淀區地區生產總值是多少？",
    "What was Haidian's GDP growth in 2024?",
    "朝阳区2023年地区生产总值增速是多少？",
]
NOT_FOUND = "报告中未找到"
CONTEXT_CHARS = 80  # characters of the passage shown on each side of the quoted words
STREAM_DELAY = 0.03  # seconds between streamed pieces, so the answer visibly grows
PAGE_WORKERS = 4

# Local fonts only (the default themes fetch web fonts): CJK text renders with Noto Sans CJK where installed.
THEME = gr.themes.Soft(
    primary_hue="blue",
    font=["Noto Sans CJK SC", "Noto Sans SC", "PingFang SC", "Microsoft YaHei", "system-ui", "sans-serif"],
    font_mono=["ui-monospace", "monospace"],
)
CSS = """
.qa-badge { display:inline-block; padding:2px 10px; border-radius:999px; font-size:0.85em; font-weight:600;
            margin-bottom:6px; }
.qa-refused { background:#fff4e5; color:#9a4b00; border:1px solid #f5c27a; }
.qa-ungrounded { background:#fdecec; color:#a61b1b; border:1px solid #f2a7a7; }
.qa-sources { margin-top:10px; border-top:1px solid var(--border-color-primary); padding-top:6px; font-size:0.92em; }
.qa-sources .qa-src-head { font-weight:600; color:var(--body-text-color-subdued); margin-bottom:4px; }
.qa-sources details { margin:4px 0; }
.qa-sources summary { cursor:pointer; }
.qa-sources .qa-meta { color:var(--body-text-color-subdued); }
.qa-sources .qa-passage { margin:4px 0 8px 1.2em; padding:6px 10px; border-left:3px solid #93b4f5;
                          background:var(--background-fill-secondary); line-height:1.7; }
.qa-sources .qa-quote { display:block; margin:2px 0 2px 1.6em; line-height:1.6; }
/* Dark text on the yellow in both themes: inherited light text on pale yellow was unreadable in dark mode. */
.qa-sources mark { background:#ffe58a; color:#1f2937; padding:0 1px; }
footer { display:none !important; }
"""


def _e(text: str) -> str:
    return html.escape(text, quote=False)


def _md(text: str) -> str:
    """Answer text for the Markdown chat bubble: no HTML, and "[1](二)…" must not become a link."""
    return re.sub(r"([\[\]*_`])", r"\\\1", _e(text))


def sources_html(answer: Answer) -> str:
    """One collapsible block per citation: [n] title · date · section, then the passage, quote marked."""
    passages = {p.chunk.chunk_id: p.chunk.text for p in answer.passages}
    seen: dict[int, Citation] = {}
    for c in answer.citations:
        seen.setdefault(c.n, c)
    if not seen:
        return ""
    items = []
    for n, c in sorted(seen.items()):
        meta = " · ".join(_e(x) for x in (c.date, c.section) if x)
        body = highlight_html(passages.get(c.chunk_id, c.quote), c.quote, CONTEXT_CHARS)
        # Collapsed, with the quoted words in view: a long answer stays short, and the passage
        # around the quote is one click away.
        items.append(
            f'<details><summary><b>[{n}]</b> {_e(c.title)} <span class="qa-meta">{meta}</span>'
            f'<span class="qa-quote"><mark>{_e(c.quote)}</mark></span></summary>'
            f'<div class="qa-passage">{body}</div></details>'
        )
    return f'<div class="qa-sources"><div class="qa-src-head">来源</div>{"".join(items)}</div>'


def _badges(answer: Answer) -> str:
    out = ""
    if answer.refused:
        out += f'<span class="qa-badge qa-refused">{NOT_FOUND}</span> '
    if not answer.grounded:
        out += '<span class="qa-badge qa-ungrounded">未通过核验：数字或引用与来源不符</span>'
    return f"{out}\n\n" if out else ""


def _doc_label(d) -> str:
    title = d.title if len(d.title) <= 30 else d.title[:29] + "…"
    return f"{title}（{d.year}）" if d.year else title


def build_ui(assistant: Assistant) -> gr.Blocks:
    def choices():
        docs = assistant.index.documents()
        years = sorted({d.year for d in docs if d.year}, reverse=True)
        return [(_doc_label(d), d.doc_id) for d in docs], [str(y) for y in years]

    def respond(message: str, messages: list, asked: list[str], doc_ids: list[str], years: list[str]) -> Iterator:
        message = (message or "").strip()
        if not message:
            yield messages, "", asked
            return
        messages = messages + [{"role": "user", "content": message}, {"role": "assistant", "content": "…"}]
        yield messages, "", asked
        try:
            filters = make_filters(doc_ids, years, known_docs=assistant.index.snapshot().docs)
        except FilterError as exc:  # a document deleted since the page was loaded
            messages[-1] = {"role": "assistant", "content": f"⚠️ {_e(str(exc))}"}
            yield messages, "", asked
            return
        # The same time limit as the API's, enforced on the work itself: a long question stops
        # instead of holding a worker while the next visitor waits.
        pieces = deadline.bounded(assistant.stream_answer(message, filters=filters, history=asked or None),
                                  assistant.settings.request_timeout_s)
        text = ""
        try:
            for item in pieces:
                if isinstance(item, Answer):
                    answer = item
                    break
                text += item
                messages[-1] = {"role": "assistant", "content": _md(text)}
                yield messages, "", asked
                if not assistant.uses_llm:  # whole sentences: pace them so the answer visibly grows
                    time.sleep(STREAM_DELAY)
        except USER_ERRORS as exc:
            messages[-1] = {"role": "assistant", "content": f"⚠️ {_e(str(exc))}"}
            yield messages, "", asked
            return
        # The final render is the verified answer: with an LLM that failed verification it
        # replaces the streamed text with the fallback, under a badge that says so.
        asked = asked + [message]
        messages[-1] = {"role": "assistant", "content": _badges(answer) + _md(answer.text) + "\n\n" + sources_html(answer)}
        yield messages, "", asked

    doc_choices, year_choices = choices()
    with gr.Blocks(title=TITLE, analytics_enabled=False) as demo:  # no calls home: the page works offline
        gr.Markdown(
            f"## {TITLE}\n"
            "根据海淀区政府报告回答问题，每个回答都附有引用来源；报告中没有的内容会明确说明。"
            "支持简体、繁體和 English 提问。"
        )
        asked = gr.State([])  # the user's earlier questions, oldest first
        with gr.Row():
            with gr.Column(scale=4):
                chatbot = gr.Chatbot(
                    show_label=False,
                    height="calc(100vh - 330px)",
                    min_height=420,
                    feedback_options=None,
                    buttons=["copy"],
                    placeholder="在下方输入问题，或点击示例问题。",
                    elem_id="qa-chat",
                )
                with gr.Row():
                    msg = gr.Textbox(
                        placeholder="输入问题，按回车发送",
                        show_label=False,
                        scale=6,
                        autofocus=True,
                        elem_id="qa-input",
                    )
                    send = gr.Button("发送", variant="primary", scale=1, min_width=80, elem_id="qa-send")
                gr.Examples(EXAMPLES, inputs=[msg], label="示例问题")
            with gr.Column(scale=1, min_width=260):
                gr.Markdown("### 筛选")
                docs = gr.Dropdown(doc_choices, value=[], multiselect=True, label="文档", info="不选则检索全部文档")
                years = gr.Dropdown(year_choices, value=[], multiselect=True, label="报告年份")
                new = gr.Button("新对话", variant="secondary", elem_id="qa-new")

        inputs = [msg, chatbot, asked, docs, years]
        outputs = [chatbot, msg, asked]
        answering = [msg.submit(respond, inputs, outputs), send.click(respond, inputs, outputs)]
        # A new conversation stops an answer still streaming, or it would refill the cleared chat.
        new.click(lambda: ([], "", []), None, outputs, cancels=answering)
        chatbot.clear(lambda: [], None, asked)  # the chat's own bin icon forgets the history too

        def refresh():  # documents added through the API since start-up show up on reload
            d, y = choices()
            return gr.Dropdown(choices=d), gr.Dropdown(choices=y)

        demo.load(refresh, None, [docs, years])
    # Several visitors answered at once (Gradio's default is one at a time: a slow question made
    # the next visitor wait for it). Answering is thread-safe; the cores are shared either way.
    demo.queue(default_concurrency_limit=PAGE_WORKERS)
    return demo


def mount_ui(app: FastAPI, assistant: Assistant, path: str = "/") -> FastAPI:
    """Serve the chat page at ``path`` of ``app`` (register the API routes before calling this)."""
    return gr.mount_gradio_app(
        app, build_ui(assistant), path=path, theme=THEME, css=CSS, ssr_mode=False, footer_links=[]
    )
