"""Document loaders: one function per file type, chosen by suffix.

Each loader turns a file into plain text with one paragraph (or table cell) per line.
Adding a type is one function plus one line in ``LOADERS``.

A file is also bounded by what it becomes, not only by its bytes (``Limits``): a 300 KB .docx can
unpack to 300 MB of XML, a PDF's streams can inflate a thousandfold, a text file can hold millions
of characters. Packages and streams are measured before a parser reads them, and text is counted
as it is extracted, so a file over a limit costs a bounded amount of work to refuse.
"""
from __future__ import annotations

import codecs
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

MIB = 1024 * 1024


class LoaderError(ValueError):
    """A file that cannot be read as a document; the message says why."""


class TooLarge(LoaderError):
    """A readable file refused for what it would become (unpacked bytes, characters, chunks):
    a request too large rather than a bad file, should a caller want to tell them apart."""


# Cleaning only strips layout (blank lines, page numbers, running heads: 0–2% of the bundled and
# provincial reports), so text over this multiple of the cap before cleaning is refused without
# paying for cleaning and chunking it; the exact cap is applied to the clean text (pipeline.prepare).
RAW_CHARS_MARGIN = 2
# Any encoding read here spends at most 4 bytes on a character (UTF-8, GB18030, UTF-16), so a text
# file over 4 bytes per allowed character holds too many characters without being read.
MAX_BYTES_PER_CHAR = 4
# Small parts compress far beyond any sane ratio (an XML part of repeated empty tags): only parts
# that unpack to more than this are held to the ratio.
RATIO_FLOOR_BYTES = MIB
# A Word package has tens of parts, a few hundred with many images; a zip of many thousands of
# parts is built to make the reader work, not a document.
MAX_PACKAGE_PARTS = 10_000
# A page of a report carries 500–2,000 characters; a PDF with more pages than the character cap
# allows at this many per page is not a document that could fit, and each page costs parsing.
MIN_CHARS_PER_PAGE = 200
_INFLATE_STEP = 64 * 1024


@dataclass(frozen=True)
class Limits:
    """What one file may become; from the settings ``max_decompressed_mb``, ``max_compression_ratio``
    and ``max_document_chars``."""

    decompressed_bytes: int
    compression_ratio: int
    document_chars: int

    @classmethod
    def of(cls, settings) -> Limits:
        return cls(settings.max_decompressed_mb * MIB, settings.max_compression_ratio, settings.max_document_chars)

    @property
    def raw_chars(self) -> int:
        return RAW_CHARS_MARGIN * self.document_chars

    @property
    def pdf_pages(self) -> int:
        return max(1, self.document_chars // MIN_CHARS_PER_PAGE)


def _default_limits() -> Limits:
    from qa_app.config import get_settings

    return Limits.of(get_settings())


def _mb(n: int) -> str:
    return f"{n / MIB:,.1f} MB"


def too_many_chars(name: str, chars: int, limit: int) -> TooLarge:
    return TooLarge(
        f"{name}: 文件过大：清洗后 {chars:,} 字，上限 {limit:,} 字。"
        f"(The document has {chars:,} characters of text after cleaning; the limit is {limit:,}: QA_MAX_DOCUMENT_CHARS.)"
    )


def too_many_chunks(name: str, chunks: int, limit: int) -> TooLarge:
    return TooLarge(
        f"{name}: 文件过大：切分后 {chunks:,} 个片段，上限 {limit:,} 个。"
        f"(The document makes {chunks:,} chunks; the limit is {limit:,}: QA_MAX_DOCUMENT_CHUNKS.)"
    )


def _too_much_raw_text(name: str, chars: int, limits: Limits, where: str = "", where_en: str = "") -> TooLarge:
    return TooLarge(
        f"{name}: 文件过大：{where}清洗前已有 {chars:,} 字，超过上限 {limits.document_chars:,} 字的 "
        f"{RAW_CHARS_MARGIN} 倍。(The file has {chars:,} characters of text before cleaning{where_en}, more than "
        f"{RAW_CHARS_MARGIN} times the limit of {limits.document_chars:,}: QA_MAX_DOCUMENT_CHARS.)"
    )


def _too_much_unpacked(name: str, total: int, limits: Limits, what: str, what_en: str, counted: bool = False) -> TooLarge:
    """``counted``: ``total`` is where counting stopped once past the limit, not the whole size."""
    zh, en = ("至少", "at least ") if counted else ("共", "")
    return TooLarge(
        f"{name}: 文件过大：{what}解压后{zh} {total:,} 字节（{_mb(total)}），上限 {_mb(limits.decompressed_bytes)}。"
        f"({what_en} unpack to {en}{total:,} bytes ({_mb(total)}); the limit is {_mb(limits.decompressed_bytes)}: "
        "QA_MAX_DECOMPRESSED_MB.)"
    )


def _ratio_check(name: str, part: str, unpacked: int, packed: int, limits: Limits) -> None:
    ratio = unpacked / max(packed, 1)
    if unpacked > RATIO_FLOOR_BYTES and ratio > limits.compression_ratio:
        raise TooLarge(
            f"{name}: 压缩比异常：{part} 由 {packed:,} 字节解压为 {unpacked:,} 字节，压缩比 {ratio:,.0f}:1，"
            f"上限 {limits.compression_ratio:,}:1。(The part {part} unpacks from {packed:,} to {unpacked:,} bytes, "
            f"a ratio of {ratio:,.0f}:1; the limit is {limits.compression_ratio:,}:1: QA_MAX_COMPRESSION_RATIO.)"
        )


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


def load_text(path: Path, limits: Limits) -> str:
    size = path.stat().st_size
    if size > MAX_BYTES_PER_CHAR * limits.raw_chars:
        least = -(-size // MAX_BYTES_PER_CHAR)
        raise TooLarge(
            f"{path.name}: 文件过大：{size:,} 字节的文本至少有 {least:,} 字，超过上限 {limits.document_chars:,} 字的 "
            f"{RAW_CHARS_MARGIN} 倍。(The file's {size:,} bytes hold at least {least:,} characters, more than "
            f"{RAW_CHARS_MARGIN} times the limit of {limits.document_chars:,}: QA_MAX_DOCUMENT_CHARS.)"
        )
    return _decode(path.read_bytes(), path.name)


def load_html(path: Path, limits: Limits) -> str:
    """The main text of a web page: trafilatura's boilerplate removal (menus, share bars, related
    links and footers go), tables kept as one "cell |" line per cell; when trafilatura is missing
    or finds no main text, the whole page through BeautifulSoup."""
    size = path.stat().st_size
    # Markup outweighs the text many times over, so the character cap says little about the bytes
    # of a page; a page is its own unpacked form, held to the bound on what any file unpacks to.
    if size > limits.decompressed_bytes:
        raise TooLarge(
            f"{path.name}: 文件过大：网页 {size:,} 字节（{_mb(size)}），上限 {_mb(limits.decompressed_bytes)}。"
            f"(The page is {size:,} bytes ({_mb(size)}); the limit is {_mb(limits.decompressed_bytes)}: "
            "QA_MAX_DECOMPRESSED_MB.)"
        )
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


def load_pdf(path: Path, limits: Limits) -> str:
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
    pages: list[str] = []
    try:
        count = len(reader.pages)
        if count > limits.pdf_pages:
            raise TooLarge(
                f"{path.name}: 文件过大：{count:,} 页，上限 {limits.pdf_pages:,} 页。(The PDF has {count:,} pages; the "
                f"limit is {limits.pdf_pages:,}, one page per {MIN_CHARS_PER_PAGE} characters of QA_MAX_DOCUMENT_CHARS.)"
            )
        streams = _PdfStreams(path.name, limits)
        chars = 0
        for number, page in enumerate(reader.pages, 1):
            streams.measure(page)
            text = page.extract_text() or ""
            chars += len(text) + 1
            if chars > limits.raw_chars:  # stop here: the pages left would only add to it
                raise _too_much_raw_text(path.name, chars, limits, f"读到第 {number:,} 页（共 {count:,} 页）时",
                                         f" by page {number:,} of {count:,}")
            pages.append(text)
    except LoaderError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise LoaderError(f"{path.name}: the PDF's pages cannot be read, damaged or truncated ({exc})") from exc
    return "\n".join(pages)


class _PdfStreams:
    """What a PDF's pages unpack to, measured stream by stream before pypdf decodes them: their
    content streams and the form XObjects they draw, which text extraction parses too. A Flate
    stream is inflated once into nothing to count it; other filters are rare in text and pypdf caps
    each of their outputs itself."""

    def __init__(self, name: str, limits: Limits):
        self.name, self.limits = name, limits
        self.total = 0
        self.seen: set[int] = set()

    def measure(self, page) -> None:
        self._contents(page.get("/Contents"))
        self._resources(page.get("/Resources"))

    def _contents(self, ref) -> None:
        obj = _resolve(ref)
        if isinstance(obj, list):
            for item in obj:
                self._contents(item)
        elif obj is not None and hasattr(obj, "get_data") and self._first_time(ref, obj):
            self._count(obj)

    def _resources(self, ref) -> None:
        resources = _resolve(ref)
        xobjects = _resolve(resources.get("/XObject")) if hasattr(resources, "get") else None
        if not hasattr(xobjects, "values"):
            return
        for xref in xobjects.values():
            xobject = _resolve(xref)
            if hasattr(xobject, "get") and xobject.get("/Subtype") == "/Form" and self._first_time(xref, xobject):
                self._count(xobject)
                self._resources(xobject.get("/Resources"))

    def _first_time(self, ref, obj) -> bool:
        key = getattr(ref, "idnum", None)
        key = ("ref", key) if key is not None else ("obj", id(obj))
        if key in self.seen:
            return False
        self.seen.add(key)
        return True

    def _count(self, stream) -> None:
        raw = getattr(stream, "_data", b"") or b""
        filters = _resolve(stream.get("/Filter"))
        first = filters[0] if isinstance(filters, list) and filters else filters
        room = self.limits.decompressed_bytes - self.total
        size = _inflated_size(raw, room) if first in ("/FlateDecode", "/Fl") else len(raw)
        self.total += size
        if self.total > self.limits.decompressed_bytes:
            raise _too_much_unpacked(self.name, self.total, self.limits, "页面内容流", "The pages' content streams",
                                     counted=True)
        _ratio_check(self.name, "a content stream", size, len(raw), self.limits)


def _resolve(obj):
    return obj.get_object() if hasattr(obj, "get_object") else obj


def _inflated_size(raw: bytes, cap: int) -> int:
    """How many bytes a zlib stream inflates to, counting no further than just past ``cap``;
    ``len(raw)`` when it is not a zlib stream (pypdf's own fallbacks then decide)."""
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 32)  # zlib or gzip header
    try:
        return _drain(inflater, raw, cap)
    except zlib.error:
        return len(raw)


def _drain(inflater, data: bytes, cap: int, counted: int = 0) -> int:
    """Feed ``data`` to ``inflater`` in bounded steps, returning the running count of output bytes,
    which stops (and is returned) as soon as it passes ``cap``."""
    while True:
        out = len(inflater.decompress(data, _INFLATE_STEP))
        counted += out
        if counted > cap:
            return counted
        data = inflater.unconsumed_tail
        if inflater.eof or (not data and out < _INFLATE_STEP):
            return counted


def _unlock_pdf(reader, name: str) -> None:
    """Open a PDF encrypted without a user password (common: owner-only restrictions)."""
    try:
        opened = reader.decrypt("")
    except Exception as exc:  # noqa: BLE001 - e.g. AES without the optional crypto library
        raise LoaderError(f"{name}: the PDF is encrypted and cannot be opened ({exc})") from exc
    if not opened:
        raise LoaderError(f"{name}: the PDF is encrypted with a password; save an unprotected copy to index it")


def check_package(path: Path, limits: Limits) -> None:
    """Refuse a zip package (.docx) whose parts would unpack to more than the limits allow, before
    any parser opens it.

    The sizes the zip declares are checked first (its central directory, nothing inflated); then
    every part is inflated once into nothing, counting, because the declared size can lie: zipfile
    only cuts its output to it, after inflating the whole part into memory. A package that is not
    a readable zip is left for the parser to report in its own words."""
    try:
        with zipfile.ZipFile(path) as package:
            parts = package.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        return
    name = path.name
    if len(parts) > MAX_PACKAGE_PARTS:
        raise TooLarge(f"{name}: 文件异常：包含 {len(parts):,} 个部件，上限 {MAX_PACKAGE_PARTS:,} 个。"
                       f"(The package has {len(parts):,} parts; the limit is {MAX_PACKAGE_PARTS:,}.)")
    declared = sum(p.file_size for p in parts)
    if declared > limits.decompressed_bytes:
        raise _too_much_unpacked(name, declared, limits, "各部件", "Its parts")
    for part in parts:
        _ratio_check(name, part.filename, part.file_size, part.compress_size, limits)
    with path.open("rb") as f:
        for part in parts:
            _check_part(f, part, name)


_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # the zip format's local file header


def _check_part(f, part: zipfile.ZipInfo, name: str) -> None:
    if part.flag_bits & 0x1:
        raise LoaderError(f"{name}: 文件已加密，无法读取。(The package's part {part.filename} is encrypted; "
                          "save an unprotected copy to index it.)")
    if part.compress_type == zipfile.ZIP_STORED:
        return  # read as stored: never more than its packed bytes
    if part.compress_type != zipfile.ZIP_DEFLATED:
        # zipfile inflates bzip2 and LZMA parts in one unbounded call; Word writes neither.
        raise LoaderError(f"{name}: 不支持的压缩方式（{part.filename}）。(The part {part.filename} uses "
                          f"compression method {part.compress_type}; Word documents use deflate.)")
    f.seek(part.header_offset)
    header = f.read(_LOCAL_HEADER.size)
    if len(header) < _LOCAL_HEADER.size or header[:4] != b"PK\x03\x04":
        return  # damaged: the parser reports it
    fields = _LOCAL_HEADER.unpack(header)
    f.seek(part.header_offset + _LOCAL_HEADER.size + fields[-2] + fields[-1])
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    left, counted = part.compress_size, 0
    try:
        # The same packed bytes zipfile would inflate, so their output bounds what it allocates.
        while left > 0 and not inflater.eof:
            block = f.read(min(left, _INFLATE_STEP))
            if not block:
                break
            left -= len(block)
            counted = _drain(inflater, block, part.file_size, counted)
            if counted > part.file_size:
                raise TooLarge(
                    f"{name}: 文件异常：部件 {part.filename} 声明解压后 {part.file_size:,} 字节，实际更多。"
                    f"(The part {part.filename} declares {part.file_size:,} bytes unpacked but inflates to more: "
                    "a forged or damaged package.)"
                )
    except zlib.error:
        return  # damaged: the parser reports it


_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_OFFICE_DOCUMENT = "/officeDocument"


def _scan_main_text(path: Path, limits: Limits) -> None:
    """Count the main document's text as a stream (each run's characters, a line per paragraph),
    refusing it once past the cap before cleaning: python-docx builds the whole XML tree first,
    which for 90 MB of XML within the unpacked-size and ratio limits took 1.5 GB and minutes
    before the text could be counted. Reads only a package ``check_package`` passed; anything it
    cannot read is left for python-docx to report."""
    from lxml import etree

    def parser_safe(data: bytes):
        return etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))

    try:
        with zipfile.ZipFile(path) as package:
            main = "word/document.xml"
            if "_rels/.rels" in package.namelist():
                for rel in parser_safe(package.read("_rels/.rels")):
                    if str(rel.get("Type", "")).endswith(_OFFICE_DOCUMENT) and rel.get("Target"):
                        main = rel.get("Target").lstrip("/")
            with package.open(main) as stream:
                chars = 0
                events = etree.iterparse(stream, events=("end",), tag=(f"{_W}t", f"{_W}p"),
                                         resolve_entities=False, no_network=True)
                for _, element in events:
                    chars += len(element.text or "") if element.tag == f"{_W}t" else 1
                    if chars > limits.raw_chars:
                        raise _too_much_raw_text(path.name, chars, limits, "正文",
                                                 " in its main part (counting stopped there)")
                    if element.tag == f"{_W}p":  # done with it: keep the tree as small as one paragraph
                        element.clear()
                        while element.getprevious() is not None:
                            del element.getparent()[0]
    except LoaderError:
        raise
    except Exception:  # noqa: BLE001 - not readable as a Word package: python-docx says how
        return


def load_docx(path: Path, limits: Limits) -> str:
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    check_package(path, limits)
    _scan_main_text(path, limits)
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


LOADERS: dict[str, Callable[[Path, Limits], str]] = {
    ".txt": load_text,
    ".md": load_text,
    ".html": load_html,
    ".htm": load_html,
    ".pdf": load_pdf,
    ".docx": load_docx,
}


def supported(path: Path) -> bool:
    return path.suffix.lower() in LOADERS


def load(path: Path, limits: Limits | None = None) -> str:
    """Read a file into text, or raise LoaderError with a message a user can act on (TooLarge when
    it would become more than ``limits`` allow; the settings' limits when none are given)."""
    limits = limits or _default_limits()
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
    text = loader(path, limits)
    if len(text) > limits.raw_chars:
        raise _too_much_raw_text(path.name, len(text), limits)
    if not text.strip():
        raise LoaderError(f"{path.name}: no text could be extracted")
    return text
