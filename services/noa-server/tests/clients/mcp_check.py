"""Drives noa-server's MCP endpoint with the official MCP Python SDK (PyPI `mcp`).

    python mcp_check.py URL --mode legacy|2026-07-28 [--token TOKEN] [--stdio CMD...]

Lists the tools, calls `run_python` and `generate`, reads a workspace resource and a prompt, and
prints one JSON object with what it saw. Exits non-zero (with the reason on stderr) when anything
is missing or wrong, so the Rust tests that run it fail with the SDK's own words.
"""

import argparse
import asyncio
import json
import sys

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

EXPECTED_TOOLS = {"generate", "run_python", "run_command", "read_file", "write_file", "list_dir"}


def fail(message):
    print(f"mcp_check: {message}", file=sys.stderr)
    sys.exit(1)


def text_of(result):
    return "".join(getattr(block, "text", "") for block in result.content)


async def check(server, mode):
    async with Client(server, mode=mode, raise_exceptions=True) as client:
        seen = {"protocol_version": str(client.protocol_version)}
        tools = await client.list_tools()
        names = {tool.name for tool in tools.tools}
        if not EXPECTED_TOOLS <= names:
            fail(f"tools/list lacks {sorted(EXPECTED_TOOLS - names)}: {sorted(names)}")
        seen["tools"] = sorted(names)

        ran = await client.call_tool("run_python", {"code": "import sys; print(6 * 7); sys.exit(3)"})
        outcome = ran.structured_content or json.loads(text_of(ran))
        if ran.is_error or outcome["stdout"].strip() != "42" or outcome["exit_code"] != 3:
            fail(f"run_python gave {outcome!r}")
        seen["run_python"] = outcome

        wrote = await client.call_tool("write_file", {"path": "notes/hello.txt", "content": "hi there"})
        if wrote.is_error:
            fail(f"write_file failed: {text_of(wrote)}")
        escaped = await client.call_tool("read_file", {"path": "../../etc/passwd"})
        if not escaped.is_error:
            fail("read_file outside the workspace was not refused")
        resources = await client.list_resources()
        uris = [r.uri for r in resources.resources if str(r.uri).endswith("notes/hello.txt")]
        if not uris:
            fail(f"resources/list lacks notes/hello.txt: {resources.resources}")
        read = await client.read_resource(uris[0])
        if read.contents[0].text != "hi there":
            fail(f"resources/read gave {read.contents}")
        prompts = await client.list_prompts()
        seen["prompts"] = sorted(p.name for p in prompts.prompts)

        generated = await client.call_tool(
            "generate", {"prompt": "Say hello.", "max_tokens": 12, "temperature": 0, "seed": 1}
        )
        text = text_of(generated)
        if generated.is_error or not text.strip():
            fail(f"generate gave {'an error' if generated.is_error else 'no text'}: {text!r}")
        seen["generate"] = text
        return seen


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url", help="the /mcp URL, or - with --stdio")
    parser.add_argument("--mode", required=True)
    parser.add_argument("--token")
    parser.add_argument("--stdio", nargs=argparse.REMAINDER, help="run this command and talk over stdio")
    args = parser.parse_args()
    if args.stdio:
        server = StdioServerParameters(command=args.stdio[0], args=args.stdio[1:])
    elif args.token:
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {args.token}"}, timeout=120)
        server = streamable_http_client(args.url, http_client=http)
    else:
        server = args.url
    print(json.dumps(asyncio.run(check(server, args.mode))))


if __name__ == "__main__":
    main()
