"""The MCP server, driven by the official MCP SDK's own client: in process, over stdio (the
`qa-app mcp` command a desktop client starts) and over streamable HTTP (mounted in the API server,
behind its key)."""
from __future__ import annotations

import asyncio
import os
import sys
from contextlib import contextmanager

import pytest

pytest.importorskip("mcp", reason="the MCP SDK is part of the ui extra: pip install -e '.[dev]'")

from mcp import Client, StdioServerParameters  # noqa: E402

from qa_app.mcp_server import build_server  # noqa: E402

from .test_api import GDP_Q, serve  # noqa: E402


async def exercise(target) -> dict:
    """Every tool once, and a bad question: what a client sees."""
    async with Client(target) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        answer = await client.call_tool("ask", {"question": GDP_Q})
        refusal = await client.call_tool("ask", {"question": "海淀区有多少家三甲医院？"})
        empty = await client.call_tool("ask", {"question": "   "})
        found = await client.call_tool("search", {"query": "2023年地区生产总值增长", "top_k": 3})
        docs = await client.call_tool("list_documents", {})
    return {"tools": tools, "answer": answer, "refusal": refusal, "empty": empty, "found": found, "docs": docs}


def check(seen: dict) -> None:
    assert seen["tools"] == {"ask", "search", "list_documents"}
    answer = seen["answer"].structured_content
    assert not seen["answer"].is_error and not answer["refused"] and "6%" in answer["answer"]
    cited = answer["citations"][0]
    assert cited["n"] == 1 and cited["doc_id"].endswith(".txt") and "6%" in cited["quote"] and cited["title"]
    assert seen["refusal"].structured_content["refused"] and not seen["refusal"].structured_content["citations"]
    assert seen["empty"].is_error and "问题为空" in seen["empty"].content[0].text
    passages = seen["found"].structured_content["result"]
    assert len(passages) == 3 and all(p["doc_id"] and p["text"] for p in passages)
    docs = seen["docs"].structured_content["result"]
    assert len(docs) == 5 and all(d["chunks"] > 0 and d["place"] == "北京市海淀区" for d in docs)


def test_tools_in_process(assistant):
    check(asyncio.run(exercise(build_server(assistant))))


def test_tools_over_stdio_through_the_cli(seeds_index):
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
    env["QA_DATA_DIR"] = str(seeds_index.data_dir)
    params = StdioServerParameters(command=sys.executable, args=["-m", "qa_app.cli", "mcp"], env=env)
    check(asyncio.run(exercise(params)))


@contextmanager
def api_server(assistant, **settings):
    from qa_app.api import create_app

    configured = assistant.settings.model_copy(update=settings)
    with serve(create_app(configured, assistant, with_ui=False)) as url:
        yield url


def test_tools_over_http_in_the_api_server_behind_its_key(assistant):
    import httpx

    with api_server(assistant, api_key="s3cret-key") as url:
        # Without the key the MCP endpoint is refused like every /v1 route.
        r = httpx.post(f"{url}/v1/mcp/", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        assert r.status_code == 401
        import httpx2  # the HTTP client the MCP SDK is built on

        from mcp.client.streamable_http import streamable_http_client

        client = httpx2.AsyncClient(headers={"Authorization": "Bearer s3cret-key"}, timeout=120)

        check(asyncio.run(exercise(streamable_http_client(f"{url}/v1/mcp/", http_client=client))))
