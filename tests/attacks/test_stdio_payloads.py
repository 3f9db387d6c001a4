"""Attack class: a stdio upstream floods the gateway. Before, stdio lines had no limit (a 30 MB answer
went through although BASTION_UPSTREAM_MAX_MESSAGE_BYTES is 16 MiB) and the SDK's reader grew each
line by string concatenation (30 MB took ~8 s of the gateway's CPU). Now a line over the limit is
skipped as it is read; the call it answers gets an error saying why, whether the server writes the
id first (Python SDK) or last (TypeScript SDK), and the upstream stays usable; an over-long line that
names no call is skipped."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import pytest
from mcp import MCPError

from bastion.upstream.stdio import _answered_id, _Lines
from tests.harness import serve, settings_for

pytestmark = pytest.mark.anyio

LIMIT = 64 * 1024

# A minimal stdio MCP server: `flood` answers with `size` characters, its id first or last;
# `noise` writes an over-long line that is no answer at all, then answers normally.
SERVER = r'''
import json, sys
def send(obj, id_last=False):
    if id_last:
        mid = obj.pop("id"); obj["id"] = mid
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n"); sys.stdout.flush()
for line in sys.stdin:
    msg = json.loads(line)
    mid, method = msg.get("id"), msg.get("method")
    if mid is None:
        continue
    if method == "initialize":
        res = {"protocolVersion": msg["params"]["protocolVersion"], "capabilities": {"tools": {}}, "serverInfo": {"name": "flood", "version": "1"}}
    elif method == "tools/list":
        res = {"tools": [{"name": n, "inputSchema": {"type": "object"}} for n in ("flood", "noise")]}
    elif method == "tools/call":
        args = msg["params"].get("arguments") or {}
        if msg["params"]["name"] == "noise":
            sys.stdout.write("x" * 200000 + "\n"); sys.stdout.flush()
        res = {"content": [{"type": "text", "text": "y" * int(args.get("size", 1))}]}
        send({"jsonrpc": "2.0", "result": res, "id": mid} if args.get("id_last") else {"jsonrpc": "2.0", "id": mid, "result": res}, bool(args.get("id_last")))
        continue
    else:
        res = {}
    send({"jsonrpc": "2.0", "id": mid, "result": res})
'''


async def test_an_over_long_stdio_answer_is_refused_and_the_upstream_stays_usable(tmp_path: Path) -> None:
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db", upstream_max_message_bytes=LIMIT)
    async with serve(settings) as gateway:
        await gateway.register({"name": "pub", "transport": "stdio", "command": sys.executable, "args": ["-c", SERVER]})
        await gateway.create_server({"name": "vs", "upstreams": ["pub"]})
        async with gateway.client("vs") as client:
            with anyio.fail_after(60):
                for id_last in (False, True):
                    with pytest.raises(MCPError) as refused:
                        await client.call_tool("pub__flood", {"size": LIMIT * 3, "id_last": id_last})
                    assert "larger than" in refused.value.message and str(LIMIT) in refused.value.message
                    assert refused.value.code == -32015
                    fine = await client.call_tool("pub__flood", {"size": 1000, "id_last": id_last})
                    assert fine.content[0].text == "y" * 1000  # type: ignore[union-attr]
                # An over-long line that answers nothing is skipped; the answer after it arrives.
                noisy = await client.call_tool("pub__noise", {"size": 10})
                assert noisy.content[0].text == "y" * 10  # type: ignore[union-attr]


def test_lines_are_split_and_capped_across_chunks() -> None:
    lines = _Lines(10)
    assert lines.feed(b'{"a":1}\n{"b"') == [b'{"a":1}']
    assert lines.feed(b":2}\n") == [b'{"b":2}']
    out = lines.feed(b'{"id":7,"result":"' + b"z" * 30)
    assert out == []
    out = lines.feed(b"z" * 30 + b'"}\nok\n')
    line = b'{"id":7,"result":"' + b"z" * 60 + b'"}'
    assert out == [(line[:48], line[-256:]), b"ok"]  # only its first and last bytes are kept
    assert _answered_id(*out[0]) == 7  # type: ignore[misc]


@pytest.mark.parametrize(
    ("head", "tail", "expected"),
    [
        (b'{"jsonrpc":"2.0","id":12,"result":{"content"', b'"}]}}', 12),
        (b'{"result":{"content":[{"type"', b'"}]},"jsonrpc":"2.0","id":"a-1"}', "a-1"),
        (b'{"result":{"items":[{"id":5', b'{"id":5}]}}', None),  # an id nested in the result is not the answer's
        (b'{"jsonrpc":"2.0","id":3,"method":"sampling/createMessage","params"', b"}}", None),  # the server's request
    ],
)
def test_the_id_of_an_over_long_line(head: bytes, tail: bytes, expected: object) -> None:
    assert _answered_id(head, tail) == expected
