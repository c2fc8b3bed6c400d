from qa_app.ingest.clean import clean_text

from .conftest import seed


def read(prefix):
    return seed(prefix).read_text(encoding="utf-8")


def test_strips_site_chrome_from_the_seeds():
    cleaned = {p: clean_text(read(p)) for p in ("000", "002", "003")}
    for junk in ("当前位置", "目录1.jpg", "目录4.jpg", "SERVICE PHONE", "400-123-4657", "Products", "Demand feedback",
                 "平台注册入口", "提交需求或反馈", "点击量"):
        assert all(junk not in text for text in cleaned.values()), junk
    assert "分享到" not in cleaned["002"] and "相關文章" not in cleaned["002"]
    assert "标签" not in cleaned["000"].splitlines()[-1]


def test_keeps_every_report_sentence():
    for prefix in ("000", "001", "002", "003", "004"):
        raw, cleaned = read(prefix), clean_text(read(prefix))
        for line in raw.splitlines():
            line = line.strip()
            if line.endswith("。") or line.endswith("|"):
                assert line in cleaned, f"{prefix}: lost {line[:40]}"


def test_keeps_titles_and_headings():
    cleaned = clean_text(read("003"))
    assert cleaned.startswith("北京市海淀区国民经济和社会发展第十三个五年规划纲要")
    assert "第一章 在新的城市战略定位下谋划海淀新发展" in cleaned
    assert "2024年1月16日" in clean_text(read("000"))


def test_generic_chrome_patterns():
    text = "当前位置: 首页 > 新闻\n新闻\n分享到:\n图1.png\n电话: 010-12345678\n正文第一句。\n\n\n正文第二句。\n标签: 经济\n"
    assert clean_text(text) == "正文第一句。\n\n正文第二句。"
