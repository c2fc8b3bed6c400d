"""The chat page in a real browser: Debian's headless Chromium driven by Playwright, against the
app served by uvicorn on a free loopback port."""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from .test_api import serve

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TITLE_2023 = "关于海淀区2023年国民经济和社会发展计划执行情况"
TITLE_2024 = "关于海淀区2024年国民经济和社会发展计划执行情况"
GDP_2023 = "2023年海淀区地区生产总值增长了多少？"


@pytest.fixture(scope="module")
def server_url(assistant):
    from fastapi import FastAPI

    from qa_app.ui import mount_ui

    app = FastAPI()
    mount_ui(app, assistant)
    with serve(app, ready="/") as url:
        yield f"{url}/"


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (`apt-get install -y chromium`); "
            "CI installs it, and this test must run, not skip."
            + (f" (another chromium was found at {shutil.which('chromium')})" if shutil.which("chromium") else "")
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def open_page(browser, url: str, **context):
    """A page in a fresh browser context: its own storage, so its own saved conversations."""
    options = {"viewport": {"width": 1280, "height": 900}, "locale": "zh-CN", **context}
    ctx = browser.new_context(**options)
    ctx.grant_permissions(["clipboard-read", "clipboard-write"])
    page = ctx.new_page()
    page.set_default_timeout(30_000)
    page.goto(url)
    return page


@pytest.fixture()
def page(browser, server_url):
    page = open_page(browser, server_url)
    yield page
    page.context.close()


def ask(page, question: str) -> None:
    box = page.locator("#qa-input textarea")
    box.fill(question)
    box.press("Enter")


def bots(page):
    return page.locator("#qa-chat .message-row.bot-row")


def test_chat_page_answers_with_sources_and_follow_up(page, tmp_path):
    from playwright.sync_api import expect

    ask(page, GDP_2023)
    first = bots(page).nth(0)
    expect(first).to_contain_text("6%")
    expect(first.locator(".qa-sources")).to_contain_text(TITLE_2023)
    expect(first.locator(".qa-sources mark").first).to_contain_text("6%")
    expect(first).to_contain_text("[1]")
    # Sources are collapsed with the quote in view; a click opens the passage around it.
    quote = first.locator(".qa-sources summary .qa-quote").first
    expect(quote).to_be_visible()
    expect(quote).to_contain_text("6%")
    passage = first.locator(".qa-sources .qa-passage").first
    expect(passage).to_be_hidden()
    first.locator(".qa-sources summary").first.click()
    expect(passage).to_be_visible()
    expect(passage.locator("mark").first).to_contain_text("6%")

    ask(page, "那2024年呢？")  # a follow-up: borrows the previous question's topic
    second = bots(page).nth(1)
    expect(second).to_contain_text("6.0%")
    expect(second.locator(".qa-sources")).to_contain_text(TITLE_2024)

    shot = tmp_path / "ui.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.exists() and shot.stat().st_size > 20_000


def test_citation_marker_opens_its_source_and_the_whole_document(page):
    from playwright.sync_api import expect

    ask(page, GDP_2023)
    bot = bots(page).first
    source = bot.locator("details.qa-src-1")
    expect(source).to_contain_text(TITLE_2023)
    assert source.evaluate("d => d.open") is False
    bot.locator("a.qa-cite", has_text="[1]").first.click()  # the [1] in the answer's text
    expect(source.locator(".qa-passage")).to_be_visible()
    assert source.evaluate("d => d.open") is True

    with page.context.expect_page() as opened:
        source.locator("a.qa-open").click()
    doc = opened.value
    doc.wait_for_load_state()
    expect(doc.locator("h1")).to_contain_text(TITLE_2023)
    hit = doc.locator("#qa-hit")
    expect(hit).to_contain_text("6%")
    expect(hit).to_be_in_viewport()  # opened at the passage, not at the top
    # The whole document, not the passage: far longer, and with text from before the passage.
    whole = doc.locator(".text").inner_text()
    assert len(whole) > 5_000 and whole.index(hit.inner_text()) > 500
    doc.close()


def test_copy_gives_plain_text_and_the_sources(page):
    from playwright.sync_api import expect

    ask(page, GDP_2023)
    bot = bots(page).first
    expect(bot.locator(".qa-sources")).to_be_visible()
    page.locator("#qa-chat .message-buttons").last.locator("button[aria-label='Copy message']").click()
    text = ""
    for _ in range(50):
        text = page.evaluate("navigator.clipboard.readText()")
        if text:
            break
        time.sleep(0.1)
    assert "6%" in text and "[1]" in text, text
    assert "来源：" in text and TITLE_2023 in text, text
    assert "\\[" not in text and "<" not in text and "&" not in text, text


def test_stop_keeps_typed_text_and_regenerate_answers_again(page, monkeypatch):
    """The box keeps what is typed while an answer streams; Stop halts it; 重新生成 answers anew."""
    from playwright.sync_api import expect

    import qa_app.ui.page as ui_page

    monkeypatch.setattr(ui_page, "STREAM_DELAY", 4.0)  # a slow stream, so there is time to act during it
    ask(page, GDP_2023)
    bot = bots(page).first
    expect(bot).to_contain_text("6%")  # the first piece is shown; the verified answer is not yet
    box = page.locator("#qa-input textarea")
    box.fill("那2024年呢？")
    page.locator("#qa-stop").click()
    expect(bot).to_contain_text("已停止")
    time.sleep(4.5)  # past the point where the answer would have been finished
    expect(bot.locator(".qa-sources")).to_have_count(0)
    assert box.input_value() == "那2024年呢？"

    monkeypatch.setattr(ui_page, "STREAM_DELAY", 0.0)
    page.locator("#qa-regen").click()
    expect(bot.locator(".qa-sources")).to_contain_text(TITLE_2023)
    expect(page.locator("#qa-chat .message-row")).to_have_count(2)  # the answer replaced, not added
    assert box.input_value() == "那2024年呢？"  # untouched by the streamed updates


def test_conversations_are_saved_reopened_renamed_deleted_and_private(browser, server_url):
    from playwright.sync_api import expect

    page = open_page(browser, server_url)
    ask(page, GDP_2023)
    expect(bots(page).first.locator(".qa-sources")).to_be_visible()
    page.locator("#qa-new").click()
    expect(page.locator("#qa-chat .message-row")).to_have_count(0)

    page.reload()  # the list comes back from the server, for this browser
    page.locator("#qa-history").get_by_text("历史对话").click()
    item = page.locator("#qa-convs label", has_text=GDP_2023)
    expect(item).to_have_count(1)
    item.click()
    expect(bots(page).first.locator(".qa-sources")).to_contain_text(TITLE_2023)
    title = page.locator("#qa-conv-title textarea, #qa-conv-title input").first
    expect(title).to_have_value(GDP_2023)
    title.fill("海淀GDP")
    page.locator("#qa-conv-rename").click()
    expect(page.locator("#qa-convs label", has_text="海淀GDP")).to_have_count(1)

    ask(page, "那2024年呢？")  # a follow-up in the reopened conversation reads its history
    expect(bots(page).nth(1)).to_contain_text("6.0%")

    other = open_page(browser, server_url)  # another browser: sees none of it
    other.locator("#qa-history").get_by_text("历史对话").click()
    expect(other.locator("#qa-convs label")).to_have_count(0)
    other.context.close()

    page.locator("#qa-conv-delete").click()
    expect(page.locator("#qa-chat .message-row")).to_have_count(0)
    expect(page.locator("#qa-convs label", has_text="海淀GDP")).to_have_count(0)
    page.reload()
    page.locator("#qa-history").get_by_text("历史对话").click()
    expect(page.locator("#qa-convs label")).to_have_count(0)
    page.context.close()


def test_feedback_is_stored_with_the_answer_and_a_comment(page, assistant):
    from playwright.sync_api import expect

    from qa_app.feedback import FeedbackStore

    ask(page, GDP_2023)
    expect(bots(page).first.locator(".qa-sources")).to_be_visible()
    page.locator("#qa-chat .message-buttons").last.locator("button[aria-label='赞']").click()
    comment = page.locator("#qa-fb-comment textarea")
    expect(comment).to_be_visible()
    comment.fill("来源准确")
    page.locator("#qa-fb-send").click()
    expect(comment).to_be_hidden()
    store = FeedbackStore.in_data_dir(assistant.index.data_dir)
    rated = [i for i in store.items() if i.comment == "来源准确"]
    assert len(rated) == 1, [(i.question, i.comment) for i in store.items()]
    item = rated[0]
    assert item.rating == "up" and item.question == GDP_2023 and "6%" in item.answer
    assert item.citations and item.citations[0]["title"].startswith(TITLE_2023)
    assert item.settings["generator"] == assistant.settings.generator and item.conversation


def test_refusal_is_marked_and_new_conversation_clears(page):
    from playwright.sync_api import expect

    ask(page, "朝阳区2023年地区生产总值增速是多少？")
    bot = bots(page).first
    expect(bot.locator(".qa-refused")).to_have_text("报告中未找到")
    expect(bot).to_contain_text("报告中没有找到")
    expect(bot.locator(".qa-filter-note")).to_have_count(0)  # no filter: nothing to blame on one

    page.locator("#qa-new").click()
    expect(page.locator("#qa-chat .message")).to_have_count(0)


def test_refusal_under_a_filter_says_the_filter_caused_it(page):
    from playwright.sync_api import expect

    expect(page.locator("#qa-years")).to_contain_text("报告所述年份")
    expect(page.locator("#qa-years")).to_contain_text("不是发布日期")
    page.locator("#qa-docs input").click()
    page.locator("#qa-docs li[role=option]", has_text="聚創新之力").first.click()  # a short 2019 news story
    page.keyboard.press("Escape")
    ask(page, GDP_2023)  # answered from the 2023 report without the filter
    bot = bots(page).first
    expect(bot.locator(".qa-refused")).to_be_visible()
    expect(bot.locator(".qa-filter-note")).to_contain_text("筛选")


def test_highlighted_quotes_are_readable_in_dark_mode(page, server_url):
    """Dark text on the highlight in the dark theme too (it was light text on pale yellow)."""
    from playwright.sync_api import expect

    page.goto(server_url + "?__theme=dark")
    ask(page, GDP_2023)
    mark = page.locator("#qa-chat .message.bot .qa-sources mark").first
    expect(mark).to_contain_text("6%")
    colours = mark.evaluate("m => [getComputedStyle(m).color, getComputedStyle(m).backgroundColor,"
                            " getComputedStyle(m.closest('.qa-sources')).color,"
                            " document.body.className + '|' + document.documentElement.className]")

    def luminance(css: str) -> float:
        r, g, b = (int(x) / 255 for x in css[css.index("(") + 1:].rstrip(")").split(",")[:3])
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    text, background, around, classes = colours
    assert "dark" in classes and luminance(around) > 0.6, colours  # the page really is dark: light text around
    assert luminance(background) - luminance(text) > 0.5, colours  # dark text on a light highlight


def test_phone_layout_keeps_controls_in_reach_and_icons_apart(browser, server_url):
    from playwright.sync_api import expect

    page = open_page(browser, server_url, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    examples = page.get_by_text("示例问题").first.bounding_box()
    for control in ("#qa-new", "#qa-docs", "#qa-years"):
        box = page.locator(control).bounding_box()
        assert box["y"] + box["height"] <= 844, (control, box)  # on screen without scrolling
        assert box["y"] < examples["y"], (control, box, examples)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing wider than the phone

    ask(page, GDP_2023)
    expect(bots(page).first.locator(".qa-sources")).to_be_visible()
    clear = page.locator("#qa-chat button[aria-label='清空对话']").bounding_box()
    for button in page.locator("#qa-chat .message-buttons button").all():
        b = button.bounding_box()
        apart = (b["x"] + b["width"] <= clear["x"] or clear["x"] + clear["width"] <= b["x"]
                 or b["y"] + b["height"] <= clear["y"] or clear["y"] + clear["height"] <= b["y"])
        assert apart, (b, clear)
    page.context.close()


def test_page_texts_come_from_the_settings(assistant):
    from qa_app.answer import Assistant
    from qa_app.ui import build_ui

    settings = assistant.settings.model_copy(update={
        "ui_title": "安徽省报告问答", "ui_description": "根据安徽省政府工作报告回答。", "ui_examples": ["安徽2024年GDP是多少？"],
    })
    demo = build_ui(Assistant(settings, index=assistant.index))
    config = demo.get_config_file()
    assert config["title"] == "安徽省报告问答"
    values = [str(c.get("props", {}).get("value")) for c in config["components"]]
    assert any("安徽省报告问答" in v and "根据安徽省政府工作报告回答。" in v for v in values)
    samples = [c["props"].get("samples") for c in config["components"] if c.get("type") == "dataset"]
    assert samples == [[["安徽2024年GDP是多少？"]]]


@pytest.fixture(scope="module")
def empty_app_url(tmp_path_factory):
    """The whole app (API and page) over an index of its own: uploads here touch no other test's index."""
    from qa_app.api import create_app
    from qa_app.config import Settings

    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("page_uploads")))
    with serve(app, ready="/") as url:
        yield f"{url}/"


def test_upload_and_delete_on_the_page_refresh_the_filters(browser, empty_app_url, tmp_path):
    from playwright.sync_api import expect

    report = tmp_path / "测试区2025年政府工作报告.txt"
    report.write_text(
        "测试区2025年政府工作报告\n\n"
        "一、过去一年的工作\n\n"
        "2025年，测试区地区生产总值增长7.5%，达到1234亿元，一般公共预算收入增长5.2%。"
        "新建社区养老服务驿站12家，新增就业岗位3.1万个。\n\n"
        "二、今年的主要任务\n\n"
        "2026年，测试区将新建学校4所，改造老旧小区30个，持续优化营商环境。\n",
        encoding="utf-8",
    )
    junk = tmp_path / "tool.exe"
    junk.write_bytes(b"MZ\x90\x00" + bytes(200))

    page = open_page(browser, empty_app_url)
    page.on("dialog", lambda dialog: dialog.accept())
    page.locator("#qa-doc-admin").get_by_text("文档管理").click()
    expect(page.locator("#qa-doc-list")).to_contain_text("还没有文档")
    page.locator("#qa-upload-input").set_input_files([str(report), str(junk)])
    results = page.locator("#qa-upload-results")
    expect(results).to_contain_text("测试区2025年政府工作报告.txt：已添加", timeout=120_000)
    expect(results.locator("li.qa-err")).to_contain_text("tool.exe：失败")
    # The list and the document filter know the new document without a reload.
    expect(page.locator("#qa-doc-list")).to_contain_text("测试区2025年政府工作报告")
    page.locator("#qa-docs input").click()
    expect(page.locator("#qa-docs li[role=option]", has_text="测试区2025年政府工作报告")).to_have_count(1)
    page.keyboard.press("Escape")
    ask(page, "2025年测试区地区生产总值增长了多少？")
    expect(bots(page).first).to_contain_text("7.5%")

    page.locator("#qa-doc-list button.qa-doc-del").first.click()
    expect(results).to_contain_text("测试区2025年政府工作报告：已删除")
    expect(page.locator("#qa-doc-list")).to_contain_text("还没有文档")
    page.locator("#qa-docs input").click()
    expect(page.locator("#qa-docs li[role=option]", has_text="测试区2025年政府工作报告")).to_have_count(0)
    page.context.close()
