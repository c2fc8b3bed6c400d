"""Where an evidence quote stands in a passage: one function for the eval report and the chat page."""
from __future__ import annotations

import html
from typing import Iterable

from qa_app.text import normalize


def highlight(text: str, quotes: Iterable[str]) -> list[tuple[str, bool]]:
    """``text`` cut into (piece, is_evidence) segments, marking every evidence quote it holds."""
    marks = [False] * len(text)
    # Quotes are verbatim, but a chunk may be in Traditional script or full-width forms where the
    # quote is not; the normalised text can stand in for positions only when it keeps the length.
    norm = normalize(text)
    haystacks = [text] + ([norm] if len(norm) == len(text) else [])
    for quote in filter(None, quotes):
        for hay, needle in zip(haystacks, (quote, normalize(quote))):
            start = hay.find(needle)
            if start >= 0:
                marks[start : start + len(needle)] = [True] * len(needle)
                break
    segments: list[tuple[str, bool]] = []
    for ch, marked in zip(text, marks):
        if segments and segments[-1][1] == marked:
            segments[-1] = (segments[-1][0] + ch, marked)
        else:
            segments.append((ch, marked))
    return segments


def highlight_html(passage: str, quote: str, context: int) -> str:
    """The passage around the quote, HTML-escaped, the quoted words in <mark> (found in any
    script, as ``highlight`` finds them), at most ``context`` characters either side."""
    segments = highlight(passage, [quote])
    if not any(marked for _, marked in segments):
        return html.escape(passage, quote=False)
    first = next(i for i, (_, marked) in enumerate(segments) if marked)
    before = "".join(s for s, _ in segments[:first])
    marked = segments[first][0]
    after = "".join(s for s, _ in segments[first + 1:])
    before = ("…" + before[-context:].lstrip()) if len(before) > context else before
    after = (after[:context].rstrip() + "…") if len(after) > context else after
    e = lambda t: html.escape(t, quote=False)  # noqa: E731
    return f"{e(before)}<mark>{e(marked)}</mark>{e(after)}"
