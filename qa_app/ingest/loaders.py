"""Document loaders: one function per file type, chosen by suffix.

Each loader turns a file into plain text with one paragraph (or table cell) per line.
Adding a type is one function plus one line in ``LOADERS``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable


class LoaderError(ValueError):
    """A file that cannot be read as a document; the message says why."""


def _decode(data: bytes, name: str) -> str:
    if b"\x00" in data[:4096]:
        raise LoaderError(f"{name}: looks like a binary file, not text")
    for enc in ("utf-8-sig", "gb18030", "big5"):
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            continue
    raise LoaderError(f"{name}: not valid UTF-8, GB18030 or Big5 text")


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
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted:
            try:
                if not reader.decrypt(""):
                    raise LoaderError(f"{path.name}: the PDF is encrypted with a password")
            except LoaderError:
                raise
            except Exception as exc:
                raise LoaderError(f"{path.name}: the PDF is encrypted and cannot be opened ({exc})")
        pages = [page.extract_text() or "" for page in reader.pages]
    except LoaderError:
        raise
    except (PdfReadError, ValueError, KeyError, OSError) as exc:
        raise LoaderError(f"{path.name}: not a readable PDF ({exc})") from exc
    return "\n".join(pages)


def load_docx(path: Path) -> str:
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(str(path))
    except (PackageNotFoundError, KeyError, ValueError, OSError) as exc:
        raise LoaderError(f"{path.name}: not a readable .docx file ({exc})") from exc
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
