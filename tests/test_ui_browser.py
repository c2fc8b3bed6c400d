"""The chat page in a real browser: Debian's headless Chromium driven by Playwright, against the
app served by uvicorn on a free loopback port."""
from __future__ import annotations

import shutil
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


@pytest.fixture(scope="module")
def server_url(assistant):
    from fastapi import FastAPI

    from qa_app.ui import mount_ui

    app = FastAPI()
    mount_ui(app, assistant)
    with serve(app, ready="/") as url:
        yield f"{url}/"


@pytest.fixture()
def page(server_url):
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (`apt-get install -y chromium`); "
            "CI installs it, and this test must run, not skip."
            + (f" (another chromium was found at {shutil.which('chromium')})" if shutil.which("chromium") else "")
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.goto(server_url)
        yield page
        browser.close()


def ask(page, question: str) -> None:
    box = page.locator("#qa-input textarea")
    box.fill(question)
    box.press("Enter")


def test_chat_page_answers_with_sources_and_follow_up(page, tmp_path):
    from playwright.sync_api import expect

    bots = page.locator("#qa-chat .message.bot")

    ask(page, "2023年海淀区地区生产总值增长了多少？")
    first = bots.nth(0)
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
    second = bots.nth(1)
    expect(second).to_contain_text("6.0%")
    expect(second.locator(".qa-sources")).to_contain_text(TITLE_2024)

    shot = tmp_path / "ui.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.exists() and shot.stat().st_size > 20_000


def test_refusal_is_marked_and_new_conversation_clears(page):
    from playwright.sync_api import expect

    ask(page, "朝阳区2023年地区生产总值增速是多少？")
    bot = page.locator("#qa-chat .message.bot").first
    expect(bot.locator(".qa-refused")).to_have_text("报告中未找到")
    expect(bot).to_contain_text("报告中没有找到")

    page.locator("#qa-new").click()
    expect(page.locator("#qa-chat .message")).to_have_count(0)


def test_highlighted_quotes_are_readable_in_dark_mode(page, server_url):
    """Dark text on the highlight in the dark theme too (it was light text on pale yellow)."""
    from playwright.sync_api import expect

    page.goto(server_url + "?__theme=dark")
    ask(page, "2023年海淀区地区生产总值增长了多少？")
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
