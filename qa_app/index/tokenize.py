"""Tokens for BM25 and for the answerer's term matching.

jieba words (with a user dictionary of the corpus's terms) plus character bigrams of
every CJK run: words give precision, bigrams recover matches that segmentation splits
differently in question and passage (经济总量 / 总量, 预算收入 / 收入).
"""
from __future__ import annotations

import logging
import re
from functools import lru_cache
from pathlib import Path

from qa_app.lexicon import active
from qa_app.text import normalize


STOPWORDS = frozenset(
    """的 了 和 与 及 以 在 是 为 对 将 把 被 从 等 由 于 中 上 下 个 之 其 或 而 并 也 都 又 就 着 呢 吗 吧 啊
    什么 多少 哪些 哪个 哪里 哪年 几 怎么 怎样 如何 是否 有没有 有 没有 请问 请 一下 呢 啥 谁 何时 何 为何 为什么
    年 月 日 数量 数目 方面 情况 相关 主要 进行 开展 工作 问题 关于 通过 方面 实现 推进 加强 推动 全面 提出 提到 报告
    the a an of in on for to and or is are was were what which how many much did does do be by with at from as it its this that
    """.split()
)
_PUNCT_RE = re.compile(r"^[\W_]+$")
_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]{2,}")


@lru_cache(maxsize=8)
def _tokenizer(userdicts: tuple[Path, ...]):
    """A jieba tokenizer of our own (the global one is left alone) with these user dictionaries."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    tk = jieba.Tokenizer()
    for path in userdicts:
        tk.load_userdict(str(path))
    return tk


def words(text: str) -> list[str]:
    """jieba words of normalised text, lower-cased, without punctuation and stopwords."""
    out = []
    for w in _tokenizer(active().userdicts).lcut(normalize(text).lower()):
        w = w.strip()
        if not w or _PUNCT_RE.match(w) or w in STOPWORDS:
            continue
        out.append(w)
    return out


def segments(text: str) -> list[str]:
    """Every jieba word of normalised, lower-cased text, punctuation and stopwords included
    (for reading a clause's grammar rather than matching terms)."""
    return [w for w in _tokenizer(active().userdicts).lcut(normalize(text).lower()) if w.strip()]


def bigrams(text: str) -> list[str]:
    out = []
    for run in _CJK_RUN.findall(normalize(text)):
        out.extend(run[i : i + 2] for i in range(len(run) - 1))
    return [b for b in out if b not in STOPWORDS]


def tokens(text: str) -> list[str]:
    """The BM25 token stream: words plus bigrams (bigrams prefixed so they never collide)."""
    ws = words(text)
    return ws + ["~" + b for b in bigrams(text) if b not in ws]
