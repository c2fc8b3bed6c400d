import pytest

from qa_app.ingest.loaders import LoaderError, load

from .pdfs import pdf, text_page


def _pdf_with_text(text: str) -> bytes:
    """A minimal one-page PDF whose content stream shows ``text`` (ASCII)."""
    return pdf([text_page(text)])


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


# --- web pages: boilerplate removal, tables kept as cells ---------------------------------------
from qa_app.ingest import loaders  # noqa: E402
from qa_app.ingest.clean import clean_report  # noqa: E402

from .conftest import seed  # noqa: E402


def _report_page(paragraphs: list[str]) -> str:
    """A provincial-government article page around ``paragraphs``: menus, a breadcrumb, a tool bar,
    a byline, a data table, related links, a QR prompt and a footer."""
    body = "".join(f"<p>{p}</p>" for p in paragraphs[1:])
    return (
        "<html><head><title>政府工作报告_某某省人民政府门户网站</title><script>var tj=1;</script></head><body>"
        "<div class='top'><a href='/'>首页</a> | <a>政务公开</a> | <a>办事服务</a> | <a>互动交流</a> | <a>English</a></div>"
        "<div class='crumb'>当前位置：<a>首页</a> &gt; <a>政务信息</a> &gt; <a>要闻动态</a></div>"
        "<div class='article'>"
        "<div class='tools'><span>下载</span><span>打印</span><span>收藏</span>【字号：<a>加大</a><a>还原</a><a>减小</a>】</div>"
        f"<h1>{paragraphs[0]}</h1><div class='info'><span>来源：某某日报</span> <span>时间：2026-02-11</span></div>"
        f"{body}"
        "<table><tr><th>指标</th><th>目标</th></tr><tr><td>地区生产总值</td><td>增长5%左右</td></tr>"
        "<tr><td>城镇新增就业</td><td>70万人以上</td></tr></table>"
        "<p>责任编辑：王某</p></div>"
        "<div class='related'>相关报道：<ul><li><a href='/a'>图解政府工作报告</a></li><li><a href='/b'>两会特别报道</a></li></ul></div>"
        "<div class='footer'><p>扫一扫在手机打开当前页</p><p>主办：某某省人民政府办公厅 备案号：某ICP备05000000号</p></div>"
        "</body></html>"
    )


def test_html_report_page_keeps_the_report_and_drops_the_page(tmp_path):
    pytest.importorskip("trafilatura")
    raw = seed("001").read_text(encoding="utf-8")
    paragraphs = [ln.strip() for ln in raw.splitlines() if ln.strip()]
    (tmp_path / "r.html").write_text(_report_page(paragraphs), encoding="utf-8")
    text = clean_report(load(tmp_path / "r.html"))
    lines = text.split("\n")
    assert lines[0] == paragraphs[0]  # the title first: metadata takes it from there
    for p in paragraphs:
        if p.endswith("。"):
            assert p in text, p[:40]
    assert "指标 |" in lines and "增长5%左右 |" in lines and "70万人以上 |" in lines
    for chrome in ("首页", "办事服务", "互动交流", "English", "当前位置", "下载", "收藏", "字号", "来源：", "责任编辑", "相关报道",
                   "图解政府工作报告", "扫一扫", "ICP备", "var tj"):
        assert chrome not in text, chrome


def test_html_falls_back_to_the_whole_page_when_no_main_text_is_found(tmp_path, monkeypatch):
    monkeypatch.setattr(loaders, "_html_main_text", lambda html: "")
    (tmp_path / "p.html").write_text(
        "<html><body><nav>首页</nav><div>地区生产总值增长6%。</div><table><tr><td>八里庄</td></tr></table></body></html>",
        encoding="utf-8",
    )
    text = load(tmp_path / "p.html")
    assert "地区生产总值增长6%。" in text and "八里庄 |" in text and "首页" not in text


def test_html_main_text_reads_line_breaks_and_cells(tmp_path):
    pytest.importorskip("trafilatura")
    html = (
        "<html><body><article><h2>一、总体情况</h2><p>第一行。<br>第二行。</p>"
        "<table><tr><td><p>所属街道</p></td><td>点位名称</td></tr><tr><td>海淀街道</td><td>熊猫范</td></tr></table>"
        "<p>表后的句子。</p></article></body></html>"
    )
    page = tmp_path / "page.html"
    page.write_text(html, encoding="utf-8")
    assert loaders.load(page).strip().split("\n") == [
        "一、总体情况", "第一行。", "第二行。", "所属街道 |", "点位名称 |", "海淀街道 |", "熊猫范 |", "", "表后的句子。",
    ]
