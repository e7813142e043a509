"""Call one tool of an MCP server over streamable HTTP with the official SDK: `python scripts/mcp_call.py URL`."""

from __future__ import annotations

import asyncio
import sys

from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client


async def main(url: str) -> None:
    async with streamable_http_client(url) as (read, write, _):
        async with ClientSession(read, write) as session:
            info = await session.initialize()
            tools = await session.list_tools()
            print(f"server {info.serverInfo.name}: tools {[t.name for t in tools.tools]}")
            result = await session.call_tool("get_current_time", {"timezone": "UTC"})
            print("get_current_time(UTC) ->", result.content[0].text)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
