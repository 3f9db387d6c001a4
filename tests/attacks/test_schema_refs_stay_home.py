"""A tool's input schema is the upstream's text: a `$ref` in it named a URL (http, file) and
checking a caller's arguments made Bastion fetch it itself, with jsonschema's deprecated
retrieval: outside the outbound rules (any host, the gateway's own files), on the event loop (the
whole gateway waited on the download), with no size bound; a file's content came back in the
error, and a reference to a non-schema value was a 500. A schema's references now resolve only
within the schema: one that points elsewhere leaves the arguments to the upstream to judge, as a
schema that is itself invalid does."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bastion.core.arguments import argument_errors


@pytest.fixture
def listener() -> Iterator[tuple[str, list[str]]]:
    """An HTTP server that serves a schema and records every request it gets."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            body = json.dumps({"enum": ["SECRET-FROM-THE-INSIDE"]}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", asked
    finally:
        server.shutdown()
        server.server_close()


def _schema(ref: str) -> dict[str, object]:
    return {"type": "object", "properties": {"x": {"$ref": ref}}, "required": ["x"]}


def test_a_remote_reference_is_never_fetched(listener: tuple[str, list[str]]) -> None:
    base, asked = listener
    for ref in (f"{base}/internal/schema.json", f"{base}/s.json#/enum"):
        errors = argument_errors(_schema(ref), {"x": "zz"})
        assert asked == [], asked  # nothing left the gateway
        assert "SECRET-FROM-THE-INSIDE" not in json.dumps(errors)
    # The arguments the schema can still judge are judged: a missing required field.
    assert argument_errors(_schema(f"{base}/s.json"), {}) == [{"pointer": "/x", "message": "'x' is a required property"}]
    assert asked == []


def test_a_file_reference_is_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"enum": ["TOPSECRET-FROM-GATEWAY-DISK"], "private_key": "-----BEGIN KEY-----"}))
    for ref in (secret.as_uri(), f"{secret.as_uri()}#/private_key", f"{secret.as_uri()}#/enum"):
        errors = argument_errors(_schema(ref), {"x": "zz"})
        assert "TOPSECRET" not in json.dumps(errors) and "BEGIN KEY" not in json.dumps(errors), (ref, errors)


@pytest.mark.parametrize("ref", ["#/properties/y/description", "#/properties/y/enum", "#/properties/y/minLength"])
def test_a_reference_to_what_is_no_schema_is_no_crash(ref: str) -> None:
    """A valid schema whose `$ref` points at a value that is no schema (a text, a list, a number):
    an AttributeError out of jsonschema, a 500."""
    schema = {"type": "object", "properties": {"x": {"$ref": ref}, "y": {"description": "a text", "enum": ["a"], "minLength": 1}}}
    assert argument_errors(schema, {"x": "zz"}) == []  # left to the upstream, never raised
    assert argument_errors(schema, "zz") == [{"pointer": "", "message": "the arguments must be a JSON object"}]


def test_references_within_the_schema_still_resolve() -> None:
    schema = {
        "type": "object",
        "$defs": {"colour": {"enum": ["red", "green"]}},
        "properties": {"c": {"$ref": "#/$defs/colour"}},
    }
    assert argument_errors(schema, {"c": "red"}) == []
    assert argument_errors(schema, {"c": "blue"})[0]["pointer"] == "/c"
