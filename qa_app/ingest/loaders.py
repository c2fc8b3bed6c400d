"""Document loaders: one function per file type, chosen by suffix.

Each loader turns a file into plain text with one paragraph (or table cell) per line.
Adding a type is one function plus one line in ``LOADERS``.
"""
from __future__ import annotations

import codecs
import re
from functools import lru_cache
from pathlib import Path
from typing import Callable


class LoaderError(ValueError):
    """A file that cannot be read as a document; the message says why."""


# Control characters other than tab, newlines and form feed never occur in real text;
# a few percent of them means bytes that merely happen to decode (junk named .txt).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_MAX_CONTROL_SHARE = 0.01
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def _decode(data: bytes, name: str) -> str:
    if data.startswith(_UTF16_BOMS):  # Windows "Unicode" text: full of NUL bytes, yet text
        return _plausible(data.decode("utf-16"), name)
    if b"\x00" in data[:4096]:
        raise LoaderError(f"{name}: looks like a binary file, not text (NUL bytes)")
    # GB18030 is a superset of GBK and GB2312, so one try covers the mainland encodings.
    for enc in ("utf-8-sig", "gb18030", "big5"):
        try:
            return _plausible(data.decode(enc), name)
        except UnicodeDecodeError:
            continue
    raise LoaderError(f"{name}: not valid UTF-8, GB18030/GBK or Big5 text (a binary file, or another encoding)")


def _plausible(text: str, name: str) -> str:
    sample = text[:20000]
    if sample and len(_CONTROL.findall(sample)) > _MAX_CONTROL_SHARE * len(sample):
        raise LoaderError(f"{name}: looks like a binary file, not text (control characters)")
    return text


def load_text(path: Path) -> str:
    return _decode(path.read_bytes(), path.name)


def load_html(path: Path) -> str:
    """The main text of a web page: trafilatura's boilerplate removal (menus, share bars, related
    links and footers go), tables kept as one "cell |" line per cell; when trafilatura is missing
    or finds no main text, the whole page through BeautifulSoup."""
    html = _decode(path.read_bytes(), path.name)
    return _html_main_text(html) or _html_all_text(html)


_BLOCKS = {"head", "p", "item", "quote", "code", "cell"}


def _html_main_text(html: str) -> str:
    try:
        import trafilatura
        from lxml import etree
    except ImportError:
        return ""
    try:  # offline: extraction works on the string, nothing is fetched
        xml = trafilatura.extract(
            html, output_format="xml", include_tables=True, include_comments=False, include_images=False,
            include_links=False, include_formatting=False, favor_recall=True, deduplicate=False, with_metadata=True,
            config=_trafilatura_config(),
        )
        root = etree.fromstring(xml.encode("utf-8")) if xml else None
    except Exception:  # noqa: BLE001 - a page trafilatura cannot parse falls back to the plain path
        return ""
    if root is None:
        return ""
    main = root.find("main")
    lines: list[str] = []
    _xml_lines(main if main is not None else root, lines)
    if not any(ln.strip() for ln in lines):
        return ""
    # trafilatura takes the page's headline out of the text into its metadata; the report's title
    # belongs on the first line, where metadata inference reads it.
    title = _page_title(root.get("title") or "")
    if title and not any(title in ln for ln in lines[:3]):
        lines.insert(0, title)
    return "\n".join(lines).strip() + "\n"


def _page_title(title: str) -> str:
    """The headline in trafilatura's title: a <title> is often "headline_column_site"."""
    return re.split(r"\s*(?:_|\||｜|\s-\s|\s—\s)\s*", title.strip(), maxsplit=1)[0].strip()


@lru_cache(maxsize=1)
def _trafilatura_config():
    from trafilatura.settings import use_config

    config = use_config()
    # A short report page is still a report: without this, pages under 250 characters of main text
    # get trafilatura's whole-page fallback, one paragraph of menus and body with the tables flattened.
    config.set("DEFAULT", "MIN_EXTRACTED_SIZE", "1")
    return config


def _xml_lines(element, lines: list[str]) -> None:
    """Walk trafilatura's XML: one line per paragraph or heading (split at <lb/>), table rows as
    "cell |" lines with a blank line after the table."""
    for child in element:
        tag = child.tag if isinstance(child.tag, str) else ""
        if tag == "table":
            for row in child.iter("row"):
                for cell in row.findall("cell"):
                    lines.append(f"{_inline_text(cell).replace(chr(10), ' ').strip()} |")
            lines.append("")
        elif tag in _BLOCKS:
            lines.extend(ln.strip() for ln in _inline_text(child).split("\n") if ln.strip())
        elif tag:
            if child.text and child.text.strip():
                lines.append(child.text.strip())
            _xml_lines(child, lines)
        if child.tail and child.tail.strip():
            lines.append(child.tail.strip())


def _inline_text(element) -> str:
    parts: list[str] = [element.text or ""]
    for sub in element:
        if sub.tag == "lb":
            parts.append("\n")
        else:
            parts.append(_inline_text(sub))
        parts.append(sub.tail or "")
    return "".join(parts)


def _html_all_text(html: str) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "nav", "header", "footer", "form"]):
        tag.decompose()
    for row in soup.find_all("tr"):
        cells = [c.get_text(" ", strip=True) for c in row.find_all(["td", "th"])]
        row.replace_with(soup.new_string("\n" + "\n".join(f"{c} |" for c in cells) + "\n"))
    return soup.get_text("\n")


def load_pdf(path: Path) -> str:
    from pypdf import PdfReader

    with path.open("rb") as f:
        head = f.read(1024)
    if b"%PDF" not in head:  # the spec allows junk before the header, within the first 1 KB
        raise LoaderError(f"{path.name}: not a PDF file (no %PDF header)")
    # pypdf raises many exception types on damaged input; any of them means "unreadable".
    try:
        reader = PdfReader(str(path))
        encrypted = reader.is_encrypted
    except Exception as exc:  # noqa: BLE001
        raise LoaderError(f"{path.name}: not a readable PDF, damaged or truncated ({exc})") from exc
    if encrypted:
        _unlock_pdf(reader, path.name)
    try:
        pages = [page.extract_text() or "" for page in reader.pages]
    except Exception as exc:  # noqa: BLE001
        raise LoaderError(f"{path.name}: the PDF's pages cannot be read, damaged or truncated ({exc})") from exc
    return "\n".join(pages)


def _unlock_pdf(reader, name: str) -> None:
    """Open a PDF encrypted without a user password (common: owner-only restrictions)."""
    try:
        opened = reader.decrypt("")
    except Exception as exc:  # noqa: BLE001 - e.g. AES without the optional crypto library
        raise LoaderError(f"{name}: the PDF is encrypted and cannot be opened ({exc})") from exc
    if not opened:
        raise LoaderError(f"{name}: the PDF is encrypted with a password; save an unprotected copy to index it")


def load_docx(path: Path) -> str:
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(str(path))
    except PackageNotFoundError as exc:
        raise LoaderError(f"{path.name}: not a readable .docx file (not a Word document package)") from exc
    except Exception as exc:  # noqa: BLE001 - damaged zips raise BadZipFile, KeyError, XML errors …
        raise LoaderError(f"{path.name}: not a readable .docx file, damaged or truncated ({exc})") from exc
    lines = [p.text for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            lines.extend(f"{cell.text.strip()} |" for cell in row.cells)
    return "\n".join(lines)


LOADERS: dict[str, Callable[[Path], str]] = {
    ".txt": load_text,
    ".md": load_text,
    ".html": load_html,
    ".htm": load_html,
    ".pdf": load_pdf,
    ".docx": load_docx,
}


def supported(path: Path) -> bool:
    return path.suffix.lower() in LOADERS


def load(path: Path) -> str:
    """Read a file into text, or raise LoaderError with a message a user can act on."""
    loader = LOADERS.get(path.suffix.lower())
    if loader is None:
        raise LoaderError(
            f"{path.name}: unsupported file type {path.suffix or '(none)'}; "
            f"supported: {', '.join(sorted(LOADERS))}"
        )
    if not path.is_file():
        raise LoaderError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise LoaderError(f"{path.name}: the file is empty")
    text = loader(path)
    if not text.strip():
        raise LoaderError(f"{path.name}: no text could be extracted")
    return text
