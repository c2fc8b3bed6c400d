import pytest

from qa_app.ingest.loaders import LoaderError, load


def _pdf_with_text(text: str) -> bytes:
    """A minimal one-page PDF whose content stream shows ``text`` (ASCII)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def test_text_in_utf8_and_gbk(tmp_path):
    (tmp_path / "a.txt").write_text("海淀区报告。", encoding="utf-8")
    (tmp_path / "b.txt").write_bytes("海淀区报告。".encode("gbk"))
    assert load(tmp_path / "a.txt").strip() == "海淀区报告。"
    assert load(tmp_path / "b.txt").strip() == "海淀区报告。"


def test_html_drops_scripts_and_keeps_table_cells(tmp_path):
    (tmp_path / "p.html").write_text(
        "<html><head><script>var x=1;</script><style>p{}</style></head><body><nav>首页</nav>"
        "<p>地区生产总值增长6%。</p><table><tr><th>街道</th><th>地址</th></tr><tr><td>八里庄</td><td>华光</td></tr></table></body></html>",
        encoding="utf-8",
    )
    text = load(tmp_path / "p.html")
    assert "地区生产总值增长6%。" in text and "var x" not in text and "首页" not in text
    assert "八里庄 |" in text and "华光 |" in text


def test_docx_paragraphs_and_tables(tmp_path):
    import docx

    d = docx.Document()
    d.add_paragraph("第一章 总则")
    d.add_paragraph("全区常住人口控制在312.6万人以内。")
    t = d.add_table(rows=1, cols=2)
    t.rows[0].cells[0].text, t.rows[0].cells[1].text = "指标", "目标"
    d.save(tmp_path / "r.docx")
    text = load(tmp_path / "r.docx")
    assert "全区常住人口控制在312.6万人以内。" in text and "指标 |" in text


def test_pdf_text(tmp_path):
    (tmp_path / "r.pdf").write_bytes(_pdf_with_text("GDP grew 6 percent in 2023."))
    assert "GDP grew 6 percent in 2023." in load(tmp_path / "r.pdf")


@pytest.mark.parametrize(
    "name, data, message",
    [
        ("empty.txt", b"", "empty"),
        ("bin.txt", b"\x00\x01\x02binary", "binary"),
        ("broken.pdf", b"%PDF-1.4 this is not really a pdf", "PDF"),
        ("broken.docx", b"PK\x03\x04 not a zip", "docx"),
        ("image.png", b"\x89PNG\r\n", "unsupported"),
    ],
)
def test_bad_files_raise_clear_errors(tmp_path, name, data, message):
    (tmp_path / name).write_bytes(data)
    with pytest.raises(LoaderError, match=message):
        load(tmp_path / name)
