"""The terminal's metric tables, and the evaluation report: report.md and a self-contained report.html from a results document
(what ``qa-app eval --json`` writes), so a person can see what failed and why.

Charts are drawn with matplotlib's Agg canvas directly (no pyplot: no global state, no
display needed) and labelled in English, since a CJK font may not be installed.
"""
from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import Any

from qa_app.eval.sets import NO_ANSWER_CATEGORIES
from qa_app.highlight import highlight

# --- the terminal's tables -----------------------------------------------------------------------
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


# --- the report files -----------------------------------------------------------------------------
CHARTS = {"latency": "latency.png", "recall": "recall_at_k.png"}


# --- what failed ----------------------------------------------------------------------------


def failure_kinds(item: dict[str, Any]) -> list[str]:
    """Why an item counts against the run; empty when it does not. An error item (it could
    not be run: a bad line or question, an exception while answering) is just "error"."""
    if item.get("error"):
        return ["error"]
    kinds = []
    if item["answerable"]:
        if item["refused"]:
            kinds.append("false refusal")
        elif not item["correct"]:
            kinds.append("wrong answer")
    elif not item["refused"]:
        kinds.append("missed refusal")
    rank = item.get("rank")
    if item.get("evidence") and item.get("category") not in NO_ANSWER_CATEGORIES and not (rank and rank <= 5):
        kinds.append("retrieval miss")
    return kinds


def failures(document: dict[str, Any]) -> list[tuple[dict[str, Any], list[str]]]:
    return [(item, kinds) for item in document["items"] if (kinds := failure_kinds(item))]


def _notes(item: dict[str, Any]) -> list[tuple[str, str]]:
    """Why an error item could not be run; who answered and the answerer's own notes (failed
    checks, fallbacks), where there are any."""
    notes = [("error", str(item["error"]))] if item.get("error") else []
    notes += [("answered by", item["answered_by"])] if item.get("answered_by") else []
    return notes + ([("notes", "; ".join(item["reasons"]))] if item.get("reasons") else [])


def _quotes(item: dict[str, Any]) -> list[str]:
    return [e.get("quote", "") for e in item.get("evidence") or []]


# --- tables and charts ----------------------------------------------------------------------


def metric_rows(document: dict[str, Any]) -> list[list[str]]:
    rows = [[k, format_value(k, v)] for k, v in document["metrics"].items()]
    if "errors" in document:  # results written before error items existed have no count
        rows.append(["errors", format_value("errors", document["errors"])])
    return rows


CATEGORY_HEADERS = ["category", "n", "recall@5", "correct (refused if unanswerable)"]


def category_rows(document: dict[str, Any]) -> list[list[str]]:
    return [
        [cat, str(m["n"]), format_value("recall@5", m["recall@5"]), format_value("correct", m["correct"])]
        for cat, m in document["by_category"].items()
    ]


def _png(draw) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.2), dpi=100)
    FigureCanvasAgg(fig)
    draw(fig.add_subplot())
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def latency_chart(latencies: list[float]) -> bytes:
    def draw(ax):
        ax.hist(latencies, bins=min(30, max(5, len(latencies) // 3)), color="#4a78b0")
        ax.set_xlabel("ask latency (ms)")
        ax.set_ylabel("questions")
        ax.set_title("Latency per question")

    return _png(draw)


def recall_chart(curve: list[float]) -> bytes:
    def draw(ax):
        ks = list(range(1, len(curve) + 1))
        ax.plot(ks, curve, marker="o", color="#2f8f5b")
        ax.set_xticks(ks)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("k (passages retrieved)")
        ax.set_ylabel("recall@k")
        ax.set_title("Evidence found in the top k")
        ax.grid(alpha=0.3)

    return _png(draw)


def charts(document: dict[str, Any]) -> dict[str, bytes]:
    return {
        "latency": latency_chart([i["latency_ms"] for i in document["items"] if not i.get("error")]),
        "recall": recall_chart(document["recall_curve"]),
    }


def _run_line(document: dict[str, Any]) -> str:
    run = document.get("run") or {}
    keys = ("backend", "llm_model", "top_k", "workers", "embedding_model", "git_commit", "date", "files")
    return "; ".join(f"{k}: {', '.join(map(str, v)) if isinstance(v, list) else v}" for k in keys if (v := run.get(k)) not in (None, "", []))


# --- Markdown ---------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def md_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _md_passage(p: dict[str, Any], quotes: list[str]) -> str:
    text = "".join(f"**{s}**" if marked else s for s, marked in highlight(p["text"], quotes))
    tag = " ✓ evidence" if p.get("evidence") else ""
    return f"{p['rank']}. `{p['doc']}` · {p.get('section') or '—'}{tag}\n\n   > " + text.replace("\n", " ")


def _md_failure(item: dict[str, Any], kinds: list[str]) -> str:
    if item.get("error"):  # never run: nothing was expected, given or retrieved
        return "\n".join([
            f"### {item['id']} · {item.get('category', '')} · {', '.join(kinds)}",
            f"- file: {item.get('file', '')}",
            f"- question: {item['question']}",
            f"- error: {item['error']}",
        ])
    quotes = _quotes(item)
    lines = [
        f"### {item['id']} · {item.get('category', '')} · {', '.join(kinds)}",
        f"- file: {item.get('file', '')}; evidence at rank: {item.get('rank') or 'not retrieved'}",
        f"- question: {item['question']}",
        f"- expected: {item.get('answer') or '(refusal)'}; keys: {item.get('answer_keys') or []}",
        f"- given{' (refused)' if item['refused'] else ''}: {item['given_answer']}",
    ]
    lines += [f"- {label}: {value}" for label, value in _notes(item)]
    lines += [f"- evidence quote: “{q}” ({e.get('doc', '')})" for e in item.get("evidence") or [] if (q := e.get("quote"))]
    lines.append("\nRetrieved passages:\n")
    lines += [_md_passage(p, quotes) for p in item.get("retrieved") or []]
    return "\n".join(lines)


def render_markdown(document: dict[str, Any]) -> str:
    fails = failures(document)
    parts = [
        "# Evaluation report",
        _run_line(document),
        "## Metrics",
        md_table(["metric", "value"], metric_rows(document)),
        "## By category",
        md_table(CATEGORY_HEADERS, category_rows(document)),
        "## Charts",
        f"![latency]({CHARTS['latency']})\n\n![recall@k]({CHARTS['recall']})",
        f"## Failed items ({len(fails)} of {len(document['items'])})",
    ]
    parts += [_md_failure(item, kinds) for item, kinds in fails]
    return "\n\n".join(parts) + "\n"


# --- HTML (every piece of document or eval-set text goes through html.escape) -----------------

_CSS = """
body{font-family:system-ui,"Noto Sans CJK SC","Microsoft YaHei",sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 10px;text-align:left}
th{background:#f3f3f3}.fail{border:1px solid #ddd;border-radius:6px;padding:.5em 1em;margin:1em 0}
.kind{display:inline-block;background:#fde2e1;color:#8a1c1c;border-radius:9px;padding:0 8px;margin-right:4px;font-size:.85em}
.passage{margin:.4em 0 .4em 1em;padding:.3em .6em;border-left:3px solid #ccc;background:#fafafa}
.passage.ev{border-left-color:#2f8f5b}mark{background:#ffe58a}.meta{color:#666;font-size:.9em}
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def html_table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _html_passage(p: dict[str, Any], quotes: list[str]) -> str:
    text = "".join(f"<mark>{_e(s)}</mark>" if marked else _e(s) for s, marked in highlight(p["text"], quotes))
    tag = " · ✓ evidence" if p.get("evidence") else ""
    meta = f"{p['rank']}. {_e(p['doc'])} · {_e(p.get('section') or '—')}{tag}"
    return f'<div class="passage{" ev" if p.get("evidence") else ""}"><div class="meta">{meta}</div>{text}</div>'


def _html_failure(item: dict[str, Any], kinds: list[str]) -> str:
    if item.get("error"):  # never run: nothing was expected, given or retrieved
        rows = [("question", _e(item["question"])), ("error", _e(item["error"]))]
        table = "<table>" + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows) + "</table>"
        return (
            f'<div class="fail" id="{_e(item.get("file", ""))}-{_e(item["id"])}"><h3>{_e(item["id"])} '
            f'<span class="meta">{_e(item.get("category", ""))} · {_e(item.get("file", ""))}</span> '
            f'<span class="kind">error</span></h3>{table}</div>'
        )
    quotes = _quotes(item)
    evidence = "".join(
        f"<li>“{_e(e.get('quote', ''))}” <span class='meta'>{_e(e.get('doc', ''))}</span></li>" for e in item.get("evidence") or []
    )
    rows = [
        ("question", _e(item["question"])),
        ("expected", _e(item.get("answer") or "(refusal)") + f" <span class='meta'>keys: {_e(item.get('answer_keys') or [])}</span>"),
        ("given" + (" (refused)" if item["refused"] else ""), _e(item["given_answer"])),
        ("evidence", f"<ul>{evidence}</ul>" if evidence else "—"),
        ("evidence at rank", _e(item.get("rank") or "not retrieved")),
    ]
    rows += [(label, _e(value)) for label, value in _notes(item)]
    table = "<table>" + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows) + "</table>"
    badges = "".join(f'<span class="kind">{_e(k)}</span>' for k in kinds)
    passages = "".join(_html_passage(p, quotes) for p in item.get("retrieved") or [])
    return (
        f'<div class="fail" id="{_e(item.get("file", ""))}-{_e(item["id"])}"><h3>{_e(item["id"])} '
        f'<span class="meta">{_e(item.get("category", ""))} · {_e(item.get("file", ""))}</span> {badges}</h3>'
        f"{table}<p>Retrieved passages:</p>{passages}</div>"
    )


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def render_html(document: dict[str, Any], pngs: dict[str, bytes]) -> str:
    fails = failures(document)
    body = [
        "<h1>Evaluation report</h1>",
        f'<p class="meta">{_e(_run_line(document))}</p>',
        "<h2>Metrics</h2>",
        html_table(["metric", "value"], metric_rows(document)),
        "<h2>By category</h2>",
        html_table(CATEGORY_HEADERS, category_rows(document)),
        "<h2>Charts</h2>",
        _img(pngs["latency"], "latency histogram") + _img(pngs["recall"], "recall@k curve"),
        f"<h2>Failed items ({len(fails)} of {len(document['items'])})</h2>",
    ]
    body += [_html_failure(item, kinds) for item, kinds in fails]
    return (
        '<!DOCTYPE html><html lang="zh"><head><meta charset="utf-8"><title>Evaluation report</title>'
        f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>\n"
    )


def write_report(document: dict[str, Any], out_dir: Path) -> Path:
    """report.md (with the charts as PNG files beside it) and report.html (charts inside)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    pngs = charts(document)
    for name, png in pngs.items():
        (out_dir / CHARTS[name]).write_bytes(png)
    (out_dir / "report.md").write_text(render_markdown(document), encoding="utf-8")
    html_path = out_dir / "report.html"
    html_path.write_text(render_html(document, pngs), encoding="utf-8")
    return html_path
