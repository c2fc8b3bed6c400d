"""Strip web-page chrome from scraped reports and rejoin hard-wrapped lines.

Works line by line, by the KIND of line, never by a list of one site's strings:

- **widgets**: a short line made only of page-UI words (下载 打印 全屏 收藏 【字号： 加大 还原
  减小 】 分享到 打印本页 关闭窗口 …); single characters (大 中 小 | × 【 】) count as UI only inside a
  run of widget lines that holds a real UI word;
- **QR and click prompts**: 扫一扫在手机打开当前页, 》》点击图片进入专题《《;
- **captions and bylines**: a line ending in 摄 with a 记者/通讯员/摄影 byline, a line ending in an outlet's
  记者 + name (…。新甘肃·甘肃日报记者 盛学卿), the photo caption "某某作政府工作报告";
- **field lines**: 来源/时间/发布时间/作者/编辑/责任编辑/校对/阅读量… followed by a colon, with their value
  (when the value stands on the next line, it goes too), and bare timestamps (2026-01-31 07:00:44);
- **related links**: a 相关报道/相关新闻/相关文档/延伸阅读… header and the short link titles after it, up to
  the next report sentence or heading;
- **navigation**: breadcrumbs (on one line, or one crumb per line around ">" lines) and the words they
  name, share/tag widgets, image file names, phone numbers, view counters, short English menu items,
  dash-framed page numbers, and repeated short lines (a title repeated by the page).

:func:`clean_text` only drops lines: every line it keeps is an input line. :func:`clean_report`, the
cleaning to index, then rejoins lines broken mid-sentence (see :func:`rejoin_wrapped`), so "主要目标\\n是：",
"PM\\n2.5" and "…增长\\n5.5%" read as one line, while headings and flattened table cells ("… |") stay
separate. Report characters are never edited either way.
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter

from qa_app.ingest.tables import CELL_END, is_cell_line
from qa_app.text import CJK_RE

_SENTENCE_END = "。！？；!?;"
# Marks after which a line is complete: sentence ends, a colon opening a list, an ellipsis, closers.
_COMPLETE_END = tuple(_SENTENCE_END + "：:…）)】》」』”’〕]\"'")

# --- single-line kinds ---------------------------------------------------------------------------
_IMAGE_RE = re.compile(r"^\S{1,60}\.(?:jpe?g|png|gif|bmp|webp|svg)$", re.I)
_PHONE_RE = re.compile(r"^(?:电话|電話|tel|phone)?[:：]?\s*[\d\-\s()+]{7,}$", re.I)
_CHROME_RE = re.compile(
    r"^(?:当前位置|當前位置|您的位置|您现在的位置|分享到|相关文章|相關文章|相关阅读|相關閱讀|标签|標籤|"
    r"提交需求或反馈|上一篇|下一篇|返回顶部|返回頂部|打印本页|关闭窗口|平台注册入口|"
    r"扫一扫|掃一掃|责任编辑|責任編輯)(?:[:：>\s].*)?$"
)
_META_RE = re.compile(
    r"(?:发布时间|發布時間|点击量|點擊量|浏览次数|來源|来源)[:：]|\d{4}-\d{2}-\d{2}\s+\d{1,2}:\d{2}"
)

# Words that page widgets are made of (share, print, font size, window and page controls).
_UI_WORDS = (
    "下载|下載|打印本页|打印本頁|打印此页|打印|全屏|收藏本页|收藏|加入收藏|分享到微信|分享到微博|分享到|分享至|分享|"
    "转发|轉發|微信|微博|朋友圈|QQ空间|QQ|二维码|二維碼|字号|字號|字体|字體|加大|还原|還原|减小|減小|放大|缩小|縮小|"
    "默认|默認|关闭窗口|關閉窗口|关闭本页|关闭|關閉|返回顶部|返回頂部|回到顶部|返回首页|返回|顶部|首页|首頁|"
    "上一篇|下一篇|上一页|下一页|纠错|我要纠错|点赞|评论|評論|朗读|朗讀|播放|暂停|复制链接|複製鏈接|保存|"
    "阅读全文|全文|展开|收起|大字版|无障碍|無障礙|长者模式|English|繁体|繁體|简体|簡體"
)
_UI_LINE_RE = re.compile(rf"^(?:{_UI_WORDS})+$", re.I)
_UI_JUNK = re.compile(r"[\s【】\[\]（）()<>《》「」|｜/\\:：·•,，、。.×✕\-—_]+")
_WEAK_UI_RE = re.compile(r"^(?:[【】\[\]|｜×✕>›»<]|[大中小]|[\s【】\[\]|｜×✕]*)$")
_SEPARATOR_RE = re.compile(r"^[>＞›»→]$")
_PROMPT_RE = re.compile(
    r"(?:扫一扫|掃一掃|扫码|掃碼|扫描二维码|掃描二維碼|长按识别|長按識別|点击图片|點擊圖片|点击进入|點擊進入|点击查看|點擊查看|"
    r"点击阅读|點擊閱讀|点击这里|點擊這裡|点击下载|點擊下載)"
)
# 来源：安徽日报 / 时间：2026-02-11 / （来源：青海日报） / 编辑：何继红 / 阅读量： …
_FIELD_LABELS = (
    "来源|來源|稿源|文章来源|信息来源|出处|出處|时间|時間|发布时间|發布時間|发表时间|發表時間|更新时间|更新時間|"
    "发布日期|發布日期|日期|作者|编辑|編輯|责任编辑|責任編輯|责编|責編|编审|編審|校对|校對|审核|審核|审校|審校|"
    "终审|終審|签发|簽發|记者|記者|通讯员|通訊員|摄影|攝影|摄像|攝像|供稿|阅读量|閱讀量|阅读次数|閱讀次數|浏览量|"
    "瀏覽量|浏览次数|瀏覽次數|点击量|點擊量|点击数|點擊數|访问量|訪問量|字数|字數"
)
_FIELD_RE = re.compile(rf"^[（(【\[]?\s*(?:{_FIELD_LABELS})\s*[:：]")
_FIELD_ANY_RE = re.compile(rf"(?:{_FIELD_LABELS})\s*[:：]")
# A time field is page metadata when its value is a stamp (2026-02-11 09:45, 2026年02月11日); with
# words in it ("时间：2024年5月10日上午9时，地点：…") it is a notice's own text.
_TIME_LABEL_RE = re.compile(r"^[（(【\[]?\s*(?:时间|時間|日期|发布时间|發布時間|发表时间|發表時間|更新时间|更新時間|发布日期|發布日期)\s*[:：]")
_STAMP_CHARS = re.compile(r"[\u4e00-\u9fff](?<![年月日时分秒時])")
_FIELD_ONLY_RE = re.compile(rf"^[（(【\[]?\s*(?:{_FIELD_LABELS})\s*[:：]\s*[）)】\]]?$")
_TIMESTAMP_RE = re.compile(r"^\d{4}[-/.]\d{1,2}[-/.]\d{1,2}(?:\s+\d{1,2}:\d{2}(?::\d{2})?)?$")
_PAGE_NUMBER_RE = re.compile(r"^[-—–－]\s*\d{1,4}\s*[-—–－]$|^第\s*\d{1,4}\s*页(?:\s*[,，/]?\s*共\s*\d{1,4}\s*页)?$")
_NAME = r"[\u4e00-\u9fff·]{1,4}"
_NAMES = rf"{_NAME}(?:[\s\u3000、，,/]+{_NAME})*"
# "…本报记者 霍艳恩摄" / "…记者 王鼎 摄" / "（通讯员 张三 摄）"
_PHOTO_CREDIT_RE = re.compile(rf"(?:记者|記者|通讯员|通訊員|摄影|攝影)[\s\u3000]*(?:{_NAMES})[\s\u3000]*[摄攝][）)]?$")
# "…新甘肃·甘肃日报记者 盛学卿": a reporter byline after an outlet's name, at the end of a caption.
_BYLINE_END_RE = re.compile(
    rf"(?:报|報|台|网|網|社|客户端|新闻|新聞|媒体|媒體)(?:特约|首席|全媒体|融媒体|全媒體|融媒體)?"
    rf"(?:记者|記者|通讯员|通訊員)[\s\u3000]*{_NAMES}$"
)
# The photo of the speaker: "省长赵刚作政府工作报告", "张工作政府工作报告。"
_SPEECH_CAPTION_RE = re.compile(r"^[^，,。；;：:]{1,24}作(?:政府)?工作报告。?$")
_RELATED_RE = re.compile(
    r"^[【\[（(]?\s*(?:相关报道|相關報道|相关新闻|相關新聞|相关文章|相關文章|相关阅读|相關閱讀|相关链接|相關鏈接|"
    r"相关文档|相關文檔|相关稿件|相關稿件|相关专题|相關專題|延伸阅读|延伸閱讀|推荐阅读|推薦閱讀|更多阅读|更多閱讀|"
    r"热点推荐|熱點推薦|精彩推荐|精彩推薦|猜你喜欢|猜你喜歡|往期回顾|往期回顧)\s*[】\]）)]?\s*(?:[:：].{0,60})?$"
)
_NUMBERED_RE = re.compile(
    r"^(?:第[一二三四五六七八九十百零〇两\d]+[编篇部章节]|[一二三四五六七八九十百零〇两]+\s*[、．.]|"
    r"[（(][一二三四五六七八九十百零〇两\d]+[)）]|\d{1,2}\s*[、．.](?!\d)|(?:专栏|專欄)\s*\d)"
)
# A line that begins a new item (a numbered heading, a dash lead-in, a bullet), never the rest of
# the line above it.
_ITEM_START_RE = re.compile(r"^(?:——|－－|--|[•·●■□◆◇▪▶Ø√※★☆])")
_CRUMB_LABEL_RE = re.compile(r"^(?:当前位置|當前位置|您的位置|您现在的位置|您現在的位置)\s*[:：]?\s*$")


def _ui_word_line(line: str) -> bool:
    """A short line made only of widget words: 下载 / 【字号： / 分享到: / 收藏 | 分享."""
    if len(line) > 30:
        return False
    core = _UI_JUNK.sub("", line)
    return bool(core) and bool(_UI_LINE_RE.match(core))


def _weak_ui(line: str) -> bool:
    """Single characters that are widgets only beside other widgets: 大 中 小 | × 【 】 >."""
    return bool(_WEAK_UI_RE.match(line))


def is_caption_or_byline(line: str) -> bool:
    """Photo captions and reporter bylines (a line ending in 摄 with a byline, or in 记者 + name)."""
    if len(line) > 150:
        return False
    if _PHOTO_CREDIT_RE.search(line) or _BYLINE_END_RE.search(line):
        return True
    return bool(_SPEECH_CAPTION_RE.match(line))


def is_field_line(line: str) -> bool:
    """来源：…, 时间：…, 编辑：…: a short label-and-value line (several may share a line)."""
    if len(line) > 60 or line.endswith(tuple(_SENTENCE_END)):
        return False
    if _TIME_LABEL_RE.match(line):
        value = _FIELD_ANY_RE.sub(" ", line[_TIME_LABEL_RE.match(line).end():])
        # what follows the stamp may be further fields (来源：…); their values are not the stamp's
        stamp = re.split(r"\s", value.strip(), maxsplit=1)[0] if value.strip() else ""
        return not _STAMP_CHARS.search(stamp) and (not value.strip() or bool(re.match(r"\d", stamp)))
    return bool(_FIELD_RE.match(line)) or bool(_TIMESTAMP_RE.match(line))


def is_chrome_line(line: str) -> bool:
    """Whether one line, on its own, is page chrome (the rules that need no context)."""
    line = line.strip()
    if not line or is_cell_line(line):
        return False
    if _IMAGE_RE.match(line) or _PHONE_RE.match(line) or _CHROME_RE.match(line):
        return True
    if _ui_word_line(line) or is_field_line(line) or is_caption_or_byline(line):
        return True
    if _PAGE_NUMBER_RE.match(line):
        return True
    if len(line) <= 40 and _PROMPT_RE.search(line) and not line.endswith(tuple(_SENTENCE_END)):
        return True
    if _RELATED_RE.match(line):
        return True
    if len(line) <= 60 and _META_RE.search(line) and not line.endswith(tuple(_SENTENCE_END)):
        return True
    if line.startswith(("•", "·")) and line.endswith(("...", "…")):
        return True  # truncated slogans in the site header
    return _english_menu(line)


def _english_menu_only_kind(line: str) -> bool:
    """Whether a line that looks like an English menu item is also chrome of another kind."""
    return bool(_IMAGE_RE.match(line) or _PHONE_RE.match(line) or _ui_word_line(line) or _weak_ui(line)
                or _PAGE_NUMBER_RE.match(line) or line.startswith(("•", "·")))


def _english_menu(line: str) -> bool:
    """English menu items on a Chinese page: "Products", "SERVICE PHONE"."""
    return not CJK_RE.search(line) and not any(ch.isdigit() for ch in line) and len(line) <= 40


# --- context kinds -------------------------------------------------------------------------------
def _short_word(line: str) -> bool:
    """A crumb or a field value: a few characters, no sentence punctuation."""
    return 0 < len(line) <= 20 and not re.search(r"[，,。；;！？!?]", line) and not is_cell_line(line)


def _link_title(line: str) -> bool:
    """A related-link title: a short headline, not a sentence, not a numbered heading."""
    return (
        0 < len(line) <= 50
        and not line.endswith(tuple(_SENTENCE_END))
        and not _NUMBERED_RE.match(line)
        and not is_cell_line(line)
    )


def _context_drops(lines: list[str], dropped: list[bool]) -> set[str]:
    """Mark lines that are chrome because of their neighbours; return the breadcrumb words."""
    idx = [i for i, ln in enumerate(lines) if ln]
    crumbs: set[str] = set()

    # Breadcrumbs written one crumb per line around separator lines (首页 / > / 政务信息 / > / 要闻).
    for k, i in enumerate(idx):
        if not _SEPARATOR_RE.match(lines[i]):
            continue
        dropped[i] = True
        for j in (idx[k - 1] if k else None, idx[k + 1] if k + 1 < len(idx) else None):
            if j is not None and len(lines[j]) <= 12 and _short_word(lines[j]) and not _NUMBERED_RE.match(lines[j]):
                dropped[j] = True
                crumbs.add(lines[j])

    # Widget runs: weak UI characters (大 中 小 | 】) go when their run holds a real widget word.
    k = 0
    while k < len(idx):
        end = k
        while end < len(idx) and _widget_part(lines, idx, end):
            end += 1
        run = idx[k:end]
        if any(_ui_word_line(lines[j]) for j in run):
            for j in run:
                dropped[j] = True
        k = end + 1

    for k, i in enumerate(idx):
        line = lines[i]
        nxt = idx[k + 1] if k + 1 < len(idx) else None
        # A label whose value stands on the next line: 来源： / 宁夏日报客户端, 当前位置： / 首页.
        if nxt is not None and (_FIELD_ONLY_RE.match(line) or _CRUMB_LABEL_RE.match(line)):
            value = lines[nxt]
            stamp = not _TIME_LABEL_RE.match(line) or is_field_line(line + value)  # a time needs a stamp
            if _short_word(value) and not _NUMBERED_RE.match(value) and stamp:
                dropped[nxt] = True
                if _CRUMB_LABEL_RE.match(line):
                    crumbs.add(lines[nxt])
            elif not stamp:
                dropped[i] = False  # "时间：" / "2024年5月10日上午9时": a notice's own line
        # A related-links header and the link titles after it, up to the report text.
        if _RELATED_RE.match(line):
            for j in idx[k + 1 :]:
                if not _link_title(lines[j]):
                    break
                dropped[j] = True
    return crumbs


def _widget_part(lines: list[str], idx: list[int], k: int) -> bool:
    """Whether the k-th non-blank line can belong to a run of widget lines."""
    line = lines[idx[k]]
    if is_cell_line(line) and (line != CELL_END or _cell_neighbour(lines, idx, k)):
        return False  # a real flattened-table cell
    return _ui_word_line(line) or _weak_ui(line) or bool(_FIELD_ONLY_RE.match(line))


def _cell_neighbour(lines: list[str], idx: list[int], k: int) -> bool:
    """Whether the k-th non-blank line stands beside a flattened table cell."""
    around = [idx[k - 1]] if k else []
    around += [idx[k + 1]] if k + 1 < len(idx) else []
    return any(is_cell_line(lines[j]) and lines[j] != CELL_END for j in around)


def _breadcrumb_words(lines: list[str]) -> set[str]:
    words: set[str] = set()
    for line in lines:
        if _CHROME_RE.match(line) and ">" in line:
            for part in re.split(r"[>:：]", line):
                part = part.strip()
                if part and len(part) <= 12:
                    words.add(part)
    return words


# --- hard wraps ----------------------------------------------------------------------------------
_OPENERS = tuple("（【《「『“‘〔([")
_CLOSERS_START = tuple("）】》」』”’〕、，。：；！？％‰")
_PREDICATE_START_RE = re.compile(r"^(?:是|为|為|有|如下|包括|分别是|分別是|分别为|分別為|主要是|主要有|主要包括)[：:]")
_PROSE_COMMA_RE = re.compile(r"[，；]|[\u4e00-\u9fff][,;]")
_NUMBER_CUT_RE = re.compile(r"(?:\d\.\n\d|\d\n[.%]|[A-Za-z]\n\d+\.\d)")
_TITLE_MAX = 30  # the longest line that may be an unnumbered title (chunk.heading_rank's limit)


# Words that leave a line unfinished when it ends in them: a conjunction or a particle waiting for
# what it joins ("…计划执行情况与2024年国民经济和" / "社会发展计划的报告"). Words that merely end in the
# same character (参与, 普及, 目的, 实事求是) are complete.
_DANGLING_END = tuple("与和及或的是")
_COMPLETE_WORDS = (
    "参与", "给与", "赋与", "人和", "总和", "饱和", "缓和", "温和", "平和", "共和", "调和", "柔和", "祥和",
    "附和", "随和", "普及", "涉及", "波及", "不及", "目的", "有的", "标的", "似的", "求是",
)


def ends_dangling(line: str) -> bool:
    """Whether a line stops on a conjunction or particle, so that it cannot be a whole title."""
    return bool(CJK_RE.search(line[-1:])) and line.endswith(_DANGLING_END) and not line.endswith(_COMPLETE_WORDS)


def _width(line: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in line)


def _wrap_width(lines: list[str]) -> int | None:
    """The width at which a text was hard-wrapped (PDF and fixed-width text), if it was.

    A wrapped text has many unfinished lines of (nearly) one width, and almost no line is wider:
    that width is where it was wrapped. Scraped pages and hand-written text, whose lines are
    paragraphs, have none (parallel headings of one length are followed by far longer paragraphs)."""
    body = [_width(ln) for ln in lines if ln and not is_cell_line(ln)]
    widths = [w for ln, w in zip((ln for ln in lines if ln and not is_cell_line(ln)), body)
              if w >= 40 and not ln.endswith(_COMPLETE_END)]
    if len(widths) < 8:
        return None
    counts = Counter(widths)
    best, support = max(((w, sum(counts[v] for v in range(w - 4, w + 1))) for w in counts), key=lambda t: (t[1], t[0]))
    wider = sum(1 for w in body if w > best + 2)
    if support >= 8 and support >= 0.6 * len(widths) and wider <= 0.05 * len(body):
        return best
    return None


def _is_full(line: str, wrap: int) -> bool:
    """A line of a wrapped text that runs to the wrap width without ending its sentence."""
    unfinished = bool(line) and not is_cell_line(line) and not line.endswith(tuple(_SENTENCE_END))
    return unfinished and _width(line) >= wrap - 2


def _continues(prev: str, nxt: str, wrap: int | None, last: str = "") -> bool:
    """Whether ``nxt`` is the rest of a line that ``prev`` broke off mid-sentence (``last``: the
    last input line that ``prev`` is made of, when lines were joined into it already)."""
    if not prev or not nxt or is_cell_line(prev) or is_cell_line(nxt):
        return False
    if prev.endswith(tuple(_SENTENCE_END)):
        return False
    has_cjk = bool(CJK_RE.search(prev) or CJK_RE.search(nxt))
    if not has_cjk:
        return False
    # The next line starts with a mark no line can start with: "）", "，", "。", "％" …
    if nxt.startswith(_CLOSERS_START):
        return True
    # The previous line ends inside brackets or quotes it opened: "（" / "三）…".
    if prev.endswith(_OPENERS):
        return True
    # A number cut in two: "5." / "5%", "5" / ".5%", "5.5" / "%", "PM" / "2.5" (letters and a decimal).
    # "表1" / "2025年…" and "附件A" / "2025年…" are a caption and a new line, so digit|digit and
    # letter|integer breaks stay.
    if _NUMBER_CUT_RE.search(prev[-2:] + "\n" + nxt[:4]):
        return True
    # A predicate whose subject is the line above: "主要目标" / "是：…".
    if _PREDICATE_START_RE.match(nxt):
        return True
    # A line that stops on a conjunction or particle: "…国民经济和" / "社会发展计划的报告".
    if ends_dangling(prev) and not _ITEM_START_RE.match(nxt) and not _NUMBERED_RE.match(nxt):
        return True
    if _ITEM_START_RE.match(nxt):
        return False
    # Fixed-width wrapping: an unfinished line as wide as the wrap width (a numbered heading only
    # when it fills the width completely), whatever mark it stops on short of a sentence end.
    if wrap is not None and not _NUMBERED_RE.match(nxt):
        width = _width(last or prev)
        if width >= wrap - (1 if _NUMBERED_RE.match(last or prev) else 2):
            return True
    if prev.endswith(_COMPLETE_END):
        return False
    # A sentence cut off: a line too long for a title that reads as prose (it has commas) but has
    # no end. Numbered headings ("（一）着力…，产业…加快") and short titles never join.
    if len(prev) > _TITLE_MAX and _PROSE_COMMA_RE.search(prev) and not _NUMBERED_RE.match(prev):
        return True
    return False


def rejoin_wrapped(lines: list[str]) -> list[str]:
    """Join each line broken mid-sentence to the line it continues.

    A blank line ends a paragraph, except after a line that stops on a conjunction or particle."""
    wrap = _wrap_width(lines)
    out: list[str] = []
    last = ""  # the last input line joined into out[-1]: its width is the one that shows a wrap
    for line in lines:
        if out and _continues(out[-1], line, wrap, last):
            out[-1] += line
        elif (  # a page that sets every line apart: "…国民经济和" / "" / "社会发展计划的报告"
            len(out) >= 2 and out[-1] == "" and ends_dangling(out[-2]) and not is_cell_line(out[-2])
            and _continues(out[-2], line, None)
        ):
            out.pop()
            out[-1] += line
        else:
            out.append(line)
        last = line
    return out


# --- the passes ----------------------------------------------------------------------------------
def _drop_once(text: str) -> str:
    raw = [ln.strip() for ln in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    dropped = [bool(ln) and is_chrome_line(ln) for ln in raw]
    for i, line in enumerate(raw):
        # A Latin-only line that is half of a broken line ("（" / "三）…", "PM" / "2.5…") is text.
        if dropped[i] and _english_menu(line) and not _english_menu_only_kind(line):
            before = raw[i - 1] if i and not dropped[i - 1] else ""
            after = raw[i + 1] if i + 1 < len(raw) and not dropped[i + 1] else ""
            if _continues(before, line, None) or _continues(line, after, None):
                dropped[i] = False
    crumbs = _breadcrumb_words(raw) | _context_drops(raw, dropped)
    # In a hard-wrapped text, a full line and the line after it are pieces of a paragraph, whatever
    # they happen to hold ("…推行“扫码" is not a QR prompt): only page numbers and images go.
    wrap = _wrap_width(raw)
    protected = [False] * len(raw)
    if wrap is not None:
        full = [_is_full(ln, wrap) for ln in raw]
        protected = [full[i] or (i > 0 and full[i - 1]) for i in range(len(raw))]
    lines: list[tuple[str, bool]] = []
    for line, gone, keep in zip(raw, dropped, protected):
        if not line:
            if lines and lines[-1][0] != "":
                lines.append(("", False))
        elif keep and not (_PAGE_NUMBER_RE.match(line) or _IMAGE_RE.match(line)) or not gone and line not in crumbs:
            lines.append((line, keep))
    kept: list[str] = []
    seen_short: set[str] = set()
    for k, (line, keep) in enumerate(lines):
        short = len(line) <= 80 and not line.endswith(tuple(_SENTENCE_END))
        if line and short and not keep and not is_cell_line(line):
            # A repeated title or site name; report sentences, table cells and the pieces of a
            # broken line may repeat.
            after = lines[k + 1][0] if k + 1 < len(lines) else ""
            if line in seen_short and not _continues(line, after, wrap):
                continue
            seen_short.add(line)
        if line or (kept and kept[-1] != ""):
            kept.append(line)
    while kept and kept[-1] == "":
        kept.pop()
    return "\n".join(kept)


def _fixpoint(step, text: str) -> str:
    # One pass can bring lines together that the next pass treats differently (a repeated title
    # after a dropped line, two halves of a sentence that chrome stood between), so passes repeat
    # until the text no longer changes: cleaning cleaned text changes nothing.
    done = step(text)
    for _ in range(8):
        again = step(done)
        if again == done:
            break
        done = again
    return done


def clean_text(text: str) -> str:
    """The text with page chrome removed and blank runs collapsed; every kept line is an input line.

    This is the cleaning that only drops lines; :func:`clean_report` also rejoins broken lines."""
    return _fixpoint(_drop_once, text)


def rejoin_text(text: str) -> str:
    """The text with lines broken mid-sentence joined again (see :func:`rejoin_wrapped`)."""
    return "\n".join(rejoin_wrapped(text.split("\n")))


def clean_report(text: str) -> str:
    """The text to index: page chrome removed (:func:`clean_text`), then lines broken
    mid-sentence rejoined (:func:`rejoin_text`), so "主要目标\\n是：" and "PM\\n2.5" read as one line.
    Characters are never edited: a kept line is an input line, or pieces of a broken line joined."""
    return _fixpoint(lambda t: clean_text(rejoin_text(t)), clean_text(text))
