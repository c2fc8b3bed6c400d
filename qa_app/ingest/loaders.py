"""Document loaders: one function per file type, chosen by suffix.

Each loader turns a file into plain text with one paragraph (or table cell) per line.
Adding a type is one function plus one line in ``LOADERS``.
"""
from __future__ import annotations

import codecs
import re
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
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(_decode(path.read_bytes(), path.name), "html.parser")
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
