"""Limits on what a file becomes, not only on its bytes: a package's parts are measured (declared
and actual unpacked sizes, compression ratios) before a parser opens it, a PDF's streams before
pypdf decodes them and its text page by page, and the clean text and its chunks are capped before
anything is embedded or the writer lock taken. Each refusal names the numbers and leaves the
index, and uploads/, as they were.

The hostile files are built here. Refusals are shown to be cheap by the parser never being called
(python-docx, pypdf's text extraction) and the embedding model never being asked, not by timing.
"""
from __future__ import annotations

import io
import struct
import zipfile
import zlib
from functools import lru_cache
from pathlib import Path

import httpx
import pytest
from langchain_core.embeddings import Embeddings

from qa_app.config import Settings
from qa_app.index.embeddings import make_embeddings
from qa_app.index.store import Index
from qa_app.ingest.clean import clean_report
from qa_app.ingest.loaders import Limits, LoaderError, TooLarge, load
from qa_app.ingest.pipeline import ingest, prepare

from .pdfs import pdf, text_page
from .test_api import error_message, serve

MIB = 1024 * 1024
W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
PARAGRAPH = "<w:p><w:r><w:t>全区地区生产总值增长6%。</w:t></w:r></w:p>"
REPORT = "海淀区2023年经济运行情况报告\n一、总体情况\n2023年全区地区生产总值增长6%，居民人均可支配收入增长5.1%。\n"


def long_report(lines: int) -> str:
    # Lines that differ: cleaning drops a line repeated many times as a running head.
    return REPORT + "".join(f"第{i}项：全年新建口袋公园{i}座，新增绿道{i * 3}公里。\n" for i in range(1, lines + 1))


# --- building hostile files ------------------------------------------------------------------------
@lru_cache(maxsize=1)
def skeleton() -> bytes:
    """An empty Word document as python-docx saves it."""
    import docx

    out = io.BytesIO()
    docx.Document().save(out)
    return out.getvalue()


def docx_with_body(path: Path, paragraphs: int, paragraph: str = PARAGRAPH) -> Path:
    """A real Word package (python-docx's own skeleton) whose document.xml holds ``paragraphs``
    copies of ``paragraph``, streamed into the zip so the test never holds the XML in memory."""
    with zipfile.ZipFile(io.BytesIO(skeleton())) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            if info.filename != "word/document.xml":
                out.writestr(info, src.read(info))
                continue
            info = zipfile.ZipInfo("word/document.xml")
            info.compress_type = zipfile.ZIP_DEFLATED
            with out.open(info, "w") as part:
                part.write(f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<w:document xmlns:w="{W_NS}"><w:body>'.encode())
                block = (paragraph * 4096).encode()
                for _ in range(paragraphs // 4096):
                    part.write(block)
                part.write((paragraph * (paragraphs % 4096)).encode())
                part.write(b"</w:body></w:document>")
    return path


def lie_about_size(path: Path, member: str, declared: int) -> None:
    """Rewrite ``member``'s sizes in the zip's local and central headers to ``declared`` bytes,
    with the CRC of its first ``declared`` bytes: zipfile's own checks then pass, reading it stops
    at ``declared`` bytes, yet a whole-member read inflates everything first."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(member)
        with z.open(info) as f:
            crc = zlib.crc32(f.read(declared))
    local = info.header_offset
    assert data[local:local + 4] == b"PK\x03\x04"
    struct.pack_into("<L", data, local + 14, crc)
    struct.pack_into("<L", data, local + 22, declared)
    central = z.start_dir
    while True:
        assert data[central:central + 4] == b"PK\x01\x02"
        name_len, extra, comment = struct.unpack_from("<3H", data, central + 28)
        if data[central + 46:central + 46 + name_len].decode() == member:
            break
        central += 46 + name_len + extra + comment
    struct.pack_into("<L", data, central + 16, crc)
    struct.pack_into("<L", data, central + 24, declared)
    path.write_bytes(bytes(data))


# --- fixtures: the parsers and the embedder, watched -------------------------------------------------
@pytest.fixture()
def no_docx_parser(monkeypatch):
    import docx

    skeleton()  # built before python-docx is fenced off

    def refuse(*args, **kwargs):
        raise AssertionError("python-docx was asked to parse a package that should have been refused first")

    monkeypatch.setattr(docx, "Document", refuse)


@pytest.fixture()
def pdf_pages_read(monkeypatch) -> list[int]:
    """Counts pypdf text extractions (one per page read)."""
    from pypdf import PageObject

    calls: list[int] = []
    real = PageObject.extract_text

    def counted(self, *args, **kwargs):
        calls.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(PageObject, "extract_text", counted)
    return calls


class CountingEmbeddings(Embeddings):
    def __init__(self, inner: Embeddings):
        self.inner, self.texts = inner, 0
        self.name = getattr(inner, "name", type(inner).__name__)

    def embed_documents(self, texts):
        self.texts += len(texts)
        return self.inner.embed_documents(texts)

    def embed_query(self, text):
        return self.inner.embed_query(text)


@pytest.fixture(scope="module")
def model():
    return make_embeddings(Settings())


def limited(tmp_path: Path, model, **limits) -> tuple[Index, CountingEmbeddings]:
    embeddings = CountingEmbeddings(model)
    return Index(Settings(data_dir=tmp_path / "data", **limits), embeddings=embeddings), embeddings


def refused_by_ingest(tmp_path: Path, model, path: Path, **limits) -> str:
    """Ingest ``path`` alone into a new index: it must fail, leaving the index empty and the model unasked."""
    index, embeddings = limited(tmp_path, model, **limits)
    report = ingest([path], index, progress=False)
    assert not report.added and not report.updated and list(report.failed) == [str(path)], report.failed
    assert embeddings.texts == 0, "the file was embedded before it was refused"
    assert index.catalog.version() == 0 and index.catalog.count_chunks() == 0 and not index.documents()
    assert index.interrupted_write() is None
    return report.failed[str(path)]


# --- packages: sizes and ratios before parsing -------------------------------------------------------
def test_a_docx_bomb_is_refused_by_its_ratio_before_python_docx_reads_it(tmp_path, model, no_docx_parser):
    bomb = docx_with_body(tmp_path / "bomb.docx", 400_000)  # ~20 MB of XML in a ~60 KB file
    assert bomb.stat().st_size < MIB
    message = refused_by_ingest(tmp_path, model, bomb)
    unpacked = zipfile.ZipFile(bomb).getinfo("word/document.xml").file_size
    assert message.startswith("bomb.docx: 压缩比异常：word/document.xml")
    assert f"{unpacked:,} bytes" in message and "the limit is 200:1: QA_MAX_COMPRESSION_RATIO" in message


def test_a_docx_over_the_unpacked_total_is_refused_by_its_declared_sizes(tmp_path, model, no_docx_parser):
    bomb = docx_with_body(tmp_path / "big.docx", 120_000)  # ~6 MB of XML
    total = sum(i.file_size for i in zipfile.ZipFile(bomb).infolist())
    message = refused_by_ingest(tmp_path, model, bomb, max_decompressed_mb=5)
    assert message.startswith(f"big.docx: 文件过大：各部件解压后共 {total:,} 字节")
    assert f"unpack to {total:,} bytes" in message and "the limit is 5.0 MB: QA_MAX_DECOMPRESSED_MB" in message


def test_a_part_that_lies_about_its_size_is_refused_before_it_is_read_whole(tmp_path, model, no_docx_parser):
    forged = docx_with_body(tmp_path / "forged.docx", 400_000)
    lie_about_size(forged, "word/document.xml", 4096)
    info = zipfile.ZipFile(forged).getinfo("word/document.xml")
    assert info.file_size == 4096 and info.file_size / info.compress_size < 1  # passes every declared check
    with zipfile.ZipFile(forged).open(info) as part:  # and zipfile, reading it in bounded steps, finds nothing wrong
        assert sum(len(block) for block in iter(lambda: part.read(1024), b"")) == 4096
    message = refused_by_ingest(tmp_path, model, forged)
    assert message == ("forged.docx: 文件异常：部件 word/document.xml 声明解压后 4,096 字节，实际更多。"
                       "(The part word/document.xml declares 4,096 bytes unpacked but inflates to more: "
                       "a forged or damaged package.)")


def test_a_docx_with_too_much_text_is_refused_while_streaming_it_not_after_parsing(tmp_path, model, no_docx_parser):
    # Within the unpacked-size and ratio limits, but 13 characters a paragraph past 2 x 1,000.
    path = docx_with_body(tmp_path / "wordy.docx", 300, "<w:p><w:r><w:t>全区地区生产总值增长6%。</w:t></w:r></w:p>")
    message = refused_by_ingest(tmp_path, model, path, max_document_chars=1_000)
    assert message == ("wordy.docx: 文件过大：正文清洗前已有 2,001 字，超过上限 1,000 字的 2 倍。(The file has 2,001 "
                       "characters of text before cleaning in its main part (counting stopped there), more than 2 times "
                       "the limit of 1,000: QA_MAX_DOCUMENT_CHARS.)")


def test_packages_within_the_limits_still_read(tmp_path):
    import docx

    assert "全区地区生产总值增长6%。" in load(docx_with_body(tmp_path / "small.docx", 10))  # the bombs' skeleton parses
    d = docx.Document()
    for i in range(200):
        d.add_paragraph(f"第{i}条 全区地区生产总值增长6%。" * 3)
    d.save(tmp_path / "fine.docx")
    assert "全区地区生产总值增长6%。" in load(tmp_path / "fine.docx")


# --- PDFs: pages, streams and text, bounded while reading -------------------------------------------
def test_a_pdf_with_absurdly_many_pages_is_refused_before_any_page_is_read(tmp_path, pdf_pages_read):
    path = tmp_path / "pages.pdf"
    path.write_bytes(pdf([text_page(f"page {i}") for i in range(12)]))
    limits = Limits(100 * MIB, 200, 2_000)  # 10 pages at 200 characters a page
    with pytest.raises(TooLarge) as refused:
        load(path, limits)
    assert str(refused.value).startswith("pages.pdf: 文件过大：12 页，上限 10 页。(The PDF has 12 pages; the limit is 10")
    assert pdf_pages_read == []


def test_a_pdf_stream_bomb_is_refused_before_pypdf_decodes_it(tmp_path, pdf_pages_read):
    path = tmp_path / "stream.pdf"
    path.write_bytes(pdf([b" " * (20 * MIB)], flate=True))  # 20 MB of nothing in a ~20 KB stream
    assert path.stat().st_size < 100_000
    with pytest.raises(TooLarge, match=r"压缩比异常：a content stream 由 [\d,]+ 字节解压为 20,971,520 字节"):
        load(path, Limits(100 * MIB, 200, 1_000_000))
    with pytest.raises(TooLarge, match=r"页面内容流解压后至少 [\d,]+ 字节.*the limit is 5.0 MB: QA_MAX_DECOMPRESSED_MB"):
        load(path, Limits(5 * MIB, 100_000, 1_000_000))
    assert pdf_pages_read == []


def test_a_pdf_over_the_character_cap_stops_being_read_when_it_passes_it(tmp_path, pdf_pages_read):
    path = tmp_path / "long.pdf"
    line = "GDP grew 6 percent in 2023 and the district built 12 new pocket parks. " * 14  # 994 characters
    path.write_bytes(pdf([text_page(line) for _ in range(20)]))
    # 8,000 characters before cleaning: passed on page 9 (995 a page with its line break).
    with pytest.raises(TooLarge, match=r"long\.pdf: 文件过大：读到第 9 页（共 20 页）时清洗前已有 8,955 字.* by page 9 of 20"):
        load(path, Limits(100 * MIB, 200, 4_000))
    assert len(pdf_pages_read) == 9
    assert "pocket parks" in load(path, Limits(100 * MIB, 200, 10_000))  # the same file, within its limits


# --- clean text and chunks: capped in prepare, before embedding and the lock -------------------------
def test_text_over_the_character_cap_is_refused_with_the_numbers(tmp_path, model):
    path = tmp_path / "long.txt"
    path.write_text(long_report(120), encoding="utf-8")
    chars = len(clean_report(load(path)))
    assert 2_000 < chars < 4_000  # over the cap, yet under twice it: refused after cleaning, not before
    message = refused_by_ingest(tmp_path, model, path, max_document_chars=2_000)
    assert message == (f"long.txt: 文件过大：清洗后 {chars:,} 字，上限 2,000 字。(The document has {chars:,} characters "
                       "of text after cleaning; the limit is 2,000: QA_MAX_DOCUMENT_CHARS.)")


def test_text_far_over_the_cap_is_refused_before_it_is_cleaned_or_even_read(tmp_path, monkeypatch):
    from qa_app.ingest import pipeline

    monkeypatch.setattr(pipeline, "clean_report", lambda text: pytest.fail("cleaned a file already known too long"))
    settings = Settings(data_dir=tmp_path / "data", max_document_chars=1_000)
    decoded = tmp_path / "decoded.txt"
    decoded.write_text("增长" * 1_250, encoding="utf-8")  # 2,500 characters in 7,500 bytes
    with pytest.raises(TooLarge, match="清洗前已有 2,500 字，超过上限 1,000 字的 2 倍"):
        prepare(decoded, settings, "0")
    unread = tmp_path / "unread.txt"
    unread.write_bytes(b"a" * 8_001)  # over 4 bytes for each of 2,000 characters: never read
    with monkeypatch.context() as m:
        m.setattr(Path, "read_bytes", lambda self: pytest.fail("read a file already known too long"))
        with pytest.raises(TooLarge, match=r"unread\.txt: 文件过大：8,001 字节的文本至少有 2,001 字"):
            prepare(unread, settings, "0")


def test_a_document_over_the_chunk_cap_is_refused_with_the_numbers(tmp_path, model):
    path = tmp_path / "chunky.txt"
    sections = "".join(f"（{i}）第{i}项工作\n第{i}项：新建口袋公园{i}座，新增绿道{i * 3}公里。\n" for i in range(1, 40))
    path.write_text(REPORT + sections, encoding="utf-8")
    chunks = len(prepare(path, Settings(data_dir=tmp_path / "probe"), "0").chunks)
    assert chunks > 30
    message = refused_by_ingest(tmp_path, model, path, max_document_chunks=30)
    assert message == (f"chunky.txt: 文件过大：切分后 {chunks:,} 个片段，上限 30 个。"
                       f"(The document makes {chunks:,} chunks; the limit is 30: QA_MAX_DOCUMENT_CHUNKS.)")


def test_a_refused_new_version_keeps_the_indexed_one_and_the_rest_of_the_batch_goes_in(tmp_path, model):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "report.txt").write_text(REPORT, encoding="utf-8")
    index, _ = limited(tmp_path, model, max_document_chars=2_000)
    assert ingest([docs], index, progress=False).added == ["report.txt"]
    before = sorted(index.catalog.chunk_ids("report.txt"))
    (docs / "report.txt").write_text(long_report(200), encoding="utf-8")
    (docs / "other.txt").write_text(REPORT.replace("海淀区", "朝阳区"), encoding="utf-8")
    report = ingest([docs], index, progress=False)
    assert report.added == ["other.txt"]
    assert "上限 2,000 字" in report.failed[str(docs / "report.txt")]
    assert report.failed[str(docs / "report.txt")].endswith("; the version indexed earlier is kept")
    assert sorted(index.catalog.chunk_ids("report.txt")) == before


def test_the_limits_are_the_settings(tmp_path):
    settings = Settings(data_dir=tmp_path, max_decompressed_mb=7, max_compression_ratio=50, max_document_chars=4_000)
    limits = Limits.of(settings)
    assert (limits.decompressed_bytes, limits.compression_ratio, limits.document_chars) == (7 * MIB, 50, 4_000)
    assert (limits.raw_chars, limits.pdf_pages) == (8_000, 20)
    assert issubclass(TooLarge, LoaderError)  # every caller that handles a bad file handles these


# --- through the API: refused before anything is saved -----------------------------------------------
@pytest.fixture(scope="module")
def capped_api(tmp_path_factory, model):
    from qa_app.answer import Assistant
    from qa_app.api import create_app

    settings = Settings(data_dir=tmp_path_factory.mktemp("capped_api") / "data", max_upload_mb=1, max_document_chars=2_000)
    assistant = Assistant(settings, index=Index(settings, embeddings=model))
    with serve(create_app(settings, assistant, with_ui=False)) as url:
        yield url, assistant


def test_uploads_over_the_limits_are_refused_and_nothing_is_saved(capped_api, tmp_path):
    url, assistant = capped_api
    uploads = Path(assistant.index.data_dir) / "uploads"
    bomb = docx_with_body(tmp_path / "bomb.docx", 400_000)
    long_text = long_report(120).encode("utf-8")
    cases = [
        ("bomb.docx", bomb.read_bytes(), "压缩比异常：word/document.xml"),
        ("long.txt", long_text, "上限 2,000 字。(The document has"),
    ]
    for name, content, words in cases:
        r = httpx.post(f"{url}/v1/documents", files={"files": (name, content)}, timeout=120)
        assert r.status_code == 413, r.text  # what the file would become is too large
        message = error_message(r)
        assert message.startswith(f"{name}: ") and words in message, message
        assert list(r.json()["failed"]) == [name]
        assert not uploads.exists() or not any(uploads.iterdir())
        assert assistant.index.catalog.version() == 0 and not assistant.index.documents()
    # The same server still takes a file within the limits.
    r = httpx.post(f"{url}/v1/documents", files={"files": ("report.txt", REPORT.encode())}, timeout=120)
    assert r.status_code == 200 and r.json()["added"] == ["report.txt"], r.text
