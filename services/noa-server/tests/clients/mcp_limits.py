"""Sends noa-server's MCP tools what a careless or hostile client would, with the official MCP
Python SDK, and checks each gets a proper answer and that the server keeps serving:

    python mcp_limits.py URL [--mode legacy|2026-07-28]

run_python that loops forever (killed at its wall limit), that allocates without bound (stopped
by its memory limit), that floods stdout (cut at the output limit); file tools given paths that
leave the workspace; an unknown tool; a call with missing arguments.
"""

import argparse
import asyncio
import json
import sys

from mcp import Client


def fail(message):
    print(f"mcp_limits: {message}", file=sys.stderr)
    sys.exit(1)


def outcome(result):
    if result.is_error:
        fail(f"the tool failed: {result.content}")
    return result.structured_content or json.loads(result.content[0].text)


async def check(url, mode):
    seen = {}
    async with Client(url, mode=mode) as client:
        looped = outcome(await client.call_tool("run_python", {"code": "while True: pass", "timeout_seconds": 2}))
        if not looped["timed_out"] and looped["exit_code"] == 0:
            fail(f"an endless loop was not stopped: {looped}")
        seen["loop"] = looped

        hog = outcome(await client.call_tool("run_python", {"code": "x = bytearray(8 << 30)\nprint(len(x))"}))
        if hog["exit_code"] == 0 or "MemoryError" not in hog["stderr"]:
            fail(f"an 8 GiB allocation was not refused: {hog}")
        seen["memory"] = hog["exit_code"]

        flood = outcome(await client.call_tool("run_python", {"code": "print('x' * (4 << 20))"}))
        if not flood["truncated"] or len(flood["stdout"]) > (1 << 20):
            fail(f"4 MiB of output was not cut: truncated={flood['truncated']} len={len(flood['stdout'])}")
        seen["flood"] = len(flood["stdout"])

        for tool, args in [
            ("read_file", {"path": "../../../etc/passwd"}),
            ("read_file", {"path": "/etc/passwd"}),
            ("write_file", {"path": "../escape.txt", "content": "x"}),
            ("list_dir", {"path": ".."}),
        ]:
            result = await client.call_tool(tool, args)
            if not result.is_error:
                fail(f"{tool} {args} was not refused: {result.content}")

        for tool, args in [("no_such_tool", {}), ("run_python", {})]:
            try:
                result = await client.call_tool(tool, args)
            except Exception as error:  # the SDK raises MCPError for a JSON-RPC error
                seen[f"{tool} error"] = str(error)
                continue
            if not result.is_error:
                fail(f"{tool} {args} did not fail: {result.content}")

        tools = await client.list_tools()
        if len(tools.tools) < 6:
            fail("tools/list after the bad calls lacks tools")
    return seen


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--mode", default="legacy")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(check(args.url, args.mode))))


if __name__ == "__main__":
    main()
